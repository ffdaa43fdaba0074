"""Exporting N Hugging Face ``save_pretrained`` folders (TFBertForSequenceClassification).

    .venv/bin/python bench/hf_bench.py --tasks 200

Each folder holds a tiny BERT classifier (2 layers, hidden 32, a 1,000-token WordPiece
vocabulary, 2 to 6 classes) on one frozen encoder, with its tokenizer files, as
``model.save_pretrained(dir)`` and ``tokenizer.save_pretrained(dir)`` write them. The export
(``headswitch export DIR...`` in a fresh process) reads every folder with transformers, adds the
in-graph tokenizer, checks each model against the Hugging Face model fed by the Hugging Face
tokenizer, and writes the merged version. Peak RSS is the kernel's ru_maxrss of that process.
Writes work/bench/ (--save: bench/results/) export-hf-folders-<N>.json and .md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _folders import export_folders  # noqa: E402
from _measure import add_results_option, machine, results_dir, write_json  # noqa: E402

BUILD = """
import sys
from pathlib import Path
from headswitch._quiet import import_tensorflow; tf = import_tensorflow()
import tf_keras, transformers
transformers.logging.set_verbosity_error()
n, out = int(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
letters = "abcdefghijklmnopqrstuvwxyz"
vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *letters, *("##" + c for c in letters)]
vocab += [a + b + c for a in letters for b in "aeiou" for c in letters[:8]][: 1000 - len(vocab)]
(out / "vocab.txt").write_text("\\n".join(vocab) + "\\n")
tokenizer = transformers.BertTokenizerFast(str(out / "vocab.txt"), model_max_length=64)
def config(labels):
    return transformers.BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, intermediate_size=37,
                                   max_position_embeddings=64, num_labels=labels)
tf_keras.utils.set_random_seed(0)
base = transformers.TFBertForSequenceClassification(config(2))
base(base.dummy_inputs)
weights = base.bert.get_weights()
for i in range(n):
    tf_keras.utils.set_random_seed(i + 1)
    model = transformers.TFBertForSequenceClassification(config(2 + i % 5))
    model(model.dummy_inputs)
    model.bert.set_weights(weights)
    model.save_pretrained(str(out / f"task{i:03d}"))
    tokenizer.save_pretrained(str(out / f"task{i:03d}"))
"""

LOAD_ONE = """
import sys
from headswitch._quiet import import_tensorflow; tf = import_tensorflow()
import transformers
transformers.logging.set_verbosity_error()
model = transformers.TFAutoModelForSequenceClassification.from_pretrained(sys.argv[1])
tokenizer = transformers.AutoTokenizer.from_pretrained(sys.argv[1])
model(dict(tokenizer(["a text", ""], padding=True, return_tensors="tf")))
"""



def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=200)
    add_results_option(p)
    args = p.parse_args()
    args.results = results_dir(args)
    work = Path(tempfile.mkdtemp(prefix="headswitch-bench-hf-"))
    try:
        run = export_folders(work, BUILD, LOAD_ONE, args.tasks)
        result = {
            "machine": machine(),
            "load_average_after": os.getloadavg(),  # other jobs on the machine skew timings
            "tasks": args.tasks,
            "model": "TFBertForSequenceClassification, 2 layers, hidden 32, vocabulary 1000",
            "build_seconds": run.build.seconds,
            "export_seconds": run.export.seconds,
            "export_seconds_per_folder": run.export.seconds / args.tasks,
            "export_peak_rss": run.export.peak_rss_bytes,
            "load_one_model_peak_rss": run.load_one.peak_rss_bytes,
            **run.sizes(),
            "heads": sorted({t["head"] for t in run.report["tasks"]}),
            "max_abs_diff": run.report["max_abs_diff"],
            "non_core_ops": run.report["non_core_ops"],
            "source_format": run.report["tasks"][0]["source_format"],
        }
        table = _table(result)
        print(table)
        out = Path(args.results) / f"export-hf-folders-{args.tasks}"
        write_json(out.with_suffix(".json"), result)
        out.with_suffix(".md").write_text(table + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _table(r: dict[str, Any]) -> str:
    mib = 2**20
    rows = [
        ("export time (CLI, fresh process)",
         f"{r['export_seconds']:.0f} s ({r['export_seconds_per_folder']:.2f} s per folder)"),
        ("peak RSS: export / load and run one model",
         f"{r['export_peak_rss'] / mib:.0f} / {r['load_one_model_peak_rss'] / mib:.0f} MiB"),
        ("N original folders", f"{r['originals_bytes'] / mib:.1f} MiB"),
        ("merged version folder", f"{r['merged_bytes'] / mib:.1f} MiB"),
        ("split layer / heads", f"{r['split_layer']} / {', '.join(r['heads'])}"),
        ("max abs diff vs the HF model fed by the HF tokenizer", f"{r['max_abs_diff']:.1e}"),
        ("non-core ops", ", ".join(r["non_core_ops"])),
        ("build the N folders", f"{r['build_seconds']:.0f} s"),
    ]
    lines = [f"Export of {r['tasks']} {r['source_format']}s ({r['model']}; {r['machine']}; "
             f"load average after: {', '.join(f'{x:.1f}' for x in r['load_average_after'])}, "
             "the machine was shared)", "", "| measure | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
