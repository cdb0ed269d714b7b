"""Helpers of tests/torch/test_distributed.py: a tiny workspace (model directory, data) and torchrun launches.

Also a driver: ``torchrun ... tests/torch/dist_support.py RUNS.json`` trains each run of the JSON list (a list of
``bert train`` argument lists) in one launch, so one process group start serves several comparisons.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from bert_torch.distributed import TORCHRUN_ENV  # noqa: F401 - the tests read it from here

REPO = Path(__file__).resolve().parents[2]
TASKS_DATA = REPO / "tests" / "data" / "tasks"
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
#: the first rows of the repository's task files: enough for 10 steps of a global batch of 8
ROWS = 48

#: each task: (head, data file in tests/data/tasks)
TASKS = {
    "text-classification": "sst_train.csv",
    "token-classification": "ner_train.jsonl",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def workspace(root: Path) -> Dict[str, Path]:
    """A tiny BERT directory (config + WordPiece vocabulary of the data's words) and ``ROWS`` rows of each task.

    Returns:
        ``{"model": dir, "<task>": data file}``.
    """
    from bert_core.config import tiny_config
    from bert_core.tokenization import BertTokenizer

    root.mkdir(parents=True, exist_ok=True)
    out: Dict[str, Path] = {}
    words = set()
    for task, name in TASKS.items():
        lines = (TASKS_DATA / name).read_text(encoding="utf-8").splitlines(keepends=True)
        kept = lines[: ROWS + (1 if name.endswith(".csv") else 0)]  # the CSV header
        out[task] = root / name
        out[task].write_text("".join(kept), encoding="utf-8")
        words.update(re.findall(r"[a-z0-9]+|[^\sa-z0-9]", "".join(kept).lower()))
    vocab = SPECIAL + sorted(words)
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    model = root / "model"
    # a config and no weights: the heads start from the seeded initialisation (bert train's from-scratch rule
    # covers mlm/pretraining only), so the weights are written once here
    from bert_torch import BertModel

    BertModel(tiny_config(vocab_size=len(vocab)), seed=0).save_pretrained(model)
    BertTokenizer(vocab_file=str(root / "vocab.txt")).save_pretrained(model)
    out["model"] = model
    return out


def train_argv(
    ws: Dict[str, Path],
    task: str,
    output: Path,
    strategy: str = "none",
    steps: int = 10,
    batch: int = 8,
    extra: Sequence[str] = (),
) -> List[str]:
    """``bert train`` arguments: ``steps`` AdamW steps, dropout off, global batch ``batch`` (per device
    ``batch / W`` is set by the caller through ``extra``' --batch-size when W > 1)."""
    return [
        "train",
        task,
        "--backend",
        "torch",
        "--model",
        str(ws["model"]),
        "--train",
        str(ws[task]),
        "--output",
        str(output),
        "--strategy",
        strategy,
        "--batch-size",
        str(batch),
        "--max-steps",
        str(steps),
        "--lr",
        "1e-3",
        "--max-length",
        "24",
        "--quiet",
        "--set",
        "hidden_dropout_prob=0",
        "--set",
        "attention_probs_dropout_prob=0",
        *extra,
    ]


def torchrun(
    nproc: int, program: Sequence[str], env: Optional[Dict[str, str]] = None, timeout: float = 120.0
) -> subprocess.Popen:
    """Start ``torchrun --nproc_per_node nproc`` on 127.0.0.1 (a free port) running ``program`` (a module run
    with ``-m`` when it starts with ``-m``, else a script). The caller waits with a timeout and kills in finally."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(nproc),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        "--max_restarts",
        "0",
        *program,
    ]
    child_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "HF_HUB_OFFLINE": "1",
        "BERT_TORCH_COLLECTIVE_TIMEOUT": "60",
        **(env or {}),
    }
    return subprocess.Popen(
        command, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def finish(process: subprocess.Popen, timeout: float) -> str:
    """Wait for ``process`` (its output returned); on timeout kill its whole session and fail."""
    try:
        output, _ = process.communicate(timeout=timeout)
        return output
    except subprocess.TimeoutExpired:
        kill(process)
        raise AssertionError(f"torchrun did not finish within {timeout} s") from None


def kill(process: subprocess.Popen) -> None:
    """Kill the launcher and its workers (the session it leads), then reap it."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def worker_pid(launcher: int, rank: int, timeout: float = 60.0) -> int:
    """The pid of the torchrun worker of ``rank`` (a child of the launcher whose environment has ``RANK=rank``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in Path(f"/proc/{launcher}/task").glob("*/children"):
            for pid in child.read_text().split():
                try:
                    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                except OSError:
                    continue
                if f"RANK={rank}".encode() in environ:
                    return int(pid)
        time.sleep(0.2)
    raise AssertionError(f"no worker of rank {rank} under torchrun pid {launcher} within {timeout} s")


def main(runs_file: str) -> int:
    from bert_core.training.cli import main as bert_train

    for argv in json.loads(Path(runs_file).read_text(encoding="utf-8")):
        code = bert_train(argv)
        if code != 0:
            return code
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
