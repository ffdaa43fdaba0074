"""Models that do not all share one backbone: the refusal that names every group, and
``--backbone-groups``: one SavedModel with each backbone stored once, run only for its own
tasks' examples; next versions that add, extend and drop backbones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import formats_support as support
import keras
import numpy as np
import pytest
import tensorflow as tf
from formats_support import TEXTS, exported, keras_original, manifest_of

from headswitch.cli import main


def _backbone(tweak: str | None = None) -> Any:
    """The shared nested backbone (weights from seed 0); ``tweak`` fine-tunes one layer."""
    text = keras.Input(shape=(), dtype="string")
    x = text
    for layer in support.vectorized_trunk(0):
        x = layer(x)
    backbone = keras.Model(text, x, name="backbone")
    if tweak is not None:
        layer = backbone.get_layer(tweak)
        layer.set_weights([w + 0.01 for w in layer.get_weights()])
    return backbone


def _task(folder: Path, name: str, backbone: Any, seed: int, width: int = 3) -> Any:
    text = keras.Input(shape=(), dtype="string")
    keras.utils.set_random_seed(seed)
    model = keras.Model(text, keras.layers.Dense(width, activation="softmax")(backbone(text)))
    model.save(folder / f"{name}.keras")
    return model


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The issue's fleet: 5 tasks on backbone A, 2 on A with its top layer fine-tuned (B), 1 on
    A with its embedding fine-tuned (C); and, for next versions, one more task on B and one on
    a backbone D of its own."""
    folder = tmp_path_factory.mktemp("groups")
    kinds = ["A"] * 5 + ["B"] * 2 + ["C"]
    tweak = {"A": None, "B": "features", "C": "embed"}
    models = {f"t{i}_{k}": _task(folder, f"t{i}_{k}", _backbone(tweak[k]), i + 1, 2 + i % 3)
              for i, k in enumerate(kinds)}
    extra = {"t8_B": _task(folder, "t8_B", _backbone("features"), 20),
             "t9_D": _task(folder, "t9_D", _d_backbone(), 21)}
    return {"folder": folder, "models": models, "extra": extra,
            "paths": [folder / f"{name}.keras" for name in models]}


def _d_backbone() -> Any:
    """Another encoder: the same layers, other weights (seed 5)."""
    text = keras.Input(shape=(), dtype="string")
    x = text
    for layer in support.vectorized_trunk(5):
        x = layer(x)
    return keras.Model(text, x, name="backbone")


