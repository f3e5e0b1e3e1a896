"""The `mlmodel-runtime fetch` subcommand: download a model into a source directory.

The first of the two init containers, and the only one that holds the
credentials of the model store: it downloads the model into DIR/model and
describes it in DIR/source.json (`convert/sourcedir.py`); `convert --source DIR`
then parses the untrusted file without credentials and without network.

It shares flags, logging, the report and the exit codes with `convert`
(`convert/cli_shared.py`, documented in docs/convert.md), and imports nothing
that parses models: no scikit-learn, skops, onnx or NumPy.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlmodel_runtime.convert import cli_shared, fetch, sourcedir
from mlmodel_runtime.convert.errors import ConvertError, UsageError
from mlmodel_runtime.convert.redact import redact_uri


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = cli_shared.EPILOG
    add = parser.add_argument
    add(
        "--uri",
        required=True,
        help="file path, file://, pvc://claim/path, http(s)://, s3://, gs://",
    )
    add(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="source directory: the model goes to DIR/model, its description to DIR/source.json",
    )
    for extra in sourcedir.EXTRAS:
        add(
            f"--{extra.kind}-uri",
            metavar="URI",
            help=f"also fetch {extra.doc} (.npz) into DIR/{extra.file}; "
            f"needs --{extra.kind}-sha256",
        )
        add(f"--{extra.kind}-sha256", metavar="HEX", help=f"the {extra.kind} file's sha256")
    cli_shared.add_source_arguments(parser)
    cli_shared.add_report_arguments(parser)
    cli_shared.report_usage_errors(parser)


def _extras(args: argparse.Namespace) -> list[tuple[sourcedir.Extra, str, str | None]]:
    """(extra, uri, expected sha256) of each extra file asked for; the digest is
    required, since the spec names each by it (no pin is needed)."""
    asked = []
    for extra in sourcedir.EXTRAS:
        uri = getattr(args, f"{extra.kind}_uri")
        digest = getattr(args, f"{extra.kind}_sha256")
        if (uri is None) != (digest is None):
            raise UsageError(
                f"--{extra.kind}-uri and --{extra.kind}-sha256 go together (the file is pinned)"
            )
        if uri is not None:
            asked.append((extra, uri, cli_shared.checked_sha256(digest, f"--{extra.kind}-sha256")))
    return asked


def _fetch(
    args: argparse.Namespace, environ: Mapping[str, str], log: cli_shared.Log
) -> dict[str, Any]:
    extras = _extras(args)
    options = cli_shared.fetch_options(args)
    expected = cli_shared.checked_sha256(args.sha256)
    pinned = fetch.read_pinned_sha256(args.sha256_file)
    out = args.out.absolute()
    sourcedir.prepare(out)
    fetched = fetch.fetch(
        args.uri,
        dest=out,
        options=options,
        expected_sha256=expected,
        pinned_sha256=pinned,
        environ=environ,
        log=log,
    )
    source = sourcedir.publish(fetched, out, uri=args.uri)
    log(f"wrote {out / sourcedir.MODEL_FILE} and {sourcedir.SOURCE_FILE}")
    body: dict[str, Any] = {
        "status": "ok",
        "error": None,
        "exit_code": 0,
        "message": f"fetched {source.bytes} bytes",
        "source": source.to_json(),
    }
    for extra, uri, digest in extras:
        # From the same store, with the same credentials and limits as the model.
        fetched_extra = fetch.fetch(
            uri, dest=out, options=options, expected_sha256=digest, environ=environ, log=log
        )
        described = sourcedir.publish(fetched_extra, out, uri=uri, extra=extra)
        log(f"wrote {out / extra.file} and {extra.description}")
        body[extra.kind] = described.to_json()
        body["message"] += f", a {described.bytes}-byte {extra.kind} file"
    return body


def run(args: argparse.Namespace) -> int:
    environ = os.environ
    redactor = cli_shared.redactor_for(args, environ)
    log = cli_shared.make_logger(args.log_format, "fetch", redactor)
    attempted = {"source": {"uri": redact_uri(args.uri)}}
    with cli_shared.warnings_to(log):
        try:
            body = _fetch(args, environ, log)
        except ConvertError as exc:
            cli_shared.log_failure(exc, log)
            body = cli_shared.failure(exc, attempted)
        except Exception as exc:  # the report must be written whatever happened
            body = cli_shared.failure(cli_shared.internal_failure(exc, log), attempted)
    return cli_shared.finish(body, args.report_file, redactor)
