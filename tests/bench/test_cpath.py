"""bench/_cpath.py runs a SavedModel the way TF Serving does (C++ loader, ``Session::Run``): it
must answer what the Python loader answers, surface the graph's errors with their status code,
and free the tensors it allocates."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from headswitch.contract import (
    INPUT_TASK,
    INPUT_TASK_ID,
    INPUT_TEXT,
    INPUT_UNUSED,
    OUTPUT_ERROR,
    OUTPUT_SCORES,
    PREDICT_OUTPUTS,
    SIGNATURE_IDS,
    SIGNATURE_NAMES,
    SIGNATURE_TASKS,
    TASKS_OUTPUT_LABELS,
)

BENCH = Path(__file__).resolve().parents[2] / "bench"
SERVING_TESTS = Path(__file__).resolve().parents[1] / "serving"
TEXTS = ["the striker scored twice", "free prize, click now", "", "été à Paris ✓", "ok ok ok"]


def _import(folder: Path, name: str) -> Any:
    sys.path.insert(0, str(folder))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(folder))


@pytest.fixture(scope="module")
def cpath() -> Any:
    return _import(BENCH, "_cpath")


@pytest.fixture(scope="module")
def session(cpath: Any, exported: Any) -> Any:
    with cpath.CSession(exported.path) as s:
        yield s


def _texts(texts: list[str]) -> NDArray[Any]:
    return np.array([t.encode() for t in texts], dtype=object)


def _same(got: dict[str, NDArray[Any]], want: dict[str, Any]) -> None:
    assert set(got) == set(PREDICT_OUTPUTS) == set(want)
    for name in PREDICT_OUTPUTS:
        expected = want[name].numpy()
        assert got[name].shape == expected.shape, name
        if expected.dtype == object:
            assert got[name].tolist() == expected.tolist(), name
        else:
            assert got[name].dtype == expected.dtype, name
            np.testing.assert_allclose(got[name], expected, rtol=0, atol=1e-6, err_msg=name)


def test_agrees_with_the_python_loader(session: Any, loaded: Any, task_names: list[str]) -> None:
    import tensorflow as tf

    ids = np.array([0, 3, 99, -1, len(task_names) - 1], np.int32)  # mixed, two bad ids
    got = session.call(SIGNATURE_IDS, {INPUT_TEXT: _texts(TEXTS), INPUT_TASK_ID: ids})
    want = loaded.signatures[SIGNATURE_IDS](text=tf.constant(TEXTS), task_id=tf.constant(ids))
    _same(got, want)
    assert [e == b"" for e in got[OUTPUT_ERROR]] == [True, True, False, False, True]
    assert got[OUTPUT_SCORES][0].sum() > 0

    names = [task_names[1], "no such task", task_names[4], task_names[0], task_names[2]]
    got = session.call(SIGNATURE_NAMES, {INPUT_TEXT: _texts(TEXTS),
                                         INPUT_TASK: np.array(names, dtype=object)})
    want = loaded.signatures[SIGNATURE_NAMES](text=tf.constant(TEXTS), task=tf.constant(names))
    _same(got, want)
    assert got[OUTPUT_ERROR][1] != b"" and got[OUTPUT_ERROR][0] == b""


def test_caller_thread_session_answers_the_same(cpath: Any, exported: Any, loaded: Any) -> None:
    """bench/overhead.py --inter-op -1: every node runs in the calling thread."""
    import tensorflow as tf

    overhead = _import(BENCH, "overhead")
    assert overhead.session_config(0) == b""
    ids = np.array([2, 0, 99, 1, 3], np.int32)
    with cpath.CSession(exported.path, config=overhead.session_config(-1)) as inline:
        got = inline.call(SIGNATURE_IDS, {INPUT_TEXT: _texts(TEXTS), INPUT_TASK_ID: ids})
    want = loaded.signatures[SIGNATURE_IDS](text=tf.constant(TEXTS), task_id=tf.constant(ids))
    _same(got, want)


def test_fetches_only_what_is_asked(session: Any) -> None:
    got = session.call(SIGNATURE_IDS, {INPUT_TEXT: _texts(TEXTS[:2]),
                                       INPUT_TASK_ID: np.array([1, 2], np.int32)},
                       fetch=[OUTPUT_SCORES])
    assert list(got) == [OUTPUT_SCORES] and got[OUTPUT_SCORES].shape[0] == 2


def test_rejected_request_is_invalid_argument(cpath: Any, session: Any) -> None:
    with pytest.raises(cpath.CPathError) as caught:  # text and task_id of different lengths
        session.call(SIGNATURE_IDS, {INPUT_TEXT: _texts(TEXTS[:3]),
                                     INPUT_TASK_ID: np.array([0, 1], np.int32)})
    assert caught.value.code == "INVALID_ARGUMENT"
    # The session keeps answering after a failed run.
    ok = session.call(SIGNATURE_IDS, {INPUT_TEXT: _texts(TEXTS[:1]),
                                      INPUT_TASK_ID: np.array([0], np.int32)})
    assert ok[OUTPUT_ERROR].tolist() == [b""]


def test_assert_in_the_graph_is_invalid_argument(cpath: Any, tmp_path: Path) -> None:
    fixture = _import(SERVING_TESTS, "serving_fixture_model")
    fixture.build_model(tmp_path / "1")
    with cpath.CSession(tmp_path / "1") as s:
        good = s.call("serving_default", {"text": _texts(["abc"]),
                                          "task_id": np.array([1], np.int32)})
        assert good["top_label"].tolist() == [fixture.expected("abc", 1)["top_label"].encode()]
        with pytest.raises(cpath.CPathError) as caught:
            s.call("serving_default", {"text": _texts(["abc", "de"]),
                                       "task_id": np.array([1, 7], np.int32)})
    assert caught.value.code == "INVALID_ARGUMENT"
    assert "task_id must be in the valid range 0..2" in caught.value.message


def test_names_the_unknown_signature_input_or_output(cpath: Any, session: Any) -> None:
    text = {INPUT_TEXT: _texts(["a"])}
    with pytest.raises(cpath.CPathError, match=r"missing \['task_id'\]"):
        session.prepare(SIGNATURE_IDS, text)
    with pytest.raises(cpath.CPathError, match=r"unknown \['nope'\]"):
        session.prepare(SIGNATURE_IDS, {**text, INPUT_TASK_ID: np.array([0], np.int32),
                                        "nope": np.array([0], np.int32)})
    with pytest.raises(cpath.CPathError, match="asked for"):
        session.prepare(SIGNATURE_IDS, {**text, INPUT_TASK_ID: np.array([0], np.int32)},
                        fetch=["labels"])
    with pytest.raises(cpath.CPathError) as caught:
        session.prepare("no_such_signature", text)
    assert caught.value.code == "NOT_FOUND" and "serving_default" in caught.value.message
    assert "no_such_signature" not in session.signatures  # the lookup added nothing


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def test_frees_what_it_allocates(session: Any) -> None:
    """Inputs: each prepare copies ~0.5 MiB of strings into TF_Tensors; outputs: each run of
    ``tasks`` for 2048 examples returns ~2 MiB of tensors. A leak of either would add hundreds
    of MiB over the loops; both are cheap for the graph."""
    texts = _texts([f"word{i} " * 2000 for i in range(32)])  # 32 texts of ~14 KB
    feeds = {INPUT_TEXT: texts, INPUT_TASK_ID: np.arange(32, dtype=np.int32) % 7}
    many = session.prepare(SIGNATURE_TASKS, {INPUT_UNUSED: np.zeros(2048, np.int32)})
    few = {INPUT_UNUSED: np.zeros(4, np.int32)}

    def loops(n: int) -> None:
        for _ in range(n):
            session.release(session.prepare(SIGNATURE_IDS, feeds))
        for _ in range(n // 4):
            session.run(many)
            assert session.call(SIGNATURE_TASKS, few)[TASKS_OUTPUT_LABELS].shape[0] == 4

    loops(40)  # warm up: executors, allocator pools
    before = _rss()
    loops(800)
    grown = _rss() - before
    session.release(many)
    assert grown < 64 * 2**20, f"RSS grew by {grown / 2**20:.0f} MiB over the loops"