@pytest.fixture(scope="module")
def grouped(fleet: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("grouped") / "base"
    code = main(["export", *map(str, fleet["paths"]), "--out", str(base), "--backbone-groups",
                 "--json"])
    assert code == 0
    return {"base": base, "path": base / "1"}


def test_without_the_flag_the_refusal_names_every_group(fleet: dict[str, Any],
                                                        capfd: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    err = support.refused(capfd, tmp_path / "out", *fleet["paths"])
    assert "they form 3 backbone groups" in err
    assert "group 1: 5 models up to layer 'backbone'" in err and "t0_A.keras" in err
    assert "group 2: 2 models up to layer 'backbone'" in err and "t5_B.keras" in err
    assert "group 3: 1 model up to layer 'backbone'" in err and "t7_C.keras" in err
    assert "variable 'features/kernel' differs (max abs diff 0.01)" in err
    assert "variable 'embed/embeddings' differs (max abs diff 0.01)" in err
    assert "--backbone-groups" in err


def test_one_model_answers_like_every_original(fleet: dict[str, Any],
                                               grouped: dict[str, Any]) -> None:
    path = grouped["path"]
    originals = [keras_original(m) for m in fleet["models"].values()]
    assert support.check_against_originals(path, originals) <= 1e-5  # one batch mixing every group
    manifest = manifest_of(path)
    assert [b["id"] for b in manifest["backbones"]] == [0, 1, 2]
    assert [t["backbone"] for t in manifest["tasks"]] == [0] * 5 + [1] * 2 + [2]
    assert len({b["fingerprint_sha256"] for b in manifest["backbones"]}) == 3
    assert manifest["next_backbone_id"] == 3
    assert manifest["trunk"][-1] == "vectorize"  # C tuned the embedding: only that is shared
    support.check_cpp_loader(path, len(originals))


def test_each_backbone_runs_only_for_its_examples(fleet: dict[str, Any],
                                                  grouped: dict[str, Any]) -> None:
    """A batch of one group's tasks, of a group and bad ids, and of bad ids only: every example
    answers as alone; bad ones with their error, zero scores and no label."""
    loaded = tf.saved_model.load(str(grouped["path"]))
    run = loaded.signatures["serving_default"]
    originals = list(fleet["models"].values())
    for ids in ([5, 6, 5], [7, 99, 7, -1], [99, -5]):
        out = run(text=tf.constant(TEXTS[: len(ids)]), task_id=tf.constant(ids, tf.int32))
        for row, task in enumerate(ids):
            error = out["error"].numpy()[row].decode()
            if 0 <= task < len(originals):
                want = originals[task](tf.constant([TEXTS[row]])).numpy()[0]
                got = out["scores"].numpy()[row]
                np.testing.assert_allclose(got[: want.shape[0]], want, atol=1e-5)
                assert error == "" and out["top_label"].numpy()[row] != b""
            else:
                assert "task_id out of range" in error
                assert not np.any(out["scores"].numpy()[row])
                assert out["top_label"].numpy()[row] == b""
    # the C++ loader answers a one-group batch as the Python loader does
    cpp = support.run_in_cpp_loader(grouped["path"], TEXTS[:3], [5, 6, 5])
    python = run(text=tf.constant(TEXTS[:3]), task_id=tf.constant([5, 6, 5]))["scores"]
    np.testing.assert_allclose(cpp, python.numpy(), atol=1e-6)


def test_one_backbone_batches_skip_the_others(grouped: dict[str, Any]) -> None:
    """The choice between 'one backbone on the whole batch' and 'each on its own examples' is
    one Case op that TensorFlow must not lower to Switch/Merge (whose dead nodes still cost
    time on every call in a session)."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((grouped["path"] / "saved_model.pb").read_bytes())
    cases = [node for f in proto.meta_graphs[0].graph_def.library.function
             for node in f.node_def if node.op == "Case"]
    assert cases and all(not node.attr["_lower_using_switch_merge"].b for node in cases)
    assert all(len(node.attr["branches"].list.func) == 4 for node in cases)  # 3 + mixed
    # A mixed batch runs each backbone once, on its own examples: one cond per backbone and
    # one partition per input (texts, rows, positions), not one set per answer.
    ops = [node.op for f in proto.meta_graphs[0].graph_def.library.function
           for node in f.node_def]
    assert ops.count("If") == 3 and ops.count("DynamicPartition") == 3


def test_warmup_covers_every_backbone(grouped: dict[str, Any]) -> None:
    records = tf.data.TFRecordDataset(str(grouped["path"] / "assets.extra" /
                                          "tf_serving_warmup_requests"))
    from tensorflow_serving.apis import prediction_log_pb2

    seen: set[int] = set()
    for raw in records:
        log = prediction_log_pb2.PredictionLog.FromString(raw.numpy())
        inputs = log.predict_log.request.inputs
        if "task_id" in inputs:
            seen |= set(tf.make_ndarray(inputs["task_id"]).tolist())
    backbone_of = [t["backbone"] for t in manifest_of(grouped["path"])["tasks"]]
    assert {backbone_of[i] for i in seen} == {0, 1, 2}


def test_inspect_and_backbone_per_group(grouped: dict[str, Any], tmp_path: Path,
                                        capfd: pytest.CaptureFixture[str]) -> None:
    capfd.readouterr()
    assert main(["inspect", str(grouped["base"])]) == 0
    out = " ".join(capfd.readouterr().out.split())
    assert "Backbones (3)" in out and "t5_B, t6_B" in out
    assert main(["backbone", str(grouped["base"]), "--out", str(tmp_path / "x.keras")]) == 2
    err = " ".join(capfd.readouterr().err.split())
    assert "has 3 backbones" in err and "--group" in err
    assert main(["backbone", str(grouped["base"]), "--group", "1", "--out",
                 str(tmp_path / "b.keras"), "--json"]) == 0
    report = json.loads(capfd.readouterr().out)
    assert report["version"] == 1
    backbone = keras.models.load_model(tmp_path / "b.keras")
    want = _backbone("features")(tf.constant(TEXTS)).numpy()
    np.testing.assert_array_equal(backbone(tf.constant(TEXTS)).numpy(), want)


def test_next_versions_add_extend_and_drop_backbones(fleet: dict[str, Any],
                                                     grouped: dict[str, Any],
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    folder, base = fleet["folder"], grouped["base"]
    # A model on a backbone the version does not have: refused without the flag.
    code = main(["export", "--from", str(base), str(folder / "t9_D.keras")])
    assert code == 2
    assert "--backbone-groups" in capfd.readouterr().err
    # Version 2: t8 joins backbone 1 (B), t9 brings backbone 3 (D); t7, C's only task, goes.
    report = exported(capfd, "--from", base, folder / "t8_B.keras", folder / "t9_D.keras",
                      "--remove", "t7_C", "--backbone-groups")
    assert report["version"] == 2
    manifest = manifest_of(base / "2")
    assert [b["id"] for b in manifest["backbones"]] == [0, 1, 3]
    backbone_of = {t["name"]: t["backbone"] for t in manifest["tasks"]}
    assert backbone_of["t8_B"] == 1 and backbone_of["t9_D"] == 3
    assert [t["id"] for t in manifest["tasks"]] == [0, 1, 2, 3, 4, 5, 6, 8, 9]
    models = {**fleet["models"], **fleet["extra"]}
    _check_by_name(base / "2", {n: m for n, m in models.items() if n != "t7_C"})
    # Version 3 drops backbone 3 with its last task; the kept tasks answer as before.
    exported(capfd, "--from", base, "--remove", "t9_D")
    manifest = manifest_of(base / "3")
    assert [b["id"] for b in manifest["backbones"]] == [0, 1]
    assert manifest["next_backbone_id"] == 4
    capfd.readouterr()
    assert main(["diff", str(base / "1"), str(base / "3"), "--json"]) == 0
    diff = json.loads(capfd.readouterr().out)
    assert [(b["id"], b["change"]) for b in diff["backbones"]] == [
        (0, "unchanged"), (1, "unchanged"), (2, "removed")]


def _check_by_name(path: Path, models: dict[str, Any]) -> None:
    """Every task, asked by name in one batch that mixes every task with every text, answers
    like its original (task ids may have gaps)."""
    loaded = tf.saved_model.load(str(path))
    names = [n for n in models for _ in TEXTS]
    texts = [t for _ in models for t in TEXTS]
    out = loaded.signatures["by_name"](text=tf.constant(texts), task=tf.constant(names))
    for row, (name, text) in enumerate(zip(names, texts)):
        want = models[name](tf.constant([text])).numpy()[0]
        np.testing.assert_allclose(out["scores"].numpy()[row, : want.shape[0]], want, atol=1e-5,
                                   err_msg=name)


def test_flat_models_split_where_each_group_ends(tmp_path: Path,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    """A flat backbone whose top layer one model fine-tuned: two groups, one up to 'features',
    the other up to 'pool' (its fine-tuned 'features' layer is part of its head)."""
    models = {}
    trunk = support.vectorized_trunk(0)
    for seed, name in enumerate(("a", "b"), 1):
        text = keras.Input(shape=(), dtype="string")
        x = text
        for layer in trunk:
            x = layer(x)
        keras.utils.set_random_seed(seed)
        models[name] = keras.Model(text, keras.layers.Dense(3, activation="softmax")(x))
    tuned = keras.layers.Dense(5, activation="tanh", name="features")
    text = keras.Input(shape=(), dtype="string")
    x = text
    for layer in trunk[:3]:
        x = layer(x)
    x = tuned(x)
    tuned.set_weights([w + 0.01 for w in trunk[3].get_weights()])
    keras.utils.set_random_seed(3)
    models["tuned"] = keras.Model(text, keras.layers.Dense(2, activation="softmax")(x))
    paths = []
    for name, model in models.items():
        model.save(tmp_path / f"{name}.keras")
        paths.append(tmp_path / f"{name}.keras")
    report = exported(capfd, *paths, "--backbone-groups", "--out", tmp_path / "out")
    assert [(b["id"], b["split_layer"], b["tasks"]) for b in report["backbones"]] == [
        (0, "features", ["a", "b"]), (1, "pool", ["tuned"])]
    support.check_against_originals(report["path"], [keras_original(m) for m in models.values()])
    # 'tuned's backbone is the others' up to 'pool': one copy of those layers, saved once
    assert manifest_of(Path(report["path"]))["trunk"][-1] == "pool"
    keys = [k for k, _ in tf.train.list_variables(str(Path(report["path"]) / "variables" /
                                                      "variables"))]
    # the embedding once (not once per backbone), the 'features' kernel and bias
    assert len([k for k in keys if k.endswith("VARIABLE_VALUE")]) == 3, keys


def test_clients_and_score_work_on_a_grouped_version(grouped: dict[str, Any],
                                                    tmp_path: Path) -> None:
    """Downstream is unchanged: the REST and gRPC clients through the embedded server and
    ``headswitch score`` answer a batch that mixes the groups as the SavedModel does."""
    from headswitch.client import GrpcClient, RestClient
    from headswitch.serving import ModelServer

    base = tmp_path / "base"  # version 1 alone (a test above publishes version 2 beside it)
    shutil.copytree(grouped["path"], base / "1")
    names = [f"t{i}_{k}" for i, k in enumerate("AAAAABBC")]
    texts = [TEXTS[i % len(TEXTS)] for i in range(12)]
    tasks = [names[(5 * i) % 8] for i in range(12)]  # every group, interleaved
    loaded = tf.saved_model.load(str(grouped["path"]))
    want = loaded.signatures["by_name"](text=tf.constant(texts), task=tf.constant(tasks))
    best = [(label.decode(), float(score)) for label, score in
            zip(want["top_label"].numpy(), want["top_score"].numpy())]
    with ModelServer(model_name="headswitch", model_base_path=base, grpc_port=0,
                     rest_port=0) as server:
        server.wait_until_available()
        for client in (RestClient(str(server.rest_url)), GrpcClient(str(server.grpc_address))):
            with client:
                got = client.predict(texts, tasks)
            assert [p.task_name for p in got] == tasks
            assert [p.top_label for p in got] == [label for label, _ in best]
            np.testing.assert_allclose([p.top_score for p in got], [s for _, s in best],
                                       atol=1e-6)
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": i, "text": t, "task": k}) + "\n"
                            for i, (t, k) in enumerate(zip(texts, tasks))))
    assert main(["score", str(base), "--input", str(rows),
                 "--output", str(tmp_path / "scored")]) == 0
    scored = [json.loads(line) for line in (tmp_path / "scored.jsonl").read_text().splitlines()]
    assert [r["id"] for r in scored] == list(range(12))
    assert [r["top_label"] for r in scored] == [label for label, _ in best]
    np.testing.assert_allclose([r["top_score"] for r in scored], [s for _, s in best], atol=1e-6)
