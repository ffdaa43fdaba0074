"""The fault suite, long form: hostile requests and bad days for the embedded server.

    .venv/bin/python bench/fault_bench.py [--before REV] [--model-dir BASE] [--quick]

Everything runs on loopback against ``headswitch serve`` in child processes and stops by
itself (every wait is bounded; a server whose RSS passes ``--rss-cap-gib`` is killed and that
is the result). Parts:

- every case of ``_hostile.py`` (REST, gRPC, raw TCP): what it gets, whether the server lived,
  tracebacks in its log; the RSS after a request at the examples limit vs before it;
- load at a given concurrency, batching off and on (the shipped docker/ config), good requests
  only and with a share of bad task ids;
- bad days under load: a corrupt version, a version deleted, a version copied in slowly,
  SIGTERM, ``kill -9`` of the exporter in the middle of an export.

``--before REV`` runs the same against the server of an older revision (``git archive``), so
the results say what changed. Writes work/bench/ (--save: bench/results/) faults.json and faults.md.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
import _hostile
from _measure import add_results_option, machine, percentile, results_dir, write_json

MODEL = "headswitch"
WORDS = ("the match was great and the striker scored twice before halftime refund please my "
         "order never arrived free prize click now the meeting moved to friday").split()


# ------------------------------------------------------------------------------------------
# A server in a child process


@dataclass
class Server:
    process: subprocess.Popen[str]
    target: _hostile.Target
    log_path: Path
    rss_cap: int
    killed_for_memory: bool = False
    _watch: threading.Thread | None = None

    def rss(self) -> int:
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def alive(self) -> bool:
        return self.process.poll() is None

    def exit_description(self) -> str:
        code = self.process.poll()
        if code is None:
            return "running"
        if self.killed_for_memory:
            return f"killed by the bench at {self.rss_cap / 2**30:.0f} GiB RSS"
        if code < 0:
            return f"died ({signal.Signals(-code).name})"
        return f"exited {code}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Tree:
    """Where the server's code comes from: this checkout, or an older revision."""

    name: str
    pythonpath: str | None = None
    limits: bool = True  # whether its CLI has the limit flags

    def env(self) -> dict[str, str]:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
        if self.pythonpath:
            env["PYTHONPATH"] = self.pythonpath
        return env


def checkout(rev: str, work: Path) -> Tree:
    """The package of an older revision, importable as ``headswitch`` from PYTHONPATH."""
    src = work / "src"
    src.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    package = work / "pkg" / "headswitch"
    package.mkdir(parents=True)
    root = src / "core" if (src / "core").is_dir() else src / "headswitch"  # moved in 2026
    for item in root.iterdir():
        if item.is_file():
            shutil.copy2(item, package / item.name)
    for part in ("serving", "export", "client", "examples", "deploy", "score"):
        if (src / part).is_dir():
            (package / part).symlink_to(src / part)
    cli = (src / "serving" / "_cli.py").read_text()
    return Tree(f"before ({rev})", str(work / "pkg"), limits="--max-examples" in cli)


def start_server(tree: Tree, base: Path, work: Path, rss_cap: int,
                 extra: list[str] | None = None) -> Server:
    log_path = Path(tempfile.mkstemp(dir=work, suffix=".log")[1])
    command = [sys.executable, "-m", "headswitch.cli", "serve", str(base), "--model-name", MODEL,
               "--grpc-port", "0", "--rest-port", "0", "--poll-seconds", "0.5",
               "--max-num-load-retries", "3", "--load-retry-interval-micros", "1000000",
               *(extra or [])]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True,
                                   env=tree.env(), cwd=work)
    assert process.stdout is not None
    grpc_address, rest_address, line = _hostile.serving_address(process.stdout, 180)
    if not rest_address:
        process.kill()
        raise RuntimeError(f"server did not start: {line!r}\n{log_path.read_text()[-2000:]}")
    from headswitch.serving import Limits

    defaults = Limits()
    limits = {"max_request_bytes": defaults.max_request_bytes,
              "max_examples": defaults.max_examples,
              "max_string_bytes": defaults.max_string_bytes,
              "read_timeout": defaults.read_timeout, "idle_timeout": defaults.idle_timeout,
              **_limits_of(extra or [])}
    target = _hostile.Target(rest_address, grpc_address, MODEL, **limits)
    server = Server(process, target, log_path, rss_cap)

    def watch() -> None:
        while server.alive():
            if server.rss() > rss_cap:
                server.killed_for_memory = True
                process.kill()
                return
            time.sleep(0.05)

    server._watch = threading.Thread(target=watch, daemon=True)
    server._watch.start()
    return server


