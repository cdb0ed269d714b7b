"""A tiny dependency-free PNG bar chart (numpy + zlib), used when matplotlib is not importable.

``bar_chart(path, groups, series, values, title)`` draws grouped bars with a 3x5 bitmap font for the labels and a
dashed line at 1.0 (the "at least as fast as HF" target).
"""

from __future__ import annotations

import struct
import zlib
from typing import Dict, List, Optional, Sequence

import numpy as np

from bert_core.io_utils import atomic_write_bytes

_FONT = {  # 3x5 glyphs, rows top to bottom, 3 bits each
    "0": "111101101101111",
    "1": "010110010010111",
    "2": "111001111100111",
    "3": "111001111001111",
    "4": "101101111001001",
    "5": "111100111001111",
    "6": "111100111101111",
    "7": "111001010010010",
    "8": "111101111101111",
    "9": "111101111001111",
    "A": "010101111101101",
    "B": "110101110101110",
    "C": "011100100100011",
    "D": "110101101101110",
    "E": "111100110100111",
    "F": "111100110100100",
    "G": "011100101101011",
    "H": "101101111101101",
    "I": "111010010010111",
    "J": "001001001101010",
    "K": "101101110101101",
    "L": "100100100100111",
    "M": "101111111101101",
    "N": "110101101101101",
    "O": "010101101101010",
    "P": "110101110100100",
    "Q": "010101101110011",
    "R": "110101110101101",
    "S": "011100010001110",
    "T": "111010010010010",
    "U": "101101101101111",
    "V": "101101101101010",
    "W": "101101111111101",
    "X": "101101010101101",
    "Y": "101101010010010",
    "Z": "111001010100111",
    ".": "000000000000010",
    "-": "000000111000000",
    "(": "010100100100010",
    ")": "010001001001010",
    "/": "001001010100100",
    ":": "000010000010000",
    " ": "000000000000000",
    "X_": "000101010101000",
    "%": "101001010100101",
    "=": "000111000111000",
    ">": "100010001010100",
    "_": "000000000000111",
}

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


def _text(img: np.ndarray, x: int, y: int, text: str, color=(0, 0, 0), scale: int = 2) -> None:
    for ch in text.upper():
        glyph = _FONT.get(ch, _FONT[" "])
        for r in range(5):
            for c in range(3):
                if glyph[r * 3 + c] == "1":
                    y0, x0 = y + r * scale, x + c * scale
                    if 0 <= y0 and y0 + scale <= img.shape[0] and 0 <= x0 and x0 + scale <= img.shape[1]:
                        img[y0 : y0 + scale, x0 : x0 + scale] = color
        x += 4 * scale


def text_width(text: str, scale: int = 2) -> int:
    return len(text) * 4 * scale


def write_png(path, rgb: np.ndarray) -> None:
    """Write an (h, w, 3) uint8 array as an 8-bit RGB PNG."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[row].tobytes() for row in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    atomic_write_bytes(path, png)


def bar_chart(
    path,
    groups: Sequence[str],
    series: Sequence[str],
    values: Dict[str, List[Optional[float]]],
    title: str = "",
    ref_line: float = 1.0,
) -> None:
    """Grouped bars: one group per ``groups`` label, one bar per ``series`` (values[series][group], None = no bar)."""
    width, height = max(640, 120 + len(groups) * (len(series) * 22 + 30)), 420
    left, right, top, bottom = 60, 20, 50, 90
    img = np.full((height, width, 3), 255, np.uint8)
    finite = [v for s in series for v in values.get(s, []) if v is not None and np.isfinite(v)]
    vmax = min(max([ref_line * 1.2] + [v * 1.1 for v in finite]), 6.0)  # taller bars are clipped, labelled
    plot_h = height - top - bottom
    y_of = lambda v: int(top + plot_h * (1 - min(v, vmax) / vmax))  # noqa: E731
    # axes and grid
    img[top : height - bottom, left] = (0, 0, 0)
    img[height - bottom, left : width - right] = (0, 0, 0)
    step = 0.5 if vmax <= 3 else 1.0
    k = 0
    while k * step <= vmax:
        y = y_of(k * step)
        img[y, left + 1 : width - right : 4] = (200, 200, 200)
        _text(img, 4, y - 5, f"{k * step:.1f}")
        k += 1
    group_w = (width - left - right) / max(1, len(groups))
    bar_w = max(6, int((group_w - 20) / max(1, len(series))))
    for g, group in enumerate(groups):
        x0 = int(left + g * group_w + 10)
        for s, name in enumerate(series):
            vals = values.get(name, [])
            v = vals[g] if g < len(vals) else None
            if v is None or not np.isfinite(v):
                continue
            xa = x0 + s * bar_w
            img[y_of(v) : height - bottom, xa : xa + bar_w - 2] = PALETTE[s % len(PALETTE)]
            label = f"{v:.1f}"
            _text(img, xa, y_of(v) - 10, label, scale=1)
        _text(img, x0, height - bottom + 8, group[: max(1, int(group_w // 8))], scale=2)
    # reference line, over the bars
    y = y_of(ref_line)
    for x in range(left, width - right, 8):
        img[y : y + 2, x : x + 5] = (214, 39, 40)
    # legend and title
    _text(img, left, 12, title[: (width - left) // 8], scale=2)
    lx = left
    for s, name in enumerate(series):
        img[height - 40 : height - 28, lx : lx + 12] = PALETTE[s % len(PALETTE)]
        _text(img, lx + 16, height - 39, name, scale=2)
        lx += 16 + text_width(name) + 20
    write_png(path, img)
