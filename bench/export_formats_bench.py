"""Exporting N tf_keras SavedModel folders built on a TF-Hub-style text module.

    .venv/bin/python bench/export_formats_bench.py --tasks 200

The hub module is a SavedModel like a TF-Hub text embedding (NNLM style): a vocabulary asset
read into a lookup table, a 20000 x 128 embedding and a 128 x 128 projection (11 MB of
variables). Each task is transfer learning as TF 2.x tutorials did it:
``text -> hub.KerasLayer(trainable=False) -> Dense(64, relu) -> Dense(k)``, saved with
``model.save(folder)``, so every folder holds its own copy of the module. Each measurement runs
in a fresh process (peak RSS is the kernel's ru_maxrss). Writes
work/bench/ (--save: bench/results/) export-tfhub-folders-<N>.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _folders import export_folders  # noqa: E402
from _measure import add_results_option, machine, results_dir, write_json  # noqa: E402

VOCAB, DIM = 20000, 128

BUILD = """
import sys
from pathlib import Path
import numpy as np
from headswitch._quiet import import_tensorflow; tf = import_tensorflow()
import tf_keras, tensorflow_hub as hub
n, out, vocab_size, dim = int(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
out.mkdir(parents=True, exist_ok=True)
vocab = out / "vocab.txt"
vocab.write_text("\\n".join(["[UNK]"] + [f"w{i}" for i in range(vocab_size - 1)]))

class TextEmbedding(tf.Module):
    def __init__(self):
        super().__init__()
        self.vocab_file = tf.saved_model.Asset(str(vocab))
        self.table = tf.lookup.StaticHashTable(tf.lookup.TextFileInitializer(
            self.vocab_file, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE, tf.int64,
            tf.lookup.TextFileIndex.LINE_NUMBER), 0)
        self.embedding = tf.Variable(tf.random.stateless_normal([vocab_size, dim], seed=[1, 0]))
        self.projection = tf.Variable(tf.random.stateless_normal([dim, dim], seed=[1, 1]) / 10)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def __call__(self, text):
        ids = self.table.lookup(tf.strings.split(tf.strings.lower(text)))
        total = tf.reduce_sum(tf.gather(self.embedding, ids), axis=1)
        count = tf.cast(tf.maximum(ids.row_lengths(), 1), tf.float32)[:, None]
        return tf.tanh(tf.matmul(total / count, self.projection))

tf.saved_model.save(TextEmbedding(), str(out / "module"))
encoder = hub.KerasLayer(str(out / "module"), trainable=False, input_shape=[], dtype=tf.string)
models = {}
rng = np.random.default_rng(0)
for i in range(n):
    k = 2 + i % 5
    if k not in models:
        text = tf_keras.Input(shape=(), dtype=tf.string)
        x = tf_keras.layers.Dense(64, activation="relu")(encoder(text))
        models[k] = tf_keras.Model(text, tf_keras.layers.Dense(k, activation="softmax")(x))
    model = models[k]
    model.set_weights([rng.normal(0, 0.1, w.shape).astype("float32") for w in model.get_weights()])
    model.save(out / f"task{i:03d}")
"""

LOAD_ONE = """
import sys
from headswitch._quiet import import_tensorflow; tf = import_tensorflow()
import tf_keras
model = tf_keras.models.load_model(sys.argv[1], compile=False)
model(tf.constant(["w1 w2", ""]))
"""



def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=200)
    add_results_option(p)
    args = p.parse_args()
    args.results = results_dir(args)
    work = Path(tempfile.mkdtemp(prefix="headswitch-bench-tfhub-"))
    try:
        run = export_folders(work, BUILD, LOAD_ONE, args.tasks, str(VOCAB), str(DIM))
        result = {
            "machine": machine(),
            "load_average_after": os.getloadavg(),  # other jobs on the machine skew timings
            "tasks": args.tasks,
            "hub_module": {"vocabulary": VOCAB, "dim": DIM},
            "build_seconds": run.build.seconds,
            "export_seconds": run.export.seconds,
            "export_peak_rss": run.export.peak_rss_bytes,
            "load_one_model_peak_rss": run.load_one.peak_rss_bytes,
            **run.sizes(),
            "max_abs_diff": run.report["max_abs_diff"],
            "source_format": run.report["tasks"][0]["source_format"],
        }
        _print(result)
        write_json(Path(args.results) / f"export-tfhub-folders-{args.tasks}.json", result)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _print(r: dict) -> None:
    mib = 2**20
    rows = [
        ("export time (CLI, fresh process)", f"{r['export_seconds']:.1f} s"),
        ("peak RSS: export / load one model",
         f"{r['export_peak_rss'] / mib:.0f} / {r['load_one_model_peak_rss'] / mib:.0f} MiB = "
         f"{r['export_peak_rss'] / r['load_one_model_peak_rss']:.2f}x"),
        ("N original folders", f"{r['originals_bytes'] / mib:.0f} MiB"),
        ("merged version folder", f"{r['merged_bytes'] / mib:.1f} MiB"),
        ("split layer", r["split_layer"]),
        ("max |merged - original|", f"{r['max_abs_diff']:.1e}"),
        ("build the N folders", f"{r['build_seconds']:.0f} s"),
    ]
    print(f"\nExport of {r['tasks']} {r['source_format']}s on a TF-Hub-style module "
          f"({r['machine']})\n")
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    sys.exit(main())
