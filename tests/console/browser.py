"""A real headless browser for the console tests: Debian's chromium driven by Playwright.

Playwright's own browser download is not reachable here (and not wanted on an air-gapped site): it
drives the system browser through ``executable_path``. ``EDGE_COAT_CHROMIUM`` names another binary.
Tests skip, saying why, when Playwright or a browser is missing.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "console"


def chromium_path() -> str | None:
    for name in filter(None, (os.environ.get("EDGE_COAT_CHROMIUM"), "chromium", "chromium-browser",
                              "google-chrome")):
        found = shutil.which(name)
        if found:
            return found
    return None


def launch(playwright):
    exe = chromium_path()
    if exe is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set EDGE_COAT_CHROMIUM): browser tests skipped")
    return playwright.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox"])


def artifact(name: str) -> Path:
    """Where a test saves a screenshot (tests/artifacts/console/, ignored by git)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


def png_pixels(data: bytes) -> list[tuple[int, int, int]]:
    """The RGB pixels of an 8-bit RGB/RGBA PNG (what Chromium's screenshots are), row by row."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, ctype = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), f"unexpected PNG depth {depth} colour type {ctype}"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    bpp = 3 if ctype == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    prev, out, i = bytearray(stride), [], 0
    for _ in range(height):
        kind, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):  # undo the row filter (PNG spec, section 9)
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            if kind == 1:
                line[x] = (line[x] + a) & 255
            elif kind == 2:
                line[x] = (line[x] + b) & 255
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += [tuple(line[x:x + 3]) for x in range(0, stride, bpp)]
        prev = line
    return out


def share_of(pixels, predicate) -> float:
    return sum(1 for p in pixels if predicate(p)) / max(1, len(pixels))


def reddish(p) -> bool:
    r, g, b = p
    return r > 150 and g < 90 and b < 90
