"""What a SavedModel's bytes are: variables, and saved_model.pb part by part, function by function.

    .venv/bin/python bench/pb_sizes.py SAVED_MODEL_DIR [SAVED_MODEL_DIR ...] [--top 12]

For each folder: variables/ and assets/ bytes, saved_model.pb split into the function library
(each function: its bytes and how much of that is Const nodes, i.e. constants baked into the
graph), graph nodes outside functions, the object graph and the signature defs. Used to explain
where headswitch's bytes above (backbone + heads) come from.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any


def breakdown(folder: str | Path) -> dict[str, Any]:
    from tensorflow.core.protobuf import saved_model_pb2

    folder = Path(folder)
    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((folder / "saved_model.pb").read_bytes())
    mg = sm.meta_graphs[0]
    graph = mg.graph_def
    functions = []
    for f in graph.library.function:
        consts = [n for n in f.node_def if n.op == "Const"]
        functions.append({
            "name": f.signature.name,
            "kind": re.sub(r"(^__inference_|_\d+$)", "", f.signature.name),
            "bytes": f.ByteSize(),
            "nodes": len(f.node_def),
            "const_bytes": sum(n.ByteSize() for n in consts),
            "largest_const": max(((n.ByteSize(), n.name) for n in consts), default=(0, "")),
        })
    by_kind: dict[str, dict[str, int]] = defaultdict(lambda: {"bytes": 0, "count": 0,
                                                             "const_bytes": 0})
    for f in functions:
        k = by_kind[f["kind"]]
        k["bytes"] += f["bytes"]
        k["count"] += 1
        k["const_bytes"] += f["const_bytes"]
    files = lambda sub: sum(p.stat().st_size for p in (folder / sub).rglob("*")  # noqa: E731
                            if p.is_file())
    return {
        "saved_model_pb": (folder / "saved_model.pb").stat().st_size,
        "variables": files("variables"),
        "assets": files("assets") if (folder / "assets").exists() else 0,
        "pb_parts": {
            "function library": graph.library.ByteSize(),
            "graph nodes outside functions": sum(n.ByteSize() for n in graph.node),
            "object graph": mg.object_graph_def.ByteSize(),
            "signature defs": sum(v.ByteSize() for v in mg.signature_def.values()),
            "saver/meta info/other": mg.ByteSize() - graph.library.ByteSize()
            - sum(n.ByteSize() for n in graph.node) - mg.object_graph_def.ByteSize()
            - sum(v.ByteSize() for v in mg.signature_def.values()),
        },
        "functions": len(functions),
        "function_kinds": dict(sorted(by_kind.items(), key=lambda kv: -kv[1]["bytes"])),
        "largest_functions": sorted(functions, key=lambda f: -f["bytes"])[:20],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+")
    p.add_argument("--top", type=int, default=12)
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from compare import _tf

    _tf()
    for folder in args.folders:
        b = breakdown(folder)
        print(f"\n## {folder}\n")
        print(f"saved_model.pb {b['saved_model_pb']:,} B, variables/ {b['variables']:,} B, "
              f"assets/ {b['assets']:,} B; {b['functions']} functions\n")
        print("| part of saved_model.pb | bytes |\n|---|---|")
        for k, v in b["pb_parts"].items():
            print(f"| {k} | {v:,} |")
        print("\n| function (name without __inference_ / number) | count | bytes | of which Const "
              "|\n|---|---|---|---|")
        for k, v in list(b["function_kinds"].items())[: args.top]:
            print(f"| {k} | {v['count']} | {v['bytes']:,} | {v['const_bytes']:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
