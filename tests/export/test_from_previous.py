"""Versions built from a previous one (``export_from``): tasks added, replaced and removed without
the other original files, stable ids, the regression check, refusals that write nothing, the
backbone handed out by ``export_backbone`` and a head trained on it."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from headswitch.contract import OUTPUT_ERROR, OUTPUT_SCORES, OUTPUT_TOP_LABEL
from headswitch.examples import sample_texts
from headswitch.export import ExportError, export_backbone, export_from
from headswitch.export._head_store import HeadReader

TEXTS = sample_texts(12) + ["", "zzqx unknown words!!"]
BENCH = Path(__file__).resolve().parents[2] / "bench"


def _c_session(version: Path) -> Any:
    """The version loaded by TensorFlow's C++ SavedModel loader, as TF Serving loads it."""
    sys.path.insert(0, str(BENCH))
    try:
        import _cpath
    finally:
        sys.path.remove(str(BENCH))
    return _cpath.CSession(version)


def _manifest(version: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((version / "assets.extra" / "headswitch.json").read_text())
    return data


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(folder)).encode() + f.read_bytes())
    return h.hexdigest()


def _answers(version: Path, ids: list[int]) -> dict[str, Any]:
    loaded = tf.saved_model.load(str(version))
    texts = [TEXTS[i % len(TEXTS)] for i in range(len(ids))]
    out = loaded.signatures["serving_default"](text=tf.constant(texts),
                                               task_id=tf.constant(ids, tf.int32))
    return {k: v.numpy() for k, v in out.items()}


@pytest.fixture
def base(exported: Any, tmp_path: Path) -> Path:
    """A model base holding a copy of the session's 7-task export as version 1."""
    folder = tmp_path / "headswitch"
    shutil.copytree(exported.path, folder / "1")
    return folder


