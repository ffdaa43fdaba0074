"""What the folder-export benchmarks share: build N task folders in a child process, load one,
export them all in another (``headswitch export DIR... --json``), each with its peak RSS."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _measure import ChildRun, run_child

EXPORT = """
import sys
from headswitch.cli import main
if main(["export", *sys.argv[2:], "--out", sys.argv[1], "--json"]):
    sys.exit(1)
"""

# The export report's sizes, in the order the results list them.
SIZES = ("originals_bytes", "merged_bytes", "backbone_bytes", "heads_bytes", "split_layer")


@dataclass(frozen=True)
class FolderExport:
    build: ChildRun
    load_one: ChildRun
    export: ChildRun
    report: dict[str, Any]

    def sizes(self) -> dict[str, Any]:
        return {key: self.report[key] for key in SIZES}


def export_folders(work: Path, build: str, load_one: str, tasks: int, *build_args: str
                   ) -> FolderExport:
    """Run ``build`` (argv: tasks, the models folder, ``build_args``), ``load_one`` on the
    first folder it writes, then the export of all of them into ``work``."""
    models, base = work / "models", work / "out"
    built = run_child(build, str(tasks), str(models), *build_args)
    folders = sorted(str(p) for p in models.glob("task*"))
    one = run_child(load_one, folders[0])
    export = run_child(EXPORT, str(base), *folders)
    report = json.loads(export.stdout[: export.stdout.rindex("PEAK_RSS")])
    return FolderExport(built, one, export, report)
