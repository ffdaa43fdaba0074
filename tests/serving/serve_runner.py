"""A stand-in for ``headswitch serve`` until the subcommand is wired into headswitch/cli.py:
``python serve_runner.py serve BASE --model-name m ...``."""

from __future__ import annotations

import argparse
import sys

from headswitch.serving._cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="headswitch")
    commands = parser.add_subparsers(dest="command", required=True)
    register(commands)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
