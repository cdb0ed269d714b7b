"""1 process vs 2 torchrun workers (DDP, FSDP2) for ``bert train --backend torch``: training examples/s.

Each run is the real CLI (``python -m bert_core.cli train``, under ``torch.distributed.run`` for 2 workers on
127.0.0.1) on the repository's text-classification data with the same global batch; examples/s is the median of
``log.jsonl``'s per-step ``examples_per_second`` after the first steps (warm-up). Usage::

    python benchmarks/scale_torch.py [--hidden 256] [--layers 4] [--batch 32] [--steps 30] [--out results.json]
    python benchmarks/scale_torch.py --model   # the written scaling model (benchmarks/README.md), as a table

The scaling model (no measurement): per-GPU step time and memory of bert-base / bert-large pre-training with DDP and
FSDP at W workers, from the FLOPs counted off the config and stated bandwidths; :func:`scaling_model` holds the
formulas.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "tasks" / "sst_train.csv"
WARMUP = 3


def _model_dir(root: Path, hidden: int, layers: int) -> Path:
    from bert_core.config import tiny_config
    from bert_core.tokenization import BertTokenizer
    from bert_torch import BertModel

    words = sorted(set(re.findall(r"[a-z0-9]+|[^\sa-z0-9]", DATA.read_text(encoding="utf-8").lower())))
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n", encoding="utf-8")
    config = tiny_config(
        vocab_size=len(words) + 5,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        intermediate_size=4 * hidden,
    )
    model = root / "model"
    BertModel(config, seed=0).save_pretrained(model)
    BertTokenizer(vocab_file=str(vocab)).save_pretrained(model)
    return model


def _run(workers: int, strategy: str, model: Path, output: Path, batch: int, steps: int) -> float:
    argv = [
        "train", "text-classification", "--backend", "torch", "--model", str(model), "--train", str(DATA),
        "--output", str(output), "--strategy", strategy, "--batch-size", str(batch // workers),
        "--max-steps", str(steps), "--max-length", "64", "--save-every", str(10 * steps), "--quiet",
    ]  # fmt: skip
    if workers == 1:
        command = [sys.executable, "-m", "bert_core.cli", *argv]
    else:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        command = [
            sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(workers), "--master_addr",
            "127.0.0.1", "--master_port", str(port), "-m", "bert_core.cli", *argv,
        ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    subprocess.run(command, env=env, check=True, timeout=1800, stdout=subprocess.DEVNULL)
    from bert_core.training.loop import read_log

    rates = sorted(r["examples_per_second"] for r in read_log(output / "log.jsonl") if "loss" in r)[WARMUP:]
    return rates[len(rates) // 2]


# ------------------------------------------------------------------------------------------------ the scaling model

#: (hidden, layers, heads, intermediate) of the two pre-training sizes; vocabulary 30522, 512 positions
SIZES = {"bert-base": (768, 12, 12, 3072), "bert-large": (1024, 24, 16, 4096)}
VOCAB, POSITIONS, SEQ, MICRO = 30522, 512, 128, 32  # phase-1 pre-training: 32 sequences of 128 tokens per GPU
#: sustained bf16 model FLOP/s per GPU: 40% of the dense peak (bert_torch bf16 measured 39% on an H200, README)
GPUS = {"A100": 0.40 * 312e12, "H100": 0.40 * 989e12}
#: achievable all-reduce bus bandwidth per GPU, bytes/s: NVLink inside an 8-GPU node; one NIC per GPU across nodes
LINKS = {"A100": 240e9, "H100": 360e9, "IB 100 Gb/s": 0.85 * 100e9 / 8, "IB 400 Gb/s": 0.85 * 400e9 / 8}


def parameters(hidden: int, layers: int, intermediate: int) -> int:
    """BertForPreTraining's trainable parameters (decoder tied to the word embeddings)."""
    layer = 4 * hidden * hidden + 4 * hidden + 2 * hidden * intermediate + intermediate + hidden + 4 * hidden
    embeddings = (VOCAB + POSITIONS + 2) * hidden + 2 * hidden
    heads = hidden * hidden + 3 * hidden + VOCAB + hidden * 2 + 2 + hidden * hidden + hidden  # MLM, NSP, pooler
    return layers * layer + embeddings + heads


def step_flops(hidden: int, layers: int, params: int, tokens: int, sequences: int) -> float:
    """Training FLOPs of one micro-batch: ``6 * P * T`` (forward 2, backward 4 per parameter and token; the tied
    decoder makes the embedding matrix a matmul over every position) plus attention ``12 * L * S^2 * H`` per
    sequence (QK^T and AV, 2 * S^2 * H each forward, times 3 with the backward)."""
    return 6.0 * params * tokens + 12.0 * layers * SEQ * SEQ * hidden * sequences