@pytest.fixture(scope="module")
def backbone_file(exported: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("backbone") / "backbone.keras"
    report = export_backbone(exported.path, path)
    assert report.path == path and report.features_width == 64
    return path


def _new_model(backbone_file: Path, out: Path, name: str, classes: int = 3,
               generic: bool = False) -> Path:
    """An 8th task trained on the handed-out backbone, as a user trains one."""
    backbone = keras.models.load_model(backbone_file, compile=False)
    text = keras.Input(shape=(), dtype="string", name="text")
    x = backbone(text)
    if generic:  # not a Dense chain: stored as a Keras file, run as it is
        x = keras.layers.LayerNormalization(name="norm")(x)
    model = keras.Model(text, keras.layers.Dense(classes, activation="softmax",
                                                 name="head")(x), name=name)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    texts = np.array(sample_texts(64), dtype=object)
    model.fit(texts, np.arange(64) % classes, epochs=1, batch_size=32, verbose=0)
    model.save(out)
    return out


def test_backbone_is_frozen_and_exact(exported: Any, backbone_file: Path) -> None:
    model = keras.models.load_model(backbone_file, compile=False)
    assert not model.trainable and not model.trainable_weights
    loaded = tf.saved_model.load(str(exported.path))
    served = loaded.features(tf.constant(TEXTS))
    mine = tf.function(lambda t: model(t, training=False), autograph=False)(tf.constant(TEXTS))
    assert np.array_equal(mine.numpy(), served.numpy())


def test_add_a_head_trained_on_the_backbone(base: Path, backbone_file: Path, tmp_path: Path,
                                            task_names: list[str]) -> None:
    new = _new_model(backbone_file, tmp_path / "intent.keras", "intent")
    before = _digest(base / "1")
    report = export_from(base, [new])
    assert report.version == 2 and report.previous_version == 1
    by_id = {t.task_id: t for t in report.tasks}
    assert [by_id[i].name for i in range(7)] == task_names  # ids and names kept
    assert by_id[7].name == "intent" and by_id[7].change == "added"
    assert by_id[7].max_abs_diff <= 1e-5 and by_id[7].checked_against == "file"
    assert all(by_id[i].change == "unchanged" and by_id[i].checked_against == "version 1"
               for i in range(7))
    assert _digest(base / "1") == before  # the previous version is untouched
    old, now = _answers(base / "1", list(range(7)) * 3), _answers(base / "2", list(range(7)) * 3)
    np.testing.assert_allclose(now[OUTPUT_SCORES][:, :5], old[OUTPUT_SCORES], atol=1e-6)
    assert list(now[OUTPUT_TOP_LABEL]) == list(old[OUTPUT_TOP_LABEL])
    manifest = _manifest(base / "2")
    assert manifest["next_task_id"] == 8 and manifest["history"][-1]["added"] == [7]
    assert manifest["tasks"][7]["since"] == 2 and manifest["tasks"][0]["since"] == 1


def test_replace_and_remove_keep_ids(base: Path, example_models: Any, tmp_path: Path) -> None:
    changed = keras.models.load_model(example_models.paths[0], compile=False)  # topic
    head = changed.get_layer("head_out")
    head.set_weights([w * 1.5 for w in head.get_weights()])
    changed.save(tmp_path / "topic_v2.keras")
    report = export_from(base, replace={"topic": tmp_path / "topic_v2.keras"}, remove=["spam"])
    by_id = {t.task_id: t for t in report.tasks}
    assert by_id[0].name == "topic" and by_id[0].change == "replaced"
    assert by_id[0].labels == example_models.tasks[0].labels  # labels carried over
    assert 2 not in by_id and report.removed == [{"id": 2, "name": "spam", "version": 2}]
    loaded = tf.saved_model.load(str(base / "2"))
    out = loaded.signatures["serving_default"](text=tf.constant(["free prize", "hello"]),
                                               task_id=tf.constant([2, 1], tf.int32))
    assert out[OUTPUT_ERROR].numpy()[0].decode() == "task 2 ('spam') was removed in version 2"
    assert out[OUTPUT_ERROR].numpy()[1] == b""
    named = loaded.signatures["by_name"](text=tf.constant(["x"]), task=tf.constant(["spam"]))
    assert "was removed in version 2" in named[OUTPUT_ERROR].numpy()[0].decode()
    listed = loaded.signatures["tasks"](unused=tf.constant([0], tf.int32))
    assert list(listed["task_id"].numpy()[0]) == [0, 1, 3, 4, 5, 6]
    want = changed(tf.constant(TEXTS[:3])).numpy()
    got = loaded.signatures["serving_default"](text=tf.constant(TEXTS[:3]),
                                               task_id=tf.constant([0] * 3, tf.int32))
    np.testing.assert_allclose(got[OUTPUT_SCORES].numpy()[:, :5], want, atol=1e-5)


def test_chain_of_versions_never_reuses_ids(base: Path, backbone_file: Path,
                                            tmp_path: Path) -> None:
    first = _new_model(backbone_file, tmp_path / "intent.keras", "intent")
    second = _new_model(backbone_file, tmp_path / "tone.keras", "tone", classes=2, generic=True)
    export_from(base, [first])  # 2: intent is id 7
    export_from(base, remove=["intent"])  # 3
    v4 = export_from(base / "3", [second])  # 4: tone gets 8, never 7
    v5 = export_from(base, remove=["urgency"])  # 5: keeps the generic head of tone
    assert {t.name: t.task_id for t in v4.tasks}["tone"] == 8
    tone = {t.name: t for t in v5.tasks}["tone"]
    assert tone.head == "generic" and tone.stored["kind"] == "keras"
    assert tone.change == "unchanged" and tone.since == 4
    manifest = _manifest(base / "5")
    assert [h["version"] for h in manifest["history"]] == [1, 2, 3, 4, 5]
    assert [(r["id"], r["version"]) for r in manifest["removed"]] == [(7, 3), (5, 5)]
    out = _answers(base / "5", [7, 5, 8])
    assert [e.decode() for e in out[OUTPUT_ERROR][:2]] == [
        "task 7 ('intent') was removed in version 3", "task 5 ('urgency') was removed in version 5"]
    assert out[OUTPUT_ERROR][2] == b""
    # The chain's last version still loads in the C++ loader (TF Serving's) and answers as in
    # Python.
    with _c_session(base / "5") as session:
        got = session.call("serving_default", {"text": np.array(TEXTS[:3], dtype=object),
                                               "task_id": np.array([0, 8, 7], np.int32)})
    np.testing.assert_allclose(got[OUTPUT_SCORES], _answers(base / "5", [0, 8, 7])[
        OUTPUT_SCORES], atol=1e-6)


def test_diverged_backbone_refused_nothing_written(base: Path, example_models: Any,
                                                    tmp_path: Path) -> None:
    model = keras.models.load_model(example_models.paths[3], compile=False)
    embed = model.get_layer("backbone").get_layer("embed")
    value = embed.embeddings.numpy()
    value[5, 3] += 1e-3
    embed.embeddings.assign(value)
    model.save(tmp_path / "drifted.keras")
    with pytest.raises(ExportError) as info:
        export_from(base, [tmp_path / "drifted.keras"])
    message = str(info.value)
    assert "drifted.keras" in message and "backbone differs from version 1" in message
    assert "embed/embeddings" in message and "max abs diff 0.001" in message
    assert sorted(p.name for p in base.iterdir()) == ["1"]


def test_regression_check_catches_a_changed_head(base: Path, monkeypatch: pytest.MonkeyPatch,
                                                 backbone_file: Path, tmp_path: Path) -> None:
    original = HeadReader._dense

    def altered(self: HeadReader, name: str, record: dict[str, Any], digest: str) -> Any:
        head = original(self, name, record, digest)
        if name == "sentiment":
            head.steps[-1].bias[0] += np.float32(0.05)  # one class: softmax changes
        return head

    monkeypatch.setattr(HeadReader, "_dense", altered)
    new = _new_model(backbone_file, tmp_path / "intent.keras", "intent")
    with pytest.raises(ExportError, match=r"regression check failed: 1 kept task\(s\) answer "
                       r"differently than in version 1 .*: sentiment"):
        export_from(base, [new])
    assert sorted(p.name for p in base.iterdir()) == ["1"]


def test_corrupt_store_and_bad_requests(base: Path, backbone_file: Path,
                                        tmp_path: Path) -> None:
    new = _new_model(backbone_file, tmp_path / "topic.keras", "topic")
    with pytest.raises(ExportError, match="already exists in version 1 .id 0.") as info:
        export_from(base, [new])
    assert "--replace topic=" in (info.value.hint or "")
    with pytest.raises(ExportError, match="version 1 has no task 'nope'"):
        export_from(base, remove=["nope"])
    with pytest.raises(ExportError, match="nothing to change"):
        export_from(base)
    with pytest.raises(ExportError, match="outputs 3 values, but the task has 5 labels"):
        export_from(base, replace={"topic": new})
    heads = base / "1" / "assets.extra" / "heads.npy"
    data = bytearray(heads.read_bytes())
    data[-1] ^= 0xFF
    heads.write_bytes(bytes(data))
    with pytest.raises(ExportError, match="does not match the SHA-256"):
        export_from(base, remove=["spam"])
    manifest = _manifest(base / "1")
    manifest["format_version"] = 1
    (base / "1" / "assets.extra" / "headswitch.json").write_text(json.dumps(manifest))
    with pytest.raises(ExportError, match="older headswitch") as old:
        export_from(base, remove=["spam"])
    assert "export it once more" in (old.value.hint or "")
    assert sorted(p.name for p in base.iterdir()) == ["1"]


def test_stored_heads_are_their_weights(exported: Any) -> None:
    """The head store holds each Dense head's weights and nothing else per task (the floor:
    <= 1.05x its weights + 1 KiB)."""
    manifest = _manifest(exported.path)
    extra = exported.path / "assets.extra"
    weights = sum(t.head_bytes for t in exported.tasks)
    assert (extra / "heads.npy").stat().st_size == weights + 128  # .npy header
    for task in manifest["tasks"]:
        entry = len(json.dumps({"stored": task["stored"], "head_sha256": task["head_sha256"]}))
        assert task["head_bytes"] + entry <= 1.05 * task["head_bytes"] + 1024


def test_cli_loop(base: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """backbone -> a new head -> export --from -> diff and inspect, as a user runs them."""
    from headswitch.cli import main

    out = tmp_path / "backbone.keras"
    assert main(["backbone", str(base / "1"), "--out", str(out)]) == 0
    assert f"wrote {out}" in capfd.readouterr().out
    assert main(["backbone", str(base), "--out", str(out)]) == 2
    assert "already exists" in capfd.readouterr().err
    new = _new_model(out, tmp_path / "intent.keras", "intent")
    assert main(["export", "--replace", f"topic={new}"]) == 2
    assert "--replace needs --from" in capfd.readouterr().err
    assert main(["export", "--from", str(base), str(new), "--remove", "spam", "--json"]) == 0
    report = json.loads(capfd.readouterr().out)
    assert report["version"] == 2 and report["removed"][0]["name"] == "spam"
    assert main(["diff", str(base / "1"), str(base / "2"), "--json"]) == 0
    diff = json.loads(capfd.readouterr().out)
    assert diff["counts"] == {"added": 1, "removed": 1, "replaced": 0, "other task": 0,
                              "unchanged": 6}
    assert diff["backbone"]["same"] and diff["b"]["served_bytes"] < diff["b"]["total_bytes"]
    assert main(["diff", str(base / "1"), str(base / "2")]) == 0
    shown = capfd.readouterr().out
    assert "intent" in shown and "spam" in shown and "(same)" in shown
    assert main(["inspect", str(base)]) == 0
    shown = capfd.readouterr().out
    assert "Task history" in shown and "intent (7)" in shown and "spam (2)" in shown


def test_server_picks_up_the_next_version(base: Path, backbone_file: Path,
                                          tmp_path: Path) -> None:
    """The embedded server serves version 2 as soon as it is published; old ids answer the
    same, the new task answers."""
    import time

    from headswitch.client import RestClient
    from headswitch.serving import ModelServer

    texts = TEXTS[:7]
    new = _new_model(backbone_file, tmp_path / "intent.keras", "intent")
    with ModelServer(model_name="headswitch", model_base_path=base, grpc_port=0, rest_port=0,
                     poll_seconds=0.2) as server:
        server.wait_until_available()
        url = server.rest_url
        assert url is not None
        with RestClient(url) as client:
            before = client.predict(texts, task=list(range(7)))
        export_from(base, [new])
        deadline = time.monotonic() + 60
        while 2 not in server.loaded_versions() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert 2 in server.loaded_versions()
        with RestClient(url) as client:
            after = client.predict(texts, task=list(range(7)))
            added = client.predict(["the striker scored twice"], task="intent")
    for old, now in zip(before, after):
        assert now.task_name == old.task_name and now.top_label == old.top_label
        assert list(now.scores) == list(old.scores)
        np.testing.assert_allclose(list(now.scores.values()), list(old.scores.values()),
                                   atol=1e-6)
    assert added[0].task_id == 7 and added[0].task_name == "intent"


def test_regression_calls_are_bounded() -> None:
    from headswitch.export._regression import CHUNK, CHUNK_TEXT_BYTES, _chunks

    assert _chunks([10] * 5) == [(0, 5)]
    assert _chunks([CHUNK_TEXT_BYTES, 1, CHUNK_TEXT_BYTES]) == [(0, 1), (1, 2), (2, 3)]
    assert _chunks([1] * (CHUNK + 1)) == [(0, CHUNK), (CHUNK, CHUNK + 1)]
    assert _chunks([]) == []


def test_clients_name_a_removed_task(base: Path, task_names: list[str]) -> None:
    """Through either client, a request for a removed task fails with the model's own "was
    removed in version V", by name and by id; a name that never existed keeps the client's
    message."""
    import asyncio

    from headswitch.client import AsyncRestClient, GrpcClient, HeadswitchError, RestClient
    from headswitch.serving import ModelServer

    spam = task_names.index("spam")
    said = f"task {spam} ('spam') was removed in version 2"
    export_from(base, remove=["spam"])
    with ModelServer(model_name="headswitch", model_base_path=base, grpc_port=0, rest_port=0,
                     poll_seconds=0.2) as server:
        server.wait_until_available()
        assert server.rest_url is not None and server.grpc_address is not None
        for client in (RestClient(server.rest_url), GrpcClient(server.grpc_address)):
            with client:
                with pytest.raises(HeadswitchError) as by_name:
                    client.predict(["free money", "hello"], task=["topic", "spam"])
                assert by_name.value.code == "INVALID_ARGUMENT"
                assert by_name.value.message == f"{said} (text 1, task 'spam')"
                with pytest.raises(HeadswitchError) as by_id:
                    client.predict(["hello"], task=spam)
                assert by_id.value.code == "INVALID_ARGUMENT" and said in by_id.value.message
                with pytest.raises(HeadswitchError, match="unknown task name 'weather'"):
                    client.predict(["hello"], task="weather")

        url = server.rest_url

        async def by_async() -> str:
            async with AsyncRestClient(url) as client:
                try:
                    await client.predict(["hello"], task="spam")
                except HeadswitchError as error:
                    return error.message
            return ""

        assert asyncio.run(by_async()) == f"{said} (text 0, task 'spam')"