def _limits_of(flags: list[str]) -> dict[str, Any]:
    names = {"--max-request-bytes": "max_request_bytes", "--max-examples": "max_examples",
             "--max-string-bytes": "max_string_bytes", "--read-timeout": "read_timeout",
             "--idle-timeout": "idle_timeout"}
    out: dict[str, Any] = {}
    for flag, value in itertools.pairwise(flags):
        if flag in names:
            out[names[flag]] = float(value) if "timeout" in flag else int(value)
    return out


# ------------------------------------------------------------------------------------------
# Hostile requests


def _good_request(target: _hostile.Target) -> bool:
    import httpx

    try:
        response = httpx.post(f"{target.rest_url}/v1/models/{MODEL}:predict",
                              json=_hostile.GOOD, timeout=30)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def run_hostile(tree: Tree, base: Path, work: Path, rss_cap: int) -> dict[str, Any]:
    cases = _hostile.all_cases()
    slow = [c for c in cases if c.transport == "TCP" and (
        "stall" in c.name or c.name in ("connection that never sends",
                                        "idle keep-alive connection"))]
    rows: list[dict[str, Any]] = []
    server: Server | None = None

    def fresh() -> Server:
        nonlocal server
        if server is None or not server.alive():
            server = start_server(tree, base, work, rss_cap)
        return server

    # The waiting cases (timeouts) run side by side on a server of their own, the others one by
    # one (a case that ends the server must not end the waits).
    waiting = start_server(tree, base, work, rss_cap)
    waits: dict[str, Any] = {}

    def wait_case(case: _hostile.Case) -> None:
        waits[case.name] = case.run(waiting.target)

    threads = [threading.Thread(target=wait_case, args=(c,)) for c in slow]
    for thread in threads:
        thread.start()
    for case in cases:
        if case in slow:
            continue
        current = fresh()
        log_before = len(current.log())
        rss_before = current.rss()
        started = time.perf_counter()
        try:
            outcome = case.run(current.target)
        except Exception as exc:  # noqa: BLE001 - the client side broke: report it
            outcome = _hostile.Outcome("none", detail=f"client error {type(exc).__name__}")
        time.sleep(0.3)
        lived = current.alive()
        log = current.log()[log_before:]
        rows.append({
            "case": case.name, "transport": case.transport, "outcome": outcome.describe(),
            "status": outcome.status, "json_error": outcome.json_error,
            "seconds": round(time.perf_counter() - started, 2),
            "server": "alive" if lived else current.exit_description(),
            "rss_delta_mib": round((current.rss() - rss_before) / 2**20, 1) if lived else None,
            "tracebacks": log.count("Traceback"),
            "log_lines": len([line for line in log.splitlines() if line.strip()]),
            "good_request_after": _good_request(current.target) if lived else False,
            "transport_level": case.transport_level,
        })
        print(f"  {tree.name}: {case.name}: {outcome.describe()[:90]} "
              f"[{rows[-1]['server']}]", flush=True)
    for thread in threads:
        thread.join(300)
    for case in slow:
        outcome = waits.get(case.name, _hostile.Outcome("none", detail="no answer"))
        rows.append({
            "case": case.name, "transport": case.transport, "outcome": outcome.describe(),
            "status": outcome.status, "json_error": outcome.json_error,
            "seconds": round(outcome.seconds, 1), "server": "alive" if waiting.alive() else
            waiting.exit_description(), "rss_delta_mib": None,
            "tracebacks": None, "log_lines": None,
            "good_request_after": _good_request(waiting.target),
            "transport_level": case.transport_level,
        })
    waiting_tracebacks = waiting.log().count("Traceback")
    waiting.stop()
    if server is not None:
        server.stop()
    memory = _examples_limit_memory(tree, base, work, rss_cap)
    return {"cases": rows, "examples_limit_memory": memory,
            "waiting_cases_tracebacks": waiting_tracebacks}