def scaling_model() -> List[Dict[str, object]]:
    """Rows of the scaling model: per size, GPU, link and W in 8..64, DDP and FSDP step time and memory per GPU.

    - compute ``t_c = F / R`` (F from :func:`step_flops`, R sustained FLOP/s of :data:`GPUS`);
    - communication per step and GPU (ring collectives, ``(W-1)/W`` of the volume crosses each link):
      DDP all-reduces float32 gradients, ``2 * 4P (W-1)/W`` bytes; FSDP all-gathers bf16 weights twice (forward and
      backward) and reduce-scatters float32 gradients, ``(2P + 2P + 4P) (W-1)/W`` bytes: the same 8P. ``t_x = bytes
      / B`` with B the NVLink bandwidth for W = 8 (one node) and the per-GPU NIC for W > 8;
    - overlap: gradient buckets / the next layer's gather run during the backward (2/3 of the compute):
      ``t_step = t_c + max(0, t_x - 2/3 t_c)``;
    - memory per GPU: DDP ``16P`` (float32 weights + gradients + AdamW's two moments) + activations; FSDP
      ``16P / W`` + one layer's gathered bf16 weights and gradients (``2 * 2 * P_layer``, double-buffered: x2)
      + activations. Activations (bf16, per layer ``34 S b H + 5 a S^2 b`` bytes, Korthikanti et al. 2022) plus the
      MLM logits ``6 S b V`` (bf16 logits + float32 softmax).
    """
    rows = []
    for name, (hidden, layers, heads, intermediate) in SIZES.items():
        params = parameters(hidden, layers, intermediate)
        layer_params = 4 * hidden * hidden + 2 * hidden * intermediate
        flops = step_flops(hidden, layers, params, MICRO * SEQ, MICRO)
        activations = layers * (34 * SEQ * MICRO * hidden + 5 * heads * SEQ * SEQ * MICRO) + 6 * SEQ * MICRO * VOCAB
        for gpu, rate in GPUS.items():
            t_c = flops / rate
            for link in (gpu, "IB 100 Gb/s", "IB 400 Gb/s"):
                for workers in (8, 16, 32, 64):
                    if (link == gpu) != (workers == 8):
                        continue
                    volume = 8 * params * (workers - 1) / workers
                    t_x = volume / LINKS[link]
                    t_step = t_c + max(0.0, t_x - 2 / 3 * t_c)
                    rows.append(
                        dict(
                            model=name,
                            params_m=params / 1e6,
                            gflop_per_gpu_step=flops / 1e9,
                            gpu=gpu,
                            link="NVLink" if link == gpu else link,
                            workers=workers,
                            compute_ms=1e3 * t_c,
                            comm_ms=1e3 * t_x,
                            step_ms=1e3 * t_step,
                            scaling_efficiency=t_c / t_step,
                            ddp_gib=(16 * params + activations) / 2**30,
                            fsdp_gib=(16 * params / workers + 8 * layer_params + activations) / 2**30,
                        )
                    )
    return rows


def _model_table() -> str:
    lines = [
        "| model (P) | GPU | link | W | GFLOP/GPU/step | compute ms | comm ms | step ms | efficiency | "
        "DDP GiB/GPU | FSDP GiB/GPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in scaling_model():
        lines.append(
            f"| {r['model']} ({r['params_m']:.0f}M) | {r['gpu']} | {r['link']} | {r['workers']} | "
            f"{r['gflop_per_gpu_step']:,.0f} | {r['compute_ms']:.1f} | {r['comm_ms']:.1f} | {r['step_ms']:.1f} | "
            f"{r['scaling_efficiency']:.0%} | {r['ddp_gib']:.1f} | {r['fsdp_gib']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32, help="global batch (split over the workers)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--model", action="store_true", help="print the scaling model's table and exit")
    ns = parser.parse_args(argv)
    if ns.model:
        print(_model_table())
        return 0
    results: Dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = _model_dir(root, ns.hidden, ns.layers)
        for workers, strategy in ((1, "none"), (2, "ddp"), (2, "fsdp")):
            name = f"{workers}x {strategy}"
            results[name] = _run(workers, strategy, model, root / name.replace(" ", "-"), ns.batch, ns.steps)
            print(f"{name:8s} {results[name]:8.1f} examples/s", flush=True)
    if ns.out:
        Path(ns.out).write_text(json.dumps({"settings": vars(ns), "examples_per_second": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
