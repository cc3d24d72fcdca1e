"""The on-device test vectors and the constants of the browser's PDQ and MD5 code.

Fast and without a browser: the manifest builder writes what ``hash_file`` gives, the
hand-made files decode in Python as intended, and the DCT matrix and MD5 constants
written into ``static/ondevice`` are the reference core's / RFC 1321's.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests import ondevice_vectors as ov

from safehold.hashing import hash_file
from safehold.media import open_image
from safehold.signals import _pdqcore

ONDEVICE = Path(__file__).resolve().parents[1] / "src/safehold/web/portal/static/ondevice"


def test_dct_matrix_is_the_reference_cores() -> None:
    """pdq-dct.js holds, bit for bit, the matrix the compiled reference core uses."""
    if _pdqcore._TAIL is None:  # pragma: no cover - depends on the pdqhash build
        pytest.skip("the reference core's DCT is not reachable in this pdqhash build")
    identity = np.eye(64, dtype=np.float32)
    matrix = np.zeros((16, 64), np.float32)  # T = D A with A = I is D itself
    out = np.zeros((16, 16), np.float32)
    _pdqcore._TAIL["dct"](identity.ctypes.data, matrix.ctypes.data, out.ctypes.data)
    words = re.findall(r"0x([0-9a-f]{8})", (ONDEVICE / "pdq-dct.js").read_text())
    assert len(words) == 1024
    assert np.array_equal(
        np.array([int(w, 16) for w in words], np.uint32), matrix.view(np.uint32).ravel()
    )


def test_md5_constants_are_rfc_1321s() -> None:
    source = (ONDEVICE / "md5.js").read_text()
    steps = re.findall(
        r"x\[o \+ (\d+)\] \+ (-?\d+)\) \| 0;\n\s+\w = \(\w \+ \(\(t << (\d+)\)", source
    )
    assert len(steps) == 64
    shifts = [7, 12, 17, 22] * 4 + [5, 9, 14, 20] * 4 + [4, 11, 16, 23] * 4 + [6, 10, 15, 21] * 4
    for i, (g, k, s) in enumerate(steps):
        assert int(k) & 0xFFFFFFFF == int(abs(math.sin(i + 1)) * 2**32)
        assert int(s) == shifts[i]
        assert int(g) == [i, (5 * i + 1) % 16, (3 * i + 5) % 16, (7 * i) % 16][i // 16]


def test_manifest_is_what_hash_file_gives(tmp_path: Path) -> None:
    keep = {
        "png-7x5.png",
        "png-stripe-320x240.png",
        "png16-rgb.png",
        "png-rgb-trns.png",
        "empty.jpg",
    }
    keep |= {"not-media.txt", "mode-rgb-tiff.tif", "video-h264-160x120-fps2.mp4", "over-50mp.png"}
    manifest = ov.build(tmp_path, big=False, only=keep.__contains__)
    assert {e["file"] for e in manifest} == keep
    assert json.loads((tmp_path / ov.MANIFEST).read_text()) == manifest
    by = {e["file"]: e for e in manifest}
    for name in (
        "png-7x5.png",
        "png-stripe-320x240.png",
        "png16-rgb.png",
        "png-rgb-trns.png",
        "mode-rgb-tiff.tif",
    ):
        h = hash_file(tmp_path / name)
        e = by[name]
        assert (e["kind"], e["md5"], e["pdq"], e["quality"]) == (
            "image",
            h.md5,
            h.pdq,
            h.pdq_quality,
        )
        assert e["md5"] == hashlib.md5((tmp_path / name).read_bytes()).hexdigest()
    assert 0 < by["png-stripe-320x240.png"]["quality"] < 50
    video = by["video-h264-160x120-fps2.mp4"]
    assert video["fps"] == 2.0 and [f["frame"] for f in video["vpdq"]] == [0, 5, 10, 15]
    assert [f["timestamp"] for f in video["vpdq"]] == [0.0, 0.5, 1.0, 1.5]
    assert (by["empty.jpg"]["python_error"], by["not-media.txt"]["python_error"]) == (
        "empty",
        "unsupported_format",
    )
    assert by["mode-rgb-tiff.tif"]["expect"] == "error" and "pdq" in by["mode-rgb-tiff.tif"]
    assert (
        "python_error" not in by["over-50mp.png"]
        and by["over-50mp.png"]["error"] == "too_many_pixels"
    )


def test_hand_made_pngs_are_what_they_claim(tmp_path: Path) -> None:
    """16-bit and tRNS PNGs (which Pillow does not write) decode in Python, and the
    16 bits of each sample matter (the low byte is not a copy of the high byte)."""
    for data, mode in (
        (ov._png16(40, 30, 3, 1), "RGB"),
        (ov._png16(40, 30, 4, 2), "RGBA"),
        (ov._png_trns(40, 30, 0, 3), "L"),
        (ov._png_trns(40, 30, 2, 4), "RGB"),
    ):
        im = Image.open(io.BytesIO(data))
        assert im.mode == mode, im.mode
        assert open_image(data).size == (40, 30)
        if data[24] == 8:
            assert "transparency" in im.info


def test_every_spec_has_a_unique_file_name() -> None:
    names = [s.file for s in [*ov.picture_specs(False), *ov.video_specs(False)]]
    assert len(names) == len(set(names))
    assert all(
        s.expect in ("exact", "distance", "error", "exact_or_error")
        for s in ov.picture_specs(False)
    )
