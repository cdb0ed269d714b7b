"""GPU inference throughput of bert-base, batch 64 x 128: ours (torch, flax) against HF transformers on the same GPU.

``python -m benchmarks.gpu [--out FILE] [--batch 64] [--length 128] [--repeats 30]``

Runs wherever CUDA is: one process, the same weights (``bert_core.init`` seed 0, written once with
``save_pretrained``) loaded by each contender, every contender warmed up and then timed round-robin (ours, HF,
ours, HF, ...) with device synchronisation around each call; medians reported. The bf16 matmul peak
(8192^3 in torch, same minute) gives each bf16 path's model FLOP/s as a fraction of what the chip does on a plain
GEMM. HF transformers 5 has no Flax classes, so the flax path is compared with HF's PyTorch model on the same GPU.
Not a test: CI has no GPU; the numbers go to benchmarks/README.md with the card's name.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import traceback
from typing import Callable, Dict

import numpy as np

from bert_core.checkpoint import save_pretrained
from bert_core.init import init_weights

from .workloads import bert_base_config, forward_flops

Step = Callable[[], None]


def torch_contenders(ckpt: str, ids: np.ndarray) -> Dict[str, Step]:
    import torch

    import bert_torch

    inputs = {
        "input_ids": torch.from_numpy(ids).cuda(),
        "attention_mask": torch.ones(ids.shape, dtype=torch.long, device="cuda"),
        "token_type_ids": torch.zeros(ids.shape, dtype=torch.long, device="cuda"),
    }
    out: Dict[str, Step] = {}
    ours = bert_torch.BertModel.from_pretrained(ckpt).cuda().eval()
    ours_bf16 = bert_torch.BertModel.from_pretrained(ckpt, torch_dtype="bfloat16").cuda().eval()
    models = {"torch_ours_fp32": ours, "torch_ours_bf16": ours_bf16}
    try:
        import transformers

        hf = transformers.BertModel.from_pretrained(ckpt, attn_implementation="sdpa").cuda().eval()
        hf_bf16 = transformers.BertModel.from_pretrained(ckpt, dtype=torch.bfloat16, attn_implementation="sdpa")
        models.update(hf_torch_fp32=hf, hf_torch_bf16=hf_bf16.cuda().eval())
    except Exception as err:  # noqa: BLE001 - a missing reference is reported, ours still run
        print(f"HF transformers unavailable: {err}", flush=True)
    for name, model in models.items():

        def step(model=model):
            with torch.inference_mode():
                model(**inputs).last_hidden_state.sum().item()

        out[name] = step
    # equality of the outputs we time (first rows), ours vs HF in each precision
    with torch.inference_mode():
        for precision in ("fp32", "bf16"):
            a, b = models.get(f"torch_ours_{precision}"), models.get(f"hf_torch_{precision}")
            if a is not None and b is not None:
                x = a(**inputs).last_hidden_state.float()
                y = b(**inputs).last_hidden_state.float()
                print(f"torch {precision}: max|ours - HF| = {float((x - y).abs().max()):.3g}", flush=True)
    return out


def flax_contenders(ckpt: str, ids: np.ndarray) -> Dict[str, Step]:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    import bert_flax

    out: Dict[str, Step] = {}
    mask = np.ones_like(ids)
    types = np.zeros_like(ids)
    for precision, dtype in (("fp32", jnp.float32), ("bf16", jnp.bfloat16)):
        model = bert_flax.BertModel.from_pretrained(ckpt, dtype=dtype, param_dtype=dtype)
        graphdef, state = nnx.split(model)

        @jax.jit
        def run(state, input_ids, attention_mask, token_type_ids, graphdef=graphdef):
            m = nnx.merge(graphdef, state)
            return m(input_ids, attention_mask, token_type_ids).last_hidden_state

        args = [jax.device_put(jnp.asarray(x)) for x in (ids, mask, types)]

        def step(run=run, state=state, args=args):
            run(state, *args).block_until_ready()

        out[f"flax_ours_{precision}"] = step
    return out


def bf16_peak(n: int = 8192, repeats: int = 10) -> float:
    import torch

    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu")
    parser.add_argument("--out", default="gpu_results.json")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--backends", default="torch,flax")
    args = parser.parse_args(argv)
    config = bert_base_config()
    ids = np.random.default_rng(0).integers(1000, config.vocab_size, (args.batch, args.length)).astype(np.int64)
    result: Dict[str, object] = {"batch": args.batch, "length": args.length, "errors": [], "times": {}}
    with tempfile.TemporaryDirectory() as ckpt:
        save_pretrained(ckpt, config, init_weights(config, "BertModel", 0), architecture="BertModel")
        steps: Dict[str, Step] = {}
        for backend, build in (("torch", torch_contenders), ("flax", flax_contenders)):
            if backend not in args.backends.split(","):
                continue
            try:
                steps.update(build(ckpt, ids))
            except Exception as err:  # noqa: BLE001 - record and go on with the other backend
                result["errors"].append(f"{backend}: {type(err).__name__}: {err}\n{traceback.format_exc(limit=4)}")
                print(result["errors"][-1], flush=True)
        for name, step in steps.items():  # compile / autotune, then warm up
            for _ in range(3):
                step()
            print(f"warm: {name}", flush=True)
        samples: Dict[str, list] = {name: [] for name in steps}
        for _ in range(args.repeats):
            for name, step in steps.items():
                start = time.perf_counter()
                step()
                samples[name].append(time.perf_counter() - start)
    flops = forward_flops(config, args.batch, args.length)
    try:
        import torch

        result["device"] = torch.cuda.get_device_name(0)
        result["torch"] = torch.__version__
        result["bf16_peak_tflops"] = bf16_peak() / 1e12
    except Exception as err:  # noqa: BLE001
        result["errors"].append(f"peak: {err}")
    try:
        import flax
        import jax

        result["jax"], result["flax"] = jax.__version__, flax.__version__
    except Exception:  # noqa: BLE001
        pass
    try:
        import transformers

        result["transformers"] = transformers.__version__
    except Exception:  # noqa: BLE001
        pass
    result["python"] = platform.python_version()
    for name, times in samples.items():
        median = statistics.median(times)
        entry = {"median_s": median, "seq_per_s": args.batch / median, "tflops": flops / median / 1e12}
        if result.get("bf16_peak_tflops") and name.endswith("bf16"):
            entry["share_of_bf16_peak"] = entry["tflops"] / result["bf16_peak_tflops"]
        result["times"][name] = entry
        print(f"{name:<18} {median * 1e3:8.2f} ms  {entry['seq_per_s']:9.0f} seq/s  {entry['tflops']:6.1f} TFLOP/s")
    times = result["times"]
    for ours, hf in (
        ("torch_ours_fp32", "hf_torch_fp32"),
        ("torch_ours_bf16", "hf_torch_bf16"),
        ("flax_ours_fp32", "hf_torch_fp32"),
        ("flax_ours_bf16", "hf_torch_bf16"),
    ):
        if ours in times and hf in times:
            result[f"{ours}_vs_{hf}"] = times[hf]["median_s"] / times[ours]["median_s"]
    with open(args.out + ".tmp", "w") as handle:
        json.dump(result, handle, indent=2)
    os.replace(args.out + ".tmp", args.out)
    print(json.dumps({k: v for k, v in result.items() if k != "times"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
