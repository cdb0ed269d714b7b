"""The harness end to end in --quick mode (tiny config), its report writers, and the pure-numpy PNG writer.

No timing assertions: only that the run completes and writes valid JSON / Markdown / PNG.
"""

from __future__ import annotations

import importlib.util
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from benchmarks import cli
from benchmarks.png import bar_chart, write_png

ROOT = Path(__file__).resolve().parents[2]


# readers for what benchmarks.png writes (only the tests read PNGs)
def read_png_size(path) -> tuple:
    """(width, height) from a PNG header; raises ValueError when the file is not a PNG."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path} is not a PNG")
    return struct.unpack(">II", head[16:24])


def decode_png(path) -> np.ndarray:
    """Decode an 8-bit RGB, non-interlaced PNG with filter 0 rows (what :func:`write_png` writes)."""
    data = open(path, "rb").read()
    pos, idat, w, h = 8, b"", 0, 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n : pos + 12 + n])
        if zlib.crc32(tag + body) & 0xFFFFFFFF != crc:
            raise ValueError("bad CRC")
        if tag == b"IHDR":
            w, h = struct.unpack(">II", body[:8])
        elif tag == b"IDAT":
            idat += body
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + 3 * w)
    if raw[:, 0].any():
        raise ValueError("unsupported PNG filter")
    return raw[:, 1:].reshape(h, w, 3)


def test_png_writer_roundtrip(tmp_path):
    img = np.zeros((7, 5, 3), np.uint8)
    img[2, 3] = (255, 10, 20)
    write_png(tmp_path / "x.png", img)
    assert read_png_size(tmp_path / "x.png") == (5, 7)
    np.testing.assert_array_equal(decode_png(tmp_path / "x.png"), img)


def test_bar_chart_is_a_real_image(tmp_path):
    bar_chart(tmp_path / "c.png", ["A FP32", "B"], ["torch", "tf"], {"torch": [1.2, None], "tf": [0.8, 3.5]}, "T")
    pixels = decode_png(tmp_path / "c.png")
    assert pixels.shape[2] == 3 and pixels.shape[0] > 100
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 3  # bars, text, background


def _backends():
    found = [
        fw
        for fw, mod in (("torch", "torch"), ("flax", "flax"), ("tf", "tensorflow"))
        if importlib.util.find_spec(mod) is not None
    ]
    if not found:
        pytest.skip("no framework installed")
    return found[0]  # one backend keeps the run well under a minute on a busy machine


def test_quick_run_end_to_end(tmp_path):
    backend = _backends()
    # q (the fine-tuned-classifier workload) has its own quick test (test_quality.py)
    rc = cli.main(
        ["bench", "--quick", "--no-hf", "--workloads", "abcdefghil", "--backends", backend, "--out-dir", str(tmp_path)]
    )
    assert rc == 0
    result = json.loads((tmp_path / "latest.json").read_text())
    assert result["settings"]["quick"] is True
    assert result["machine"]["cpu_count"] >= 1 and result["machine"]["versions"]
    fw = result["frameworks"][backend]
    assert fw["errors"] == [], fw["errors"]
    assert fw["a"]["ours_fp32"]["seq_per_s"] > 0 and fw["a"]["ours_bf16"]["cosine_vs_ours_fp32"] > 0.99
    assert fw["c"]["ours_bucketed"]["tokens_per_s"] > 0
    assert fw["d"]["ours"]["steps_per_s"] > 0
    g = fw["g"]
    assert g["ours"]["examples_per_s"] > 0 and g["ours"]["n"] == 1
    assert g["feature_lengths"] == [g["length"]]  # every feature truncated to one shape
    assert all(np.isfinite(g["ours"]["train_losses"]))
    corpus = result["h_corpus"]
    assert corpus["length_min"] < corpus["length_median"] < corpus["length_max"]  # a skewed corpus
    for task, entry in fw["h"]["tasks"].items():
        assert entry["ours"]["texts_per_s"] > 0, task
    assert fw["h"]["tasks"]["text-classification"]["real_tokens"] == corpus["tokens"]
    assert result["peak_flop_per_s"]["fp32"] > 0
    assert result["memory"] and "load_s" in result["memory"][0]
    assert result["memory"][0]["peak_rss_growth_vs_weights"] is not None
    assert fw["l"]["ours_fp32"]["seq_per_s"] > 0
    long_memory = result["long_memory"][0]
    assert all(long_memory[k]["peak_above_before_mb"] >= 0 for k in ("first_call", "steady_call", "large_steady"))
    assert "tokenizers" in result
    md = (tmp_path / "latest.md").read_text()
    assert "| target | measured | met |" in md and "(a) bert-base" in md
    assert "(g) training loop" in md and "(h) pipelines" in md and "(l) long inputs" in md
    width, height = read_png_size(tmp_path / "latest.png")
    assert width > 100 and height > 100


def test_module_entry_point_help():
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert out.returncode == 0 and "--quick" in out.stdout


def test_bert_cli_dispatch(tmp_path):
    from bert_core.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["bench", "--help"])
    assert exc.value.code == 0
