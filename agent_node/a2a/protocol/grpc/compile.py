"""Compile ``protocols/a2a-1.0/a2a.proto`` into :mod:`.descriptor` (a development tool).

::

    python -m agent_node.a2a.protocol.grpc.compile            # rewrite descriptor.py
    python -m agent_node.a2a.protocol.grpc.compile --check    # exit 1 when it is stale

Needs grpcio-tools (its protoc), which the node itself never imports: the
node loads the compiled ``FileDescriptorProto`` kept in :mod:`.descriptor`,
so a fresh install needs neither protoc nor a build step.
"""

from __future__ import annotations

import argparse
import base64
import sys
import tempfile
import textwrap
from pathlib import Path

__all__ = ["PROTO", "compiled", "main", "render"]

#: Our .proto, in the repository (not in the installed package).
PROTO = Path(__file__).parents[4] / "protocols" / "a2a-1.0" / "a2a.proto"
DESCRIPTOR = Path(__file__).with_name("descriptor.py")

_HEADER = '''"""``protocols/a2a-1.0/a2a.proto`` compiled: its ``FileDescriptorProto``, serialized.

Written by ``python -m agent_node.a2a.protocol.grpc.compile``; do not edit.
"""

import base64

SERIALIZED = base64.b64decode(
'''


def compiled(proto: Path = PROTO) -> bytes:
    """``proto``'s ``FileDescriptorProto``, serialized, as protoc makes it."""
    from google.protobuf import descriptor_pb2
    from grpc_tools import protoc  # type: ignore[import-untyped]

    include = Path(protoc.__file__).with_name("_proto")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "a2a.pb"
        args = ["protoc", f"-I{proto.parent}", f"-I{include}", f"--descriptor_set_out={out}"]
        if protoc.main([*args, proto.name]) != 0:
            raise SystemExit(f"protoc failed on {proto}")
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    return bytes(files[0].SerializeToString(deterministic=True))


def render(serialized: bytes) -> str:
    """The text of descriptor.py holding ``serialized``."""
    text = base64.b64encode(serialized).decode("ascii")
    lines = textwrap.wrap(text, 88)
    body = "".join(f'    "{line}"\n' for line in lines)
    return _HEADER + body + ")\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether it is stale")
    args = parser.parse_args(argv)
    text = render(compiled())
    if args.check:
        stale = DESCRIPTOR.read_text(encoding="utf-8") != text
        print(f"{DESCRIPTOR.name} is {'stale' if stale else 'up to date'}")
        return 1 if stale else 0
    DESCRIPTOR.write_text(text, encoding="utf-8")
    print(f"wrote {DESCRIPTOR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
