"""Command line entry point `mlmodel-runtime` with the `convert` and `serve` subcommands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlmodel-runtime",
        description="Convert a model to ONNX and verify it (convert), or serve it (serve).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("convert", help="fetch a model, convert it to ONNX and check parity")
    sub.add_parser("serve", help="serve an ONNX model over the Open Inference Protocol v2")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print(f"mlmodel-runtime {args.command}: not implemented yet", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
