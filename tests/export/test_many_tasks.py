"""A 200-task export with the small example backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from headswitch import contract as c
from headswitch.examples import build_example_models, sample_texts
from headswitch.export import export_models

N = 200


@pytest.mark.slow
def test_export_200_tasks(tmp_path: Path) -> None:
    models = build_example_models(N, tmp_path / "models")
    seen = []
    report = export_models(models.paths, tmp_path / "out", manifest=models.manifest,
                           progress=lambda done, total, name: seen.append((done, total)))
    assert seen[-1] == (N, N) and len(seen) == N
    assert len(report.tasks) == N and report.max_abs_diff <= 1e-5
    assert report.merged_bytes < report.originals_bytes / 20  # weights stored once
    loaded = tf.saved_model.load(str(report.path))
    ids = np.arange(N, dtype=np.int32)[::-1].copy()
    out = loaded.signatures[c.SIGNATURE_IDS](text=tf.constant(sample_texts(N)),
                                               task_id=tf.constant(ids))
    assert out[c.OUTPUT_SCORES].shape[0] == N
    listed = loaded.signatures[c.SIGNATURE_TASKS](unused=tf.constant([0], tf.int32))
    names = listed[c.TASKS_OUTPUT_NAME].numpy()[0]
    assert [n.decode() for n in names] == [t.name for t in models.tasks]
