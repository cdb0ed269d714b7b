"""Flax scale-out (``--mesh``, ``jax.distributed``): N devices or processes train the one-device model.

JAX fixes its device count when it starts, so the runs happen in subprocesses: one process with two CPU devices
(``JAX_NUM_CPU_DEVICES=2``) runs ``bert train`` several times (``python THIS_FILE RUNS.json``: one JAX start and the
imports for all of them), and two processes with one device each form a ``jax.distributed`` job on a free
127.0.0.1 port. Dropout is off, so a mesh run equals the one-device run up to the order of the float32 reductions.
Tiny model (hidden 32, intermediate 36 so ``model=2`` divides it), 16 training rows, 4 AdamW steps.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "tasks"
#: generous bounds for a loaded 2-core CI machine; a hang is what they catch
RUN_TIMEOUT_S = 420
KILL_EXIT_BOUND_S = 90

COMMON = ["--backend", "flax", "--max-steps", "4", "--lr", "1e-2", "--max-length", "32", "--seed", "3", "-q"]
COMMON += ["--set", "hidden_dropout_prob=0", "--set", "attention_probs_dropout_prob=0", "--no-shuffle"]
#: measured (4 AdamW steps, lr 1e-2): losses agree to 1.1e-7 relative, weights to 1.7e-5 (float32 reductions in another
#: order, amplified by Adam where the second moment is small)
LOSS_RTOL, WEIGHT_ATOL = 1e-6, 5e-5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(devices: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", JAX_PLATFORMS="cpu", PYTHONHASHSEED="0")
    env["JAX_NUM_CPU_DEVICES"] = str(devices)
    env.pop("XLA_FLAGS", None)
    return env


def _losses(out: Path) -> dict:
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in log if "loss" in r}


def _weights(out: Path) -> dict:
    from safetensors.numpy import load_file

    return load_file(out / "model.safetensors")


def _max_weight_delta(a: Path, b: Path) -> float:
    wa, wb = _weights(a), _weights(b)
    assert set(wa) == set(wb)
    # attention key biases have an exactly zero gradient (softmax ignores a shift shared by all keys): Adam moves them
    # by rounding noise / eps, up to the learning rate per step, differently for any other reduction order
    kept = [k for k in wa if not k.endswith("attention.self.key.bias")]
    return max(float(np.max(np.abs(wa[k].astype(np.float64) - wb[k]))) for k in kept)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A tiny checkpoint with a tokenizer, and 16-row slices of the sst and ner task data."""
    from bert_core.checkpoint import save_pretrained
    from bert_core.config import tiny_config
    from bert_core.init import init_weights

    root = tmp_path_factory.mktemp("dist-flax")
    words = sorted(
        {
            w.lower().strip(".,!?\"'")
            for line in (DATA / "sst_train.csv").read_text().splitlines()[1:17]
            for w in line.split()
        }
        - {""}
    )
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [chr(c) for c in range(ord("a"), ord("z") + 1)] + words
    config = tiny_config(vocab_size=len(vocab), intermediate_size=36, initializer_range=0.2)
    model = root / "model"
    save_pretrained(model, config, init_weights(config, "BertForPreTraining", seed=3), architecture="BertForMaskedLM")
    (model / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (model / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 32}))
    (root / "sst.csv").write_text("\n".join((DATA / "sst_train.csv").read_text().splitlines()[:17]) + "\n")
    (root / "ner.jsonl").write_text("\n".join((DATA / "ner_train.jsonl").read_text().splitlines()[:16]) + "\n")
    return root


def _train_argv(work: Path, task: str, out: Path, *extra: str) -> list:
    data = work / ("sst.csv" if task == "text-classification" else "ner.jsonl")
    return ["train", task, "--model", str(work / "model"), "--train", str(data), "--output", str(out), *COMMON, *extra]


def _processes(work: Path, out: Path, *extra: str, processes: int = 2) -> list:
    port = _free_port()
    procs = []
    for rank in range(processes):
        argv = _train_argv(work, "text-classification", out, "--mesh", f"data={processes}", "--devices", "1")
        argv += ["--num-processes", str(processes), "--process-id", str(rank), "--coordinator", f"127.0.0.1:{port}"]
        log = open(work / f"{out.name}-{rank}.log", "w")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "bert_core.cli", *argv, *extra], env=_env(1), stdout=log, stderr=log, cwd=ROOT
            )
        )
    return procs


