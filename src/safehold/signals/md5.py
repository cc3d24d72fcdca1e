"""MD5 of the exact bytes: what NCMEC and most hash lists share for exact copies."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

from safehold.signals.base import HexDigestSignal

CHUNK = 1024 * 1024


class Md5Signal(HexDigestSignal):
    name = "md5"
    hex_length = 32
    content_types = ("image", "video", "file")
    description = "MD5 of the file's bytes (exact copies)"


def digest_stream(stream: BinaryIO, algorithms: tuple[str, ...]) -> dict[str, str]:
    """Hex digests of a stream, read once in 1 MiB chunks (memory stays flat)."""
    hashers = {name: hashlib.new(name) for name in algorithms}
    while chunk := stream.read(CHUNK):
        for h in hashers.values():
            h.update(chunk)
    return {name: h.hexdigest() for name, h in hashers.items()}


def md5_file(path: Path) -> str:
    with open(path, "rb") as f:
        return digest_stream(f, ("md5",))["md5"]


def md5_bytes(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
