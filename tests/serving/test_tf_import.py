"""``headswitch._quiet.import_tensorflow``: one set of TensorFlow settings whatever imports it
first, TF Text's ops registered as ``tensorflow_model_server`` links them, and a model that
needs an op the server lacks refused at once with the package that provides it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import tf_serving_models as models

from headswitch._quiet import TF_TEXT_OPS, package_for_op

ROOT = Path(__file__).resolve().parents[2]

_STATE = """
import json, sys
{first}
from headswitch._quiet import import_tensorflow
{second}
from tensorflow.python.client import pywrap_tf_session
from tensorflow.core.framework import op_def_pb2
from tensorflow.python.util import _pywrap_util_port
ops = op_def_pb2.OpList.FromString(pywrap_tf_session.TF_GetBuffer(
    pywrap_tf_session.TF_GetAllOpList()))
print(json.dumps({{"onednn": _pywrap_util_port.IsMklEnabled(),
                  "text_ops": "CaseFoldUTF8" in {{op.name for op in ops.op}},
                  "keras": "keras" in sys.modules}}))
"""


def _state(first: str, second: str) -> dict[str, bool]:
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    done = subprocess.run([sys.executable, "-c", _STATE.format(first=first, second=second)],
                          capture_output=True, text=True, timeout=300, env=env, check=True)
    result: dict[str, bool] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.slow
@pytest.mark.parametrize(("first", "second"), [
    ("", "import_tensorflow(keras=False); import_tensorflow()"),
    ("", "import_tensorflow(); import_tensorflow(keras=False)"),
    ("import tensorflow", "import_tensorflow(keras=False)"),
    ("import headswitch.serving; import headswitch.export", "import_tensorflow()"),
], ids=["server-first", "export-first", "tensorflow-first", "packages-first"])
def test_the_settings_do_not_depend_on_what_imports_first(first: str, second: str) -> None:
    state = _state(first, second)
    assert state["onednn"] is False
    assert state["text_ops"] is True  # tensorflow-text is installed in the test environment


@pytest.mark.slow
def test_tf_text_ops_list_is_what_the_package_registers() -> None:
    probe = """
import json
from tensorflow.python.client import pywrap_tf_session as c
from tensorflow.core.framework import op_def_pb2
def ops():
    return {o.name for o in op_def_pb2.OpList.FromString(c.TF_GetBuffer(c.TF_GetAllOpList())).op}
before = ops()
import tensorflow_text
print(json.dumps(sorted(ops() - before)))
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=300, check=True)
    assert set(json.loads(done.stdout.splitlines()[-1])) == TF_TEXT_OPS
    assert "text" in (package_for_op("CaseFoldUTF8") or "")
    assert package_for_op("MatMul") is None


# A server in a child process without TF Text: the import fails as if it were not installed.
_NO_TEXT_SERVER = """
import sys
sys.modules["tensorflow_text"] = None
from headswitch.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_a_model_with_tf_text_ops_names_the_text_extra_at_once(tmp_path: Path) -> None:
    """issue 21: the status and the log say which package provides the missing op, at once
    (no load retries: the op cannot appear later in this process)."""
    base = tmp_path / "model"
    models.half_plus_two_tf2(base, version="1")
    staging = tmp_path / "staging"
    models.tf_text_regression(staging, version="2")
    log = tmp_path / "server.log"
    with log.open("w") as err:
        server = subprocess.Popen(
            [sys.executable, "-c", _NO_TEXT_SERVER, "serve", str(base), "--model_name=m",
             "--grpc-port=0", "--rest-port=0", "--file_system_poll_wait_seconds=1"],
            stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
    try:
        assert server.stdout is not None
        rest = server.stdout.readline().rsplit("REST ", 1)[1].strip()
        (staging / "2").rename(base / "2")
        started = time.monotonic()
        status: dict[str, object] = {}
        while time.monotonic() - started < 60:
            versions = httpx.get(f"{rest}/v1/models/m", timeout=10).json()
            status = next((v for v in versions["model_version_status"] if v["version"] == "2"),
                          {})
            if status.get("state") == "END":
                break
            time.sleep(0.5)
        # max_num_load_retries is 5 and the retry interval 60 s: END within seconds means no
        # retry was made.
        assert status.get("state") == "END", status
        message = status["status"]["error_message"]  # type: ignore[index]
        assert "Op type not registered 'CaseFoldUTF8'" in message
        assert 'pip install "headswitch[text]"' in message
        assert httpx.get(f"{rest}/v1/models/m/versions/1", timeout=10).status_code == 200
    finally:
        server.terminate()
        server.wait(60)
    assert 'CaseFoldUTF8 is a TF Text op: pip install "headswitch[text]"' in log.read_text()
