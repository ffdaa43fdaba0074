"""The ``headswitch`` command."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    from headswitch import __version__
    from headswitch.client import _cli as client_cli
    from headswitch.deploy import _cli as deploy_cli
    from headswitch.examples import _cli as examples_cli
    from headswitch.export import _cli as export_cli
    from headswitch.score import _cli as score_cli
    from headswitch.serving import _cli as serving_cli

    parser = argparse.ArgumentParser(
        prog="headswitch",
        description="Serve many task heads on one shared backbone as one TensorFlow SavedModel.")
    parser.add_argument("--version", action="version", version=f"headswitch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for part in (examples_cli, export_cli, serving_cli, client_cli, deploy_cli, score_cli):
        part.register(sub)
    return parser


def _terminate(signum: int, frame: object) -> None:
    from headswitch._errors import signalled

    signalled.append(signum)
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "pass_unknown_args", False):
        parser.parse_args(argv)  # argparse's own error for unrecognised arguments
    args.unknown_args = unknown
    if args.command != "serve":  # the server drains on SIGTERM itself
        # Ctrl-C and SIGTERM unwind the stack, so temporary folders are cleaned up.
        signal.signal(signal.SIGTERM, _terminate)
        signal.signal(signal.SIGINT, _terminate)
    from headswitch import Error
    from headswitch._errors import interrupted, report
    from headswitch._quiet import native_stderr_quiet

    try:
        with native_stderr_quiet():
            return int(args.func(args) or 0)
    except Error as error:  # one a command did not report itself
        if interrupted():
            print("interrupted", file=sys.stderr)
            return 130
        report(error, f"headswitch {args.command}")
        return 2
    except BaseException:
        # A library may wrap the KeyboardInterrupt raised inside its own call; the signal
        # still decides the exit status.
        if not interrupted():
            raise
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
