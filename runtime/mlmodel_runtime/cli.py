"""Command line entry point `mlmodel-runtime` with `fetch`, `convert`, `serve` and
`reference`.

Each subcommand lives in its own package and exposes `configure(parser)` and
`run(args) -> int`; it is imported only when chosen, so `serve` never pays for
scikit-learn, `convert` never for the HTTP stack, and `fetch` (which holds the
model store's credentials) never loads a library that parses models.

`fetch` and `convert` are init containers: their process has nothing left to do once
the report is out. Tearing the interpreter down after a conversion (scikit-learn,
SciPy, pandas, ONNX: millions of objects to free) took 0.3-0.6 s of the pod's start
on the reference machine, so when `main` runs a process of its own (the console
script, `python -m`: no arguments given) it ends those two at once. Called with
arguments, as tests do in-process, it returns like any function.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

SUBCOMMANDS = {
    "fetch": "download a model into a source directory for `convert --source`",
    "convert": "convert a model to ONNX and check that it predicts the same",
    "serve": "serve an ONNX model over the Open Inference Protocol v2",
    "reference": "write a parity reference: a model's predictions on sample rows (.npz)",
}
# Whose process ends with its report, without the interpreter's teardown.
EXIT_AT_ONCE = frozenset({"fetch", "convert"})


def _command_module(name: str) -> object:
    return importlib.import_module(f"mlmodel_runtime.{name}.command")


def build_parser(chosen: str | None) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The root parser and the parser of the chosen subcommand (the root when none is)."""
    parser = argparse.ArgumentParser(
        prog="mlmodel-runtime",
        description="The model container of an MLModel revision.",
    )
    choices = "{" + ",".join(SUBCOMMANDS) + "}"
    sub = parser.add_subparsers(dest="command", required=True, metavar=choices)
    chosen_parser = parser
    for name, help_text in SUBCOMMANDS.items():
        child = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            _command_module(name).configure(child)  # type: ignore[attr-defined]
            chosen_parser = child
    return parser, chosen_parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in args_list if a in SUBCOMMANDS), None)
    parser, chosen_parser = build_parser(chosen)
    args, unknown = parser.parse_known_args(args_list)
    if unknown:
        # The subcommand's parser reports it (fetch and convert write the report).
        chosen_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    result: int = _command_module(args.command).run(args)  # type: ignore[attr-defined]
    if argv is None and args.command in EXIT_AT_ONCE:
        _exit_at_once(result)
    return result


def _exit_at_once(code: int) -> NoReturn:
    """Exit with `code` without tearing the interpreter down: everything the command
    wrote is closed (the model directory's files fsynced and renamed, the report file
    closed); only the standard streams may still hold bytes."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
