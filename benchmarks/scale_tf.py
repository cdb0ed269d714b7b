"""Examples/s of ``bert train --backend tf`` on 1 vs 2 replicas: one process, ``--strategy mirrored --devices 2``
(two logical CPU devices, or two GPUs where there are), ``--strategy multi-worker`` with 2 local processes.

Every run trains the same small model on the same data with the same global batch (dropout off); the figure is the
median of the ``examples_per_second`` that ``log.jsonl`` records per step, the first steps (tracing) left out.

    python -m benchmarks.scale_tf [--steps 40] [--batch 32] [--hidden 128] [--layers 4]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "tasks" / "sst_train.csv"
WARMUP_STEPS = 5


def _env(**extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(HF_HUB_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow", **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _model(directory: Path, hidden: int, layers: int) -> Path:
    from bert_core.checkpoint import save_pretrained
    from bert_core.config import BertConfig
    from bert_core.init import init_weights

    directory.mkdir(parents=True, exist_ok=True)
    words = sorted({w for line in DATA.read_text().splitlines()[1:] for w in line.rsplit(",", 1)[0].lower().split()})
    (directory / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    config = BertConfig(
        vocab_size=len(words) + 5,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 32),
        intermediate_size=4 * hidden,
        max_position_embeddings=128,
    )
    save_pretrained(directory, config, init_weights(config, "BertModel"), architecture="BertModel")
    return directory


def _argv(model: Path, out: Path, batch: int, steps: int) -> List[str]:
    return [
        sys.executable, "-m", "bert_core.cli", "train", "text-classification", "--backend", "tf",
        "--model", str(model), "--train", str(DATA), "--output", str(out), "--batch-size", str(batch),
        "--max-steps", str(steps), "--save-every", str(10 * steps), "--max-length", "64", "-q",
        "--set", "hidden_dropout_prob=0", "--set", "attention_probs_dropout_prob=0",
    ]  # fmt: skip


def _rate(out: Path) -> float:
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    rates = [r["examples_per_second"] for r in records if "examples_per_second" in r and r["step"] > WARMUP_STEPS]
    return float(np.median(rates))


def run(model: Path, work: Path, batch: int, steps: int) -> Dict[str, float]:
    """``{setup: examples/s}`` for the three setups, global batch ``batch``."""
    results = {}
    one = work / "one"
    subprocess.run(_argv(model, one, batch, steps), env=_env(), check=True, timeout=1200)
    results["1 process, 1 device"] = _rate(one)
    mirrored = work / "mirrored"
    argv = _argv(model, mirrored, batch // 2, steps) + ["--strategy", "mirrored", "--devices", "2"]
    subprocess.run(argv, env=_env(), check=True, timeout=1200)
    results["mirrored, 2 devices"] = _rate(mirrored)
    sockets = [socket.socket() for _ in range(2)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    cluster = {"worker": [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]}
    for s in sockets:
        s.close()
    multi = work / "multi"
    argv = _argv(model, multi, batch // 2, steps) + ["--strategy", "multi-worker"]
    procs = [
        subprocess.Popen(
            argv, env=_env(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
        )
        for i in range(2)
    ]
    try:
        codes = [p.wait(timeout=1200) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    if any(codes):
        raise RuntimeError(f"multi-worker run failed: exit codes {codes}")
    results["multi-worker, 2 processes"] = _rate(multi)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=32, help="global batch (even)")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = _model(Path(tmp) / "model", ns.hidden, ns.layers)
        results = run(model, Path(tmp), ns.batch, ns.steps)
    print(f"| setup (global batch {ns.batch}, hidden {ns.hidden}, {ns.layers} layers) | examples/s |")
    print("|---|---|")
    for name, rate in results.items():
        print(f"| {name} | {rate:.1f} |")


if __name__ == "__main__":
    main()
