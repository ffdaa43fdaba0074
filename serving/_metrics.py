"""Prometheus metrics with TF Serving's names (``/tensorflow/serving/...`` becomes
``:tensorflow:serving:...``), kept in a prometheus-client registry per server.

The page is rendered the way TF Serving's ``PrometheusExporter`` renders it: ``# TYPE`` lines,
counters without a ``_total`` suffix, no ``_created`` series, bucket limits printed with six
significant digits.
"""

from __future__ import annotations

import math
import threading

from prometheus_client import CollectorRegistry, Counter, Histogram

CONTENT_TYPE = "text/plain"


def _exponential(scale: float, growth: float, count: int) -> list[float]:
    return [scale * growth**i for i in range(count)] + [math.inf]


_LATENCY_BUCKETS = _exponential(10, 1.8, 33)  # microseconds, as TF Serving
_BATCH_BUCKETS = _exponential(1, 2, 14)


class Metrics:
    """The metrics one server exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.request_count = Counter(
            ":tensorflow:serving:request_count",
            "The total number of requests.",
            ["model_name", "status"],
            registry=reg,
        )
        self.request_latency = Histogram(
            ":tensorflow:serving:request_latency",
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            ["model_name", "API", "entrypoint"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.runtime_latency = Histogram(
            ":tensorflow:serving:runtime_latency",
            "Distribution of wall time (in microseconds) for Tensorflow runtime.",
            ["model_name", "API", "runtime"],
            buckets=_LATENCY_BUCKETS,
            registry=reg,
        )
        self.requests_by_method = Counter(
            ":headswitch:serving:request_count",
            "Requests by model, API (method), entrypoint and status.",
            ["model_name", "API", "entrypoint", "status"],
            registry=reg,
        )
        self.processed_batch_size = Histogram(
            ":tensorflow:serving:batching_session:processed_batch_size",
            "Tracks the batch size distribution on processing.",
            buckets=_BATCH_BUCKETS,
            registry=reg,
        )
        self.input_batch_size = Histogram(
            ":tensorflow:serving:batching_session:input_batch_size",
            "Tracks the batch size distribution on the inputs.",
            buckets=_BATCH_BUCKETS,
            registry=reg,
        )
        self.padding_size = Histogram(
            ":tensorflow:serving:batching_session:padding_size",
            "Tracks the padding size distribution on batches.",
            ["execution_batch_size"],
            buckets=_BATCH_BUCKETS,
            registry=reg,
        )
        self.wrapped_run_count = Counter(
            ":tensorflow:serving:batching_session:wrapped_run_count",
            "Total count of run calls on the wrapped session",
            registry=reg,
        )
        self.load_attempt_count = Counter(
            ":tensorflow:cc:saved_model:load_attempt_count",
            "The number of times a SavedModel was successfully loaded.",
            ["model_path", "status"],
            registry=reg,
        )
        self._lock = threading.Lock()

    def record_request(
        self, model_name: str, api: str, entrypoint: str, status: str, latency_micros: float
    ) -> None:
        """``RecordModelRequestCount`` + ``RecordRequestLatency`` (latency only when OK)."""
        self.request_count.labels(model_name, status).inc()
        self.requests_by_method.labels(model_name, api, entrypoint, status).inc()
        if status == "OK":
            self.request_latency.labels(model_name, api, entrypoint).observe(latency_micros)

    def render(self) -> bytes:
        """The Prometheus text page."""
        lines: list[str] = []
        for family in self.registry.collect():
            name = family.name
            if family.type == "counter":
                samples = [s for s in family.samples if s.name == name + "_total"]
                lines.append(f"# TYPE {name} counter")
                for sample in samples:
                    lines.append(f"{name}{{{_labels(sample.labels)}}} {int(sample.value)}")
            elif family.type == "histogram":
                lines.append(f"# TYPE {name} histogram")
                for sample in family.samples:
                    if sample.name.endswith("_created"):
                        continue
                    labels = dict(sample.labels)
                    le = labels.pop("le", None)
                    label_text = _labels(labels)
                    if le is not None:
                        limit = "+Inf" if le == "+Inf" else f"{float(le):.6g}"
                        sep = "," if label_text else ""
                        lines.append(
                            f'{sample.name}{{{label_text}{sep}le="{limit}"}} {int(sample.value)}'
                        )
                    elif sample.name.endswith("_count"):
                        lines.append(f"{sample.name}{{{label_text}}} {int(sample.value)}")
                    else:
                        lines.append(f"{sample.name}{{{label_text}}} {sample.value:.6g}")
        return ("\n".join(lines) + "\n").encode()


def _labels(labels: dict[str, str]) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"')

    return ",".join(f'{key}="{escape(value)}"' for key, value in labels.items())
