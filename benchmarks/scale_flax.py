"""Flax scale-out throughput: ``bert train`` examples/s on 1 device, a ``--mesh data=2`` over 2 devices in one
process, and 2 ``jax.distributed`` processes of 1 device each, with the same global batch.

    PYTHONPATH=. python benchmarks/scale_flax.py [--steps 30] [--batch 16] [--out DIR]

A random-weight model (hidden 256, 4 layers, intermediate 1024; ``bert_core.init``) is written once with a
tokenizer, and trained on ``text-classification`` rows of pseudo-prose long enough that every feature is
``--max-length`` tokens (one shape, one compile). Each configuration is a fresh ``bert train`` (CPU devices from
``JAX_NUM_CPU_DEVICES``); examples/s is the median of the per-step ``examples_per_second`` of ``log.jsonl`` after
the first 3 steps (compilation excluded). No eval, no checkpoint. Prints one JSON line per configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _write_model(directory: Path, max_length: int) -> None:
    from bert_core.checkpoint import save_pretrained
    from bert_core.config import BertConfig
    from bert_core.init import init_weights

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(995)]
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        max_position_embeddings=max_length,
    )
    save_pretrained(directory, config, init_weights(config, "BertModel", seed=0), architecture="BertModel")
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (directory / "tokenizer_config.json").write_text(
        json.dumps({"do_lower_case": True, "model_max_length": max_length})
    )


def _write_data(path: Path, rows: int, max_length: int) -> None:
    rng = np.random.default_rng(0)
    with open(path, "w") as handle:
        handle.write("text,label\n")
        for i in range(rows):
            words = " ".join(f"w{j}" for j in rng.integers(0, 995, max_length + 8))
            handle.write(f"{words},{'pos' if i % 2 else 'neg'}\n")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _median_rate(out: Path) -> float:
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    rates = [r["examples_per_second"] for r in log if "examples_per_second" in r and r["step"] > 3]
    return float(np.median(rates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=16, help="global batch (examples per optimizer step)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--out", default="/tmp/bert-scale-flax")
    options = parser.parse_args()
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    model, data = out / "model", out / "train.csv"
    if not (model / "config.json").is_file():
        _write_model(model, options.max_length)
    _write_data(data, options.steps * options.batch, options.max_length)
    common = [
        "train",
        "text-classification",
        "--backend",
        "flax",
        "--model",
        str(model),
        "--train",
        str(data),
        "--max-steps",
        str(options.steps),
        "--max-length",
        str(options.max_length),
        "--save-every",
        str(options.steps * 10),
        "-q",
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    env.pop("XLA_FLAGS", None)
    configs = {
        "1 device": (1, [["--batch-size", str(options.batch)]]),
        "mesh data=2, 1 process x 2 devices": (2, [["--batch-size", str(options.batch // 2), "--mesh", "data=2"]]),
    }
    port = _free_port()
    configs["mesh data=2, 2 processes x 1 device"] = (
        1,
        [
            [
                "--batch-size",
                str(options.batch // 2),
                "--mesh",
                "data=2",
                "--num-processes",
                "2",
                "--process-id",
                str(r),
                "--coordinator",
                f"127.0.0.1:{port}",
            ]
            for r in range(2)
        ],
    )
    for name, (devices, per_process) in configs.items():
        run_dir = out / name.replace(" ", "_").replace(",", "").replace("=", "")
        argv = [common[:8] + ["--output", str(run_dir)] + common[8:] + extra for extra in per_process]
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "bert_core.cli", *a], env=dict(env, JAX_NUM_CPU_DEVICES=str(devices))
            )
            for a in argv
        ]
        try:
            codes = [p.wait(timeout=1800) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        if any(codes):
            raise SystemExit(f"{name}: exit codes {codes}")
        print(json.dumps({"config": name, "global_batch": options.batch, "examples_per_second": _median_rate(run_dir)}))


if __name__ == "__main__":
    main()
