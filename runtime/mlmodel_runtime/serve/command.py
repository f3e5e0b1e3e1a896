"""The `mlmodel-runtime serve` subcommand: argument parsing and the entry point.

`cli.py` calls `configure(parser)` and then `run(args)`; settings are validated
once here (`config.py`) and the server started (`server.py`).
"""

from __future__ import annotations

import argparse
import sys

from mlmodel_runtime.serve.config import config_from_args, configure_parser


def configure(parser: argparse.ArgumentParser) -> None:
    configure_parser(parser)


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"mlmodel-runtime serve: {exc}", file=sys.stderr)
        return 2
    from mlmodel_runtime.serve.server import serve

    return serve(config)
