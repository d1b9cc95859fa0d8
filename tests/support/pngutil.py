"""Reading a browser's PNG screenshot in plain Python, to count what it shows."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    offset = len(_SIGNATURE)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        yield kind, data[offset + 8 : offset + 8 + length]
        offset += 12 + length


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and the rows of an 8-bit RGB or RGBA, non-interlaced PNG (as RGB)."""
    data = path.read_bytes()
    assert data.startswith(_SIGNATURE), f"{path} is not a PNG"
    header, compressed = b"", b""
    for kind, body in _chunks(data):
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            compressed += body
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    pixel = 3 if colour == 2 else 4
    raw = zlib.decompress(compressed)
    stride = width * pixel
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(pixel, stride):
                line[i] = (line[i] + line[i - pixel]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - pixel] if i >= pixel else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                left = line[i - pixel] if i >= pixel else 0
                corner = previous[i - pixel] if i >= pixel else 0
                line[i] = (line[i] + _paeth(left, previous[i], corner)) & 0xFF
        previous = line
        rows.append(
            bytes(line) if pixel == 3 else b"".join(line[i : i + 3] for i in range(0, stride, 4))
        )
    return width, height, rows


def boxes_of_colour(path: Path, colour: str) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (x, y, width, height) of the connected areas painted exactly ``colour``
    (``#rrggbb``) in the screenshot."""
    width, height, rows = read_png(path)
    target = bytes.fromhex(colour.removeprefix("#"))
    painted = {(x, y) for y, row in enumerate(rows) for x in _positions(row, target)}
    boxes = []
    while painted:
        seed = painted.pop()
        stack, xs, ys = [seed], [seed[0]], [seed[1]]
        while stack:
            x, y = stack.pop()
            for near in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)):
                if near in painted:
                    painted.remove(near)
                    stack.append(near)
                    xs.append(near[0])
                    ys.append(near[1])
        boxes.append((min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1))
    del width, height
    return boxes


def _positions(row: bytes, target: bytes) -> Iterator[int]:
    start = row.find(target)
    while start >= 0:
        if start % 3 == 0:
            yield start // 3
        start = row.find(target, start + 1)


def first_row_of_colour(path: Path, colour: str) -> int | None:
    """The first row of the screenshot with a pixel painted exactly ``colour``."""
    _, _, rows = read_png(path)
    target = bytes.fromhex(colour.removeprefix("#"))
    return next((y for y, row in enumerate(rows) if any(_positions(row, target))), None)
