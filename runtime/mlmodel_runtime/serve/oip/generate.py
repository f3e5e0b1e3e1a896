"""Regenerate `grpc_predict_v2_pb2.py` (and its `.pyi`) from `grpc_predict_v2.proto`.

    python -m mlmodel_runtime.serve.oip.generate [--check]

Generated code is committed, as KServe and MLServer commit theirs: the serving image
needs protobuf's runtime, not the compiler. `grpcio-tools` (a dev dependency)
brings protoc; its version fixes the protobuf runtime the code asks for, so it is
pinned in constraints.txt beside protobuf. `--check` exits 1 when the committed
files differ from what the compiler writes now (a unit test runs it).

One change to protoc's output: the messages are built in a descriptor pool of
their own, not protobuf's default one. Triton's client (`tritonclient.grpc`)
registers the same `inference.*` names in the default pool, and two files defining
one name there cannot both load: with a pool of its own, a process (a test, a
user's tool) can load the runtime's messages and Triton's client together.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = "grpc_predict_v2.proto"
OUTPUTS = ("grpc_predict_v2_pb2.py", "grpc_predict_v2_pb2.pyi")
_DEFAULT_POOL = "_descriptor_pool.Default().AddSerializedFile("
_OWN_POOL = "_descriptor_pool.DescriptorPool().AddSerializedFile("


def generate(out: Path) -> None:
    from grpc_tools import protoc  # a dev dependency: imported only here

    code = protoc.main(
        ["protoc", f"-I{HERE}", f"--python_out={out}", f"--pyi_out={out}", str(HERE / PROTO)]
    )
    if code != 0:
        raise SystemExit(f"protoc failed on {PROTO} (exit {code})")
    module = out / OUTPUTS[0]
    text = module.read_text()
    if text.count(_DEFAULT_POOL) != 1:
        raise SystemExit(f"protoc's output no longer has one {_DEFAULT_POOL!r}: update generate.py")
    module.write_text(text.replace(_DEFAULT_POOL, _OWN_POOL))


def stale() -> list[str]:
    """The generated files that differ from what protoc writes now."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        return [
            name
            for name in OUTPUTS
            if not (HERE / name).exists()
            or (HERE / name).read_bytes() != (Path(tmp) / name).read_bytes()
        ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether they are stale")
    args = parser.parse_args()
    if args.check:
        names = stale()
        if names:
            print(f"stale: {', '.join(names)}; run python -m mlmodel_runtime.serve.oip.generate")
            return 1
        return 0
    generate(HERE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
