"""The `mlmodel-runtime convert` subcommand: argument parsing and the entry point."""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    del parser


def run(args: argparse.Namespace) -> int:
    del args
    print("mlmodel-runtime convert: not implemented yet", file=sys.stderr)
    return 2