def _examples_limit_memory(tree: Tree, base: Path, work: Path, rss_cap: int) -> dict[str, Any]:
    """RSS before and after a request at the server's examples limit (typical short texts)."""
    import httpx

    server = start_server(tree, base, work, rss_cap)
    limit = server.target.max_examples
    rng = random.Random(0)

    def text() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 20)))

    def body(n: int) -> dict[str, Any]:
        return {"instances": [{"text": text(), "task_id": rng.randrange(7)} for _ in range(n)]}

    with httpx.Client(timeout=300) as client:
        url = f"{server.target.rest_url}/v1/models/{MODEL}:predict"
        for _ in range(5):
            client.post(url, json=body(256))
        time.sleep(1.5)
        before = server.rss()
        statuses = []
        after = []
        for _ in range(3):
            statuses.append(client.post(url, json=body(limit)).status_code)
            time.sleep(1.5)
            after.append(server.rss())
    server.stop()
    return {"examples": limit, "statuses": statuses, "rss_before_mib": round(before / 2**20, 1),
            "rss_after_mib": [round(a / 2**20, 1) for a in after],
            "delta_mib": round((max(after) - before) / 2**20, 1)}


# ------------------------------------------------------------------------------------------
# Load


@dataclass
class Load:
    """Clients in threads, half REST and half gRPC, each sending single-example requests;
    ``bad_fraction`` of them carry an out-of-range task id."""

    target: _hostile.Target
    concurrency: int
    bad_fraction: float = 0.0
    tasks: int = 7
    records: list[tuple[str, bool, str, float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        """Start the clients; return once each has had an answer (or after 60 s)."""
        lock = threading.Lock()
        for index in range(self.concurrency):
            thread = threading.Thread(target=self._client, args=(index, lock), daemon=True)
            self._threads.append(thread)
            thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with lock:
                if len({r[4] for r in self.records}) >= self.concurrency:
                    break
            time.sleep(0.05)
        return self

    def _client(self, index: int, lock: threading.Lock) -> None:
        import grpc
        import httpx
        from tensorflow.core.framework import tensor_pb2, types_pb2
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        rng = random.Random(index)
        rest = index % 2 == 0
        client = httpx.Client(timeout=60)
        channel = grpc.insecure_channel(self.target.grpc_address)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        url = f"{self.target.rest_url}/v1/models/{MODEL}:predict"
        while not self._stop.is_set():
            bad = rng.random() < self.bad_fraction
            task = 10_000 + rng.randrange(100) if bad else rng.randrange(self.tasks)
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
            started = time.perf_counter()
            try:
                if rest:
                    response = client.post(url, json={"instances": [{"text": text,
                                                                      "task_id": task}]})
                    outcome = "ok" if response.status_code == 200 else str(response.status_code)
                else:
                    request = predict_pb2.PredictRequest()
                    request.model_spec.name = MODEL
                    request.inputs["text"].CopyFrom(tensor_pb2.TensorProto(
                        dtype=types_pb2.DT_STRING, string_val=[text.encode()],
                        tensor_shape={"dim": [{"size": 1}]}))
                    request.inputs["task_id"].CopyFrom(tensor_pb2.TensorProto(
                        dtype=types_pb2.DT_INT32, int_val=[task],
                        tensor_shape={"dim": [{"size": 1}]}))
                    stub.Predict(request, timeout=60)
                    outcome = "ok"
            except grpc.RpcError as exc:
                outcome = exc.code().name
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            elapsed = time.perf_counter() - started
            with lock:
                self.records.append((("REST" if rest else "gRPC"), bad, outcome, elapsed, index))
        client.close()
        channel.close()

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        for thread in self._threads:
            thread.join(120)
        good = [r for r in self.records if not r[1]]
        bad = [r for r in self.records if r[1]]
        good_failed = [r for r in good if r[2] != "ok"]
        latencies = [r[3] * 1e3 for r in good if r[2] == "ok"] or [0.0]
        return {
            "requests": len(self.records), "good": len(good), "bad": len(bad),
            "good_failed": len(good_failed),
            "good_failures": sorted({r[2] for r in good_failed}),
            "bad_answered_ok": sum(1 for r in bad if r[2] == "ok"),
            "p50_ms": round(percentile(latencies, 50), 2),
            "p99_ms": round(percentile(latencies, 99), 2),
        }


def run_load(tree: Tree, base: Path, work: Path, rss_cap: int, seconds: float,
             concurrency: int) -> list[dict[str, Any]]:
    batching = ["--enable_batching", "--batching_parameters_file",
                str(ROOT / "docker" / "batching_parameters.txt")]
    rows = []
    for name, flags, bad in (("batching off", [], 0.0), ("batching on", batching, 0.0),
                             ("batching off, 5% bad task ids", [], 0.05),
                             ("batching on, 5% bad task ids", batching, 0.05)):
        server = start_server(tree, base, work, rss_cap, flags)
        load = Load(server.target, concurrency, bad).start()
        time.sleep(seconds)
        result = load.stop()
        result.update(scenario=name, concurrency=concurrency, seconds=seconds,
                      throughput_rps=round(result["requests"] / seconds, 1),
                      server="alive" if server.alive() else server.exit_description())
        rows.append(result)
        print(f"  {tree.name}: load {name}: {result}", flush=True)
        server.stop()
    return rows


# ------------------------------------------------------------------------------------------
# Bad days under load


def _publish(base: Path, version: int, fill: Callable[[Path], None]) -> None:
    staging = base / f"tmp-{version}"
    staging.mkdir()
    fill(staging)
    staging.rename(base / str(version))


def _status(target: _hostile.Target) -> dict[str, Any]:
    import httpx

    try:
        response = httpx.get(f"{target.rest_url}/v1/models/{MODEL}", timeout=10)
        return {s["version"]: s for s in response.json().get("model_version_status", [])}
    except (httpx.HTTPError, ValueError):
        return {}


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def run_versions(tree: Tree, model: Path, work: Path, rss_cap: int,
                 concurrency: int) -> list[dict[str, Any]]:
    base = work / "versions" / MODEL
    base.mkdir(parents=True)
    shutil.copytree(model / "1", base / "1")
    server = start_server(tree, base, work, rss_cap)
    rows = []

    def scenario(name: str, act: Callable[[], Any]) -> None:
        load = Load(server.target, concurrency).start()
        time.sleep(1.0)
        shown = act()
        time.sleep(1.0)
        result = load.stop()
        rows.append({"scenario": name, "requests": result["requests"],
                     "failed": result["good_failed"], "failures": result["good_failures"],
                     "status": shown, "server": "alive" if server.alive() else
                     server.exit_description()})
        print(f"  {tree.name}: {rows[-1]}", flush=True)

    def corrupt() -> Any:
        def fill(path: Path) -> None:
            (path / "saved_model.pb").write_bytes(os.urandom(4096))
            (path / "variables").mkdir()
        _publish(base, 2, fill)
        _wait(lambda: _status(server.target).get("2", {}).get("status", {}).get("error_code",
                                                                                 "OK") != "OK", 30)
        status = _status(server.target).get("2", {})
        return f"v2 {status.get('state')} {status.get('status', {}).get('error_code')}"

    def late() -> Any:
        target = base / "3"
        target.mkdir()  # a non-atomic copy: the folder first, files over 2 seconds
        for item in sorted((model / "1").iterdir(), key=lambda p: p.name == "saved_model.pb"):
            time.sleep(0.5)
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, target / item.name)
        _wait(lambda: _status(server.target).get("3", {}).get("state") == "AVAILABLE", 60)
        return f"v3 {_status(server.target).get('3', {}).get('state')}"

    def deleted() -> Any:
        # Roll back by deleting: the serving version's folder and the corrupt one go; version 1
        # (still on disk) is loaded and takes over before version 3 is unloaded.
        shutil.rmtree(base / "3")
        shutil.rmtree(base / "2")
        _wait(lambda: _status(server.target).get("3", {}).get("state") == "END", 60)
        states = {v: s["state"] for v, s in _status(server.target).items()}
        return f"versions {states}"

    scenario("corrupt version published", corrupt)
    scenario("version copied in slowly (no rename)", late)
    scenario("serving version's folder deleted (rollback)", deleted)
    server.stop()
    return rows


def run_sigterm(tree: Tree, base: Path, work: Path, rss_cap: int,
                concurrency: int) -> dict[str, Any]:
    server = start_server(tree, base, work, rss_cap, ["--drain-seconds", "20"])
    load = Load(server.target, concurrency).start()
    time.sleep(2.0)
    sent_at = time.perf_counter()
    server.process.send_signal(signal.SIGTERM)
    try:
        code = server.process.wait(60)
    except subprocess.TimeoutExpired:
        server.process.kill()
        code = -9
    drain = time.perf_counter() - sent_at
    load.stop()
    # Answered, refused (never reached the server: no connection, or gRPC UNAVAILABLE), or
    # lost (anything else: the server took the request and did not answer it).
    refused = {"ConnectError", "UNAVAILABLE"}
    answered = [r for r in load.records if r[2] == "ok"]
    lost = [r for r in load.records if r[2] not in ({"ok"} | refused)]
    return {"exit_code": code, "drain_seconds": round(drain, 2), "answered": len(answered),
            "requests": len(answered) + len(lost), "lost": len(lost),
            "lost_kinds": sorted({r[2] for r in lost}),
            "tracebacks": server.log().count("Traceback")}


def run_kill_exporter(tree: Tree, sources: Path, model: Path, work: Path, rss_cap: int,
                      concurrency: int) -> dict[str, Any]:
    base = work / "exporter" / MODEL
    base.mkdir(parents=True)
    shutil.copytree(model / "1", base / "1")
    server = start_server(tree, base, work, rss_cap)
    load = Load(server.target, concurrency).start()
    export = [sys.executable, "-m", "headswitch.cli", "export",
              *sorted(str(p) for p in sources.glob("*.keras")), "--out", str(base),
              "--manifest", str(sources / "manifest.yaml")]
    process = subprocess.Popen(export, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=tree.env())
    staged = _wait(lambda: any(p.name.startswith(".headswitch-tmp-") for p in base.iterdir()),
                   180)
    time.sleep(1.0)
    process.kill()
    process.wait()
    numbered = sorted(p.name for p in base.iterdir() if p.name.isdigit())
    time.sleep(2.0)
    again = subprocess.run(export, capture_output=True, text=True, env=tree.env(), timeout=600,
                           check=False)
    loaded = _wait(lambda: _status(server.target).get("2", {}).get("state") == "AVAILABLE", 120)
    result = load.stop()
    server.stop()
    return {"killed_while_staging": staged, "numbered_after_kill": numbered,
            "second_export_exit": again.returncode, "version_2_available": loaded,
            "requests": result["requests"], "failed": result["good_failed"],
            "failures": result["good_failures"]}


# ------------------------------------------------------------------------------------------


def example_models(model_dir: Path | None, work: Path) -> Path:
    """``model_dir``, or the 7-task example models built in ``work``."""
    if model_dir is not None:
        return model_dir
    sources = work / "example-models"
    subprocess.run([sys.executable, "-m", "headswitch.cli", "example-models", "--tasks",
                    "7", "--out", str(sources)], check=True, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    return sources


def exported_trees(before: str | None, sources: Path, work: Path
                   ) -> Iterator[tuple[Tree, Path, Path]]:
    """This checkout, and with ``before`` that revision too: each tree, its own folder in
    ``work``, and the model its own exporter writes there from ``sources`` (the model changes
    with the revision too)."""
    trees = [Tree("now")]
    if before:
        trees.append(checkout(before, work / "before"))
    for tree in trees:
        tree_work = work / re.sub(r"\W+", "-", tree.name)
        tree_work.mkdir()
        yield tree, tree_work, export_model(tree, sources, tree_work)


def export_model(tree: Tree, sources: Path, work: Path) -> Path:
    """Version 1 of the example models, written by this revision's exporter."""
    base = work / "models" / MODEL
    subprocess.run([sys.executable, "-m", "headswitch.cli", "export",
                    *sorted(str(p) for p in sources.glob("*.keras")), "--out", str(base),
                    "--manifest", str(sources / "manifest.yaml")],
                   check=True, stdout=subprocess.DEVNULL, env=tree.env(), cwd=work)
    return base


def run_suite(tree: Tree, sources: Path, base: Path, work: Path, args: argparse.Namespace
              ) -> dict[str, Any]:
    cap = int(args.rss_cap_gib * 2**30)
    print(f"{tree.name}: hostile requests", flush=True)
    hostile = run_hostile(tree, base, work, cap)
    print(f"{tree.name}: load", flush=True)
    load = run_load(tree, base, work, cap, args.load_seconds, args.concurrency)
    print(f"{tree.name}: bad days", flush=True)
    versions = run_versions(tree, base, work, cap, args.concurrency // 2)
    sigterm = run_sigterm(tree, base, work, cap, args.concurrency // 2)
    exporter = run_kill_exporter(tree, sources, base, work, cap, args.concurrency // 2)
    return {"hostile": hostile, "load": load, "versions": versions, "sigterm": sigterm,
            "kill_exporter": exporter}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", metavar="REV", help="also run the server of this revision")
    parser.add_argument("--model-dir", type=Path, help="example-models folder to reuse "
                        "(with manifest.yaml); built when absent")
    parser.add_argument("--load-seconds", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rss-cap-gib", type=float, default=4.0)
    parser.add_argument("--quick", action="store_true", help="short load runs")
    add_results_option(parser)
    args = parser.parse_args(argv)
    args.results = results_dir(args)
    if args.quick:
        args.load_seconds = min(args.load_seconds, 4.0)
    with tempfile.TemporaryDirectory(prefix="headswitch-faults-") as tmp:
        work = Path(tmp)
        if args.model_dir is None:
            print("building the 7-task example models", flush=True)
        sources = example_models(args.model_dir, work)
        results: dict[str, Any] = {"machine": machine(), "model": "example models, 7 tasks",
                                   "concurrency": args.concurrency,
                                   "load_seconds": args.load_seconds}
        for tree, tree_work, base in exported_trees(args.before, sources, work):
            results[tree.name] = run_suite(tree, sources, base, tree_work, args)
    write_json(args.results / "faults.json", results)
    (args.results / "faults.md").write_text(report(results))
    print(report(results))
    return 0


def report(results: dict[str, Any]) -> str:
    names = [k for k in results if k == "now" or k.startswith("before")]
    lines = [f"# Fault suite ({results['machine']})", "",
             "Embedded server (`headswitch serve`) on loopback, 7-task example model.", ""]
    header = "| case | " + " | ".join(names) + " |"
    lines += ["## Hostile requests", "", header, "|---|" + "---|" * len(names)]
    by_tree = {n: {r["case"]: r for r in results[n]["hostile"]["cases"]} for n in names}
    for case in by_tree[names[0]]:
        cells = []
        for n in names:
            row = by_tree[n].get(case)
            if row is None:
                cells.append("-")
                continue
            cell = " ".join(row["outcome"].replace("|", "&#124;").split())[:80]
            if row["server"] != "alive":
                cell += f" **server {row['server']}**"
            if row.get("tracebacks"):
                cell += f" ({row['tracebacks']} traceback(s) logged)"
            cells.append(cell)
        lines.append(f"| {case.replace('|', '&#124;')} | " + " | ".join(cells) + " |")
    lines += ["", "Stalled and idle connections ran side by side on a server of their own; its log "
              "had " + ", ".join(f"{results[n]['hostile']['waiting_cases_tracebacks']} "
                                 f"traceback(s) ({n})" for n in names) + ".",
              "", "## RSS after a request at the examples limit", ""]
    for n in names:
        m = results[n]["hostile"]["examples_limit_memory"]
        lines.append(f"- {n}: {m['examples']} examples, statuses {m['statuses']}, "
                     f"RSS {m['rss_before_mib']} MiB before, {m['rss_after_mib']} after "
                     f"(+{m['delta_mib']} MiB)")
    lines += ["", "## Load (single-example requests, half REST half gRPC)", "",
              "| server | scenario | requests | good failed | p50 ms | p99 ms | req/s |",
              "|---|---|---|---|---|---|---|"]
    for n in names:
        for r in results[n]["load"]:
            lines.append(f"| {n} | {r['scenario']} | {r['requests']} | {r['good_failed']} "
                         f"| {r['p50_ms']} | {r['p99_ms']} | {r['throughput_rps']} |")
    lines += ["", "## Bad days under load", "",
              "| server | scenario | requests | failed | status |", "|---|---|---|---|---|"]
    for n in names:
        for r in results[n]["versions"]:
            lines.append(f"| {n} | {r['scenario']} | {r['requests']} | {r['failed']} "
                         f"| {r['status']} |")
        s = results[n]["sigterm"]
        lines.append(f"| {n} | SIGTERM under load | {s['requests']} | {s['lost']} lost "
                     f"| exit {s['exit_code']}, drained in {s['drain_seconds']} s |")
        k = results[n]["kill_exporter"]
        lines.append(f"| {n} | kill -9 of the exporter mid-export | {k['requests']} "
                     f"| {k['failed']} | numbered folders after kill {k['numbered_after_kill']}; "
                     f"next export exit {k['second_export_exit']}, v2 available "
                     f"{k['version_2_available']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
