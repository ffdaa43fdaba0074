"""Under dynamic batching, one client's bad task never fails another client's request.

The batcher (the embedded server's and TF Serving's alike) merges concurrent requests into one
session run; a headswitch export reports a bad task id per example (``error``) instead of
failing the run, so the good requests merged with a bad one answer as if they ran alone. Runs
against every target kind: the embedded server, and the stock image where Docker exists."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from serving_targets import MODEL, Factory, add_version

from headswitch.contract import (
    INPUT_TASK_ID,
    INPUT_TEXT,
    OUTPUT_ERROR,
    OUTPUT_TOP_LABEL,
    OUTPUT_TOP_SCORE,
    SIGNATURE_IDS,
)

PREDICT = f"/v1/models/{MODEL}:predict"
BATCHING = (
    "max_batch_size { value: 64 }\n"
    "batch_timeout_micros { value: 50000 }\n"  # long enough that the requests below merge
    "max_enqueued_batches { value: 100 }\n"
    "num_batch_threads { value: 1 }\n"
)
TEXTS = ["what a great match", "free prize, click now", "", "la comida estaba buena"]


def _body(texts: list[str], ids: list[int]) -> dict[str, Any]:
    return {"signature_name": SIGNATURE_IDS,
            "instances": [{INPUT_TEXT: t, INPUT_TASK_ID: i} for t, i in zip(texts, ids)]}


def _runs(target: Any) -> int:
    import re

    found = re.search(r":tensorflow:serving:batching_session:wrapped_run_count\{\} (\S+)",
                      target.metrics())
    return int(float(found.group(1))) if found else 0


@pytest.mark.slow
def test_a_bad_request_merged_with_good_ones_fails_none_of_them(
        factory: Factory, models_root: Path, exported: Any) -> None:
    batching = models_root / "batching.config"
    batching.write_text(BATCHING)
    add_version(models_root / MODEL, 1, exported.path)
    target = factory.start(base=models_root / MODEL, batching_file=batching)
    good = [(TEXTS[i % 4: i % 4 + 1] * 2, [i % 7, (i + 3) % 7]) for i in range(12)]
    bad = [(TEXTS[:2], [0, 99]), (TEXTS[2:3], [-1])]
    alone = [target.post(PREDICT, json=_body(*request)).json()["predictions"]
             for request in good]
    runs_before = _runs(target)
    answers: dict[int, Any] = {}
    start = threading.Barrier(len(good) + len(bad))

    def send(k: int, request: tuple[list[str], list[int]]) -> None:
        start.wait()
        answers[k] = target.post(PREDICT, json=_body(*request))

    threads = [threading.Thread(target=send, args=(k, r)) for k, r in enumerate(good + bad)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runs = _runs(target) - runs_before
    assert runs < len(good) + len(bad), "the requests were not merged: nothing was tested"
    for k, expected in enumerate(alone):  # every good request: 200, as if it ran alone
        assert answers[k].status_code == 200, answers[k].text
        got = answers[k].json()["predictions"]
        for g, e in zip(got, expected):
            assert g[OUTPUT_ERROR] == "" and g[OUTPUT_TOP_LABEL] == e[OUTPUT_TOP_LABEL]
            # float32 sums run in another order at another batch size
            assert g[OUTPUT_TOP_SCORE] == pytest.approx(e[OUTPUT_TOP_SCORE], rel=1e-5)
    first_bad = answers[len(good)].json()["predictions"]
    assert first_bad[0][OUTPUT_ERROR] == ""
    assert "task_id out of range" in first_bad[1][OUTPUT_ERROR]
    assert "99" not in first_bad[1][OUTPUT_ERROR]  # no client's value in a shared message
    assert "task_id out of range" in answers[len(good) + 1].json()["predictions"][0][OUTPUT_ERROR]