def _stop(procs: list) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def two_processes(work):
    """``jax.distributed`` over 2 processes x 1 CPU device, mesh data=2, batch 2 per device, checkpoint every 2."""
    out = work / "two-processes"
    procs = _processes(work, out, "--batch-size", "2", "--save-every", "2")
    try:
        codes = [proc.wait(timeout=RUN_TIMEOUT_S) for proc in procs]
    finally:
        _stop(procs)
    logs = "\n".join((work / f"{out.name}-{r}.log").read_text()[-3000:] for r in range(2))
    assert codes == [0, 0], logs
    return out


@pytest.fixture(scope="module")
def runs(work, two_processes):
    """One process, 2 CPU devices: the one-device runs and the mesh runs (global batch 4 in each), a resume of the
    two-process checkpoint on one device, and the shardings a data=1,model=2 mesh gives."""
    runs = {
        "cls-1": _train_argv(work, "text-classification", work / "cls-1", "--batch-size", "4"),
        "cls-data2": _train_argv(
            work, "text-classification", work / "cls-data2", "--batch-size", "2", "--mesh", "data=2", "--devices", "2"
        ),
        "cls-model2": _train_argv(
            work, "text-classification", work / "cls-model2", "--batch-size", "4", "--mesh", "data=1,model=2"
        ),
        "ner-1": _train_argv(work, "token-classification", work / "ner-1", "--batch-size", "4"),
        "ner-data2": _train_argv(
            work, "token-classification", work / "ner-data2", "--batch-size", "2", "--mesh", "data=2", "--devices", "2"
        ),
        # the two-process job's step-2 checkpoint (orbax state on 2 devices), resumed on 1 device with the same
        # global batch
        "cls-resumed": _train_argv(
            work,
            "text-classification",
            work / "cls-resumed",
            "--batch-size",
            "4",
            "--mesh",
            "data=1",
            "--devices",
            "1",
            "--resume",
            str(two_processes / "checkpoints" / "step-2"),
        ),
    }
    spec = work / "runs.json"
    spec.write_text(json.dumps({"runs": runs, "shardings": str(work / "shardings.json")}))
    result = subprocess.run(
        [sys.executable, __file__, str(spec)], env=_env(2), capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    codes = json.loads(result.stdout.strip().splitlines()[-1])
    assert codes == {name: 0 for name in runs}, result.stderr[-3000:]
    return {name: work / name for name in runs} | {"shardings": json.loads((work / "shardings.json").read_text())}


@pytest.mark.parametrize("task", ["cls", "ner"])
def test_data_axis_equals_one_device(runs, task):
    one, mesh = _losses(runs[f"{task}-1"]), _losses(runs[f"{task}-data2"])
    assert sorted(one) == [1, 2, 3, 4]
    np.testing.assert_allclose([mesh[s] for s in one], list(one.values()), rtol=LOSS_RTOL)
    assert _max_weight_delta(runs[f"{task}-1"], runs[f"{task}-data2"]) < WEIGHT_ATOL


def test_model_axis_shards_weights_and_equals_data_only(runs):
    np.testing.assert_allclose(
        list(_losses(runs["cls-model2"]).values()), list(_losses(runs["cls-data2"]).values()), rtol=LOSS_RTOL
    )
    assert _max_weight_delta(runs["cls-model2"], runs["cls-data2"]) < WEIGHT_ATOL
    specs = runs["shardings"]
    layer = "bert.encoder.layer.0."
    # flax kernels are (in, out): q/k/v and the FFN's first dense split their output (last) axis, the output denses
    # their input (first) axis; the optimizer's moments sit like their parameter
    assert specs[layer + "attention.self.query.kernel"] == [None, "model"]
    assert specs[layer + "attention.self.value.bias"] == ["model"]
    assert specs[layer + "intermediate.dense.kernel"] == [None, "model"]
    assert specs[layer + "attention.output.dense.kernel"] == ["model", None]
    assert specs[layer + "output.dense.kernel"] == ["model", None]
    assert specs[layer + "output.dense.bias"] == [None]
    assert specs["bert.embeddings.word_embeddings.embedding"] == [None, None]
    moments = {k: v for k, v in specs.items() if k.startswith("opt_state.") and ".mu." in k}
    assert moments and all(v == specs[k.split(".mu.", 1)[1]] for k, v in moments.items())


def test_two_processes_equal_one_process(runs, two_processes):
    one = _losses(runs["cls-1"])
    np.testing.assert_allclose([_losses(two_processes)[s] for s in one], list(one.values()), rtol=LOSS_RTOL)
    assert _max_weight_delta(runs["cls-1"], two_processes) < WEIGHT_ATOL
    assert (two_processes / "checkpoints" / "step-2" / "orbax").is_dir()
    assert not (two_processes / "orbax").exists()  # the final model is the canonical files only


def test_orbax_resume_on_one_device_equals_uninterrupted(runs, two_processes):
    """The two-process job's step-2 checkpoint (sharded on 2 devices) resumed on 1 device: steps 3-4 as before."""
    resumed, uninterrupted = _losses(runs["cls-resumed"]), _losses(two_processes)
    assert sorted(resumed) == [3, 4]
    np.testing.assert_allclose([resumed[3], resumed[4]], [uninterrupted[3], uninterrupted[4]], rtol=LOSS_RTOL)
    assert _max_weight_delta(runs["cls-resumed"], two_processes) < WEIGHT_ATOL


def test_killing_one_process_fails_the_job_in_bounded_time(work):
    out = work / "killed"
    procs = _processes(work, out, "--batch-size", "2", "--max-steps", "100000", "--save-every", "100000")
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not (out / "log.jsonl").is_file() or not _losses(out):
            assert procs[0].poll() is None and time.monotonic() < deadline, "the job did not start training"
            time.sleep(0.2)
        procs[1].kill()
        killed = time.monotonic()
        code = procs[0].wait(timeout=KILL_EXIT_BOUND_S)
        assert code != 0
        assert time.monotonic() - killed < KILL_EXIT_BOUND_S
    finally:
        _stop(procs)


def test_mesh_needs_the_devices_it_names():
    from bert_flax.distributed import make_mesh

    with pytest.raises(ValueError, match=r"--mesh data=64 needs data\*model = 64 devices; 1 are visible"):
        make_mesh("data=64")
    with pytest.raises(ValueError, match="--mesh 'data=0' is invalid"):
        make_mesh("data=0")


def _record_shardings(path: str) -> None:
    """The data=1,model=2 mesh's partition spec of every parameter and optimizer variable, as JSON lists."""
    import jax

    import bert_flax
    from bert_core.config import tiny_config
    from bert_core.training.args import TrainingArguments
    from bert_flax.distributed import MeshBackend, _flat, make_mesh

    model = bert_flax.BertForSequenceClassification(tiny_config(intermediate_size=36), seed=0)
    args = TrainingArguments(output_dir="-", mesh="data=1,model=2", backend="flax")
    backend = MeshBackend(model, args, 4, make_mesh(args.mesh))
    specs = {}
    for prefix, node in (("", backend.model), ("opt_state.", backend.optimizer.opt_state)):
        for name, var in _flat(node).items():
            value = var.get_value()
            if isinstance(value, jax.Array) and not jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
                spec = list(value.sharding.spec)  # trailing unsplit axes may be left out
                specs[prefix + name] = spec + [None] * (value.ndim - len(spec))
    Path(path).write_text(json.dumps(specs))


if __name__ == "__main__":  # the one-process runs of ``runs``: bert train for each, in one JAX process
    from bert_core.cli import main

    plan = json.loads(Path(sys.argv[1]).read_text())
    codes = {}
    for name, argv in plan["runs"].items():
        started = time.perf_counter()
        codes[name] = main(argv)
        print(f"{name}: {time.perf_counter() - started:.1f}s", file=sys.stderr)
    _record_shardings(plan["shardings"])
    print(json.dumps(codes))
