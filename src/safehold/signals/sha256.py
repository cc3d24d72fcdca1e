"""SHA-256 of the exact bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from safehold.signals.base import HexDigestSignal
from safehold.signals.md5 import digest_stream


class Sha256Signal(HexDigestSignal):
    name = "sha256"
    hex_length = 64
    content_types = ("image", "video", "file")
    description = "SHA-256 of the file's bytes (exact copies)"


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return digest_stream(f, ("sha256",))["sha256"]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
