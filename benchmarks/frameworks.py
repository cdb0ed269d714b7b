"""Per-framework adapters: build our backend's model or HF transformers' from one checkpoint directory and return
plain callables the timing loop can use.

Every forward callable takes a dict of int64 numpy arrays (``input_ids``, ``attention_mask``, ``token_type_ids``)
and returns the float32 numpy ``last_hidden_state`` (so the device work is finished when it returns). Every train
step callable takes the same dict plus int labels and returns the float loss after one AdamW update.

Frameworks are imported lazily: this module loads none at import.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np

from bert_core.backends import BACKEND_NAMES, BACKENDS

#: the backends every workload runs on (the one table in bert_core.backends)
FRAMEWORKS = BACKEND_NAMES

Batch = Dict[str, np.ndarray]
Forward = Callable[[Batch], np.ndarray]

LR = 2e-5


def hf_available() -> bool:
    try:
        import transformers  # noqa: F401
    except Exception:
        return False
    return True


def _quiet_hf():
    import transformers

    transformers.logging.set_verbosity_error()
    return transformers


# ------------------------------------------------------------------------------------------------------- torch
def torch_setup(threads: int) -> Dict[str, object]:
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    return {"torch": torch.__version__, "torch_num_threads": torch.get_num_threads()}


def _torch_inputs(batch: Batch):
    import torch

    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}


#: backends with a compiled-inference option (``compile_for_inference``); flax always runs under jax.jit
COMPILED_FRAMEWORKS = ("torch", "tf")


def torch_forward(impl: str, ckpt: str, precision: str = "fp32", compiled: bool = False) -> Forward:
    import torch

    if impl == "ours":
        import bert_torch

        model = bert_torch.BertModel.from_pretrained(ckpt)
    else:
        transformers = _quiet_hf()
        model = transformers.BertModel.from_pretrained(ckpt, attn_implementation="sdpa")
    model.eval()
    if precision == "bf16":
        model = model.to(torch.bfloat16)
    if compiled:
        import bert_torch

        model = bert_torch.compile_for_inference(model)  # compiles on the first call

    def forward(batch: Batch) -> np.ndarray:
        with torch.inference_mode():
            out = model(**_torch_inputs(batch))
            return out[0].float().numpy()

    return forward


def torch_train_step(impl: str, ckpt: str, num_labels: int = 2):
    import torch

    if impl == "ours":
        import bert_torch

        model = bert_torch.BertForSequenceClassification.from_pretrained(ckpt, num_labels=num_labels)
    else:
        transformers = _quiet_hf()
        model = transformers.BertForSequenceClassification.from_pretrained(
            ckpt, num_labels=num_labels, attn_implementation="sdpa"
        )
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=LR)

    def step(batch: Batch, labels: np.ndarray) -> float:
        opt.zero_grad(set_to_none=True)
        out = model(**_torch_inputs(batch), labels=torch.from_numpy(labels))
        out.loss.backward()
        opt.step()
        return float(out.loss.detach())

    return step


def torch_peak(n: int, dtype: str, repeats: int) -> float:
    import time

    import torch

    dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    a = torch.randn(n, n).to(dt)
    b = torch.randn(n, n).to(dt)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t)
    return 2 * n**3 / float(np.median(times))


# ------------------------------------------------------------------------------------------------------- tf
def tf_setup(threads: int) -> Dict[str, object]:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # HF's TF classes need tf-keras; our bert_tf uses `import keras`
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    info: Dict[str, object] = {
        "tensorflow": tf.__version__,
        "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
    }
    try:
        import keras

        info["keras"] = keras.__version__
    except Exception:
        pass
    return info


def hf_tf_checkpoint(ckpt: str) -> str:
    """A copy of ``ckpt`` as ``pytorch_model.bin`` for HF's TF classes.

    transformers 4.57's TF loader cannot read a PyTorch safetensors file with the installed safetensors
    (``load_pytorch_state_dict_in_tf2_model``: "'builtins.safe_open' object is not iterable"), so HF TF is loaded
    ``from_pt=True`` from a .bin written once per checkpoint (next to the benchmark's temporary files).
    """
    import hashlib
    import shutil
    import tempfile

    import torch

    from bert_core.checkpoint import read_state_dict

    src = Path(ckpt)
    if (src / "pytorch_model.bin").exists() or (src / "tf_model.h5").exists():
        return ckpt
    key = hashlib.sha1(str(src.resolve()).encode()).hexdigest()[:12]
    out = Path(os.environ.get("BERT_BENCH_TMP", tempfile.gettempdir())) / f"hf-tf-{key}"
    if not (out / "pytorch_model.bin").exists():
        out.mkdir(parents=True, exist_ok=True)
        state, _ = read_state_dict(src)
        torch.save(
            {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}, out / "pytorch_model.bin.tmp"
        )
        shutil.copy(src / "config.json", out / "config.json")
        os.replace(out / "pytorch_model.bin.tmp", out / "pytorch_model.bin")
    return str(out)


def _tf_inputs(batch: Batch):
    import tensorflow as tf

    return [tf.constant(batch[k], tf.int32) for k in ("input_ids", "attention_mask", "token_type_ids")]


def tf_forward(
    impl: str, ckpt: str, precision: str = "fp32", jit_compile: bool = False, compiled: bool = False
) -> Forward:
    import tensorflow as tf

    if impl == "ours":
        import keras

        import bert_tf

        previous = keras.mixed_precision.global_policy().name
        if precision == "bf16":
            keras.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            model = bert_tf.BertModel.from_pretrained(ckpt)
        finally:
            keras.mixed_precision.set_global_policy(previous)
    else:
        if precision != "fp32":
            raise ValueError("HF TF is timed in fp32 only")
        transformers = _quiet_hf()
        model = transformers.TFBertModel.from_pretrained(hf_tf_checkpoint(ckpt), from_pt=True)

    if compiled:
        # our own option (XLA), called as the model is: its eager id checks are part of the timed call
        xla = bert_tf.compile_for_inference(model)

        def forward(batch: Batch) -> np.ndarray:
            ids, mask, types = _tf_inputs(batch)
            out = xla(input_ids=ids, attention_mask=mask, token_type_ids=types)
            return tf.cast(out["last_hidden_state"], tf.float32).numpy()

        return forward

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def run(input_ids, attention_mask, token_type_ids):
        out = model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, training=False)
        return tf.cast(out[0] if not isinstance(out, dict) else out["last_hidden_state"], tf.float32)

    def forward(batch: Batch) -> np.ndarray:
        return run(*_tf_inputs(batch)).numpy()

    return forward


def tf_train_step(impl: str, ckpt: str, num_labels: int = 2, jit_compile: bool = False):
    import tensorflow as tf

    if impl == "ours":
        import keras

        import bert_tf

        model = bert_tf.BertForSequenceClassification.from_pretrained(ckpt, num_labels=num_labels)
        opt = keras.optimizers.AdamW(learning_rate=LR)
    else:
        transformers = _quiet_hf()
        import tf_keras

        model = transformers.TFBertForSequenceClassification.from_pretrained(
            hf_tf_checkpoint(ckpt), from_pt=True, num_labels=num_labels
        )
        opt = tf_keras.optimizers.AdamW(learning_rate=LR)

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def run(input_ids, attention_mask, token_type_ids, labels):
        with tf.GradientTape() as tape:
            out = model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                labels=labels,
                training=True,
            )
            loss = tf.reduce_mean(out["loss"] if isinstance(out, dict) else out.loss)
        variables = model.trainable_variables
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip(grads, variables))
        return loss

    def step(batch: Batch, labels: np.ndarray) -> float:
        return float(run(*_tf_inputs(batch), tf.constant(labels, tf.int32)).numpy())

    return step


def tf_peak(n: int, dtype: str, repeats: int) -> float:
    import time

    import tensorflow as tf

    dt = {"fp32": tf.float32, "bf16": tf.bfloat16}[dtype]
    a = tf.cast(tf.random.normal((n, n)), dt)
    b = tf.cast(tf.random.normal((n, n)), dt)
    tf.matmul(a, b).numpy()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        tf.matmul(a, b).numpy()
        times.append(time.perf_counter() - t)
    return 2 * n**3 / float(np.median(times))


# ------------------------------------------------------------------------------------------------------- flax
def flax_setup(threads: int) -> Dict[str, object]:
    import jax

    info: Dict[str, object] = {
        "jax": jax.__version__,
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
        "jax_devices": [str(d) for d in jax.devices()],
    }
    try:
        import flax

        info["flax"] = flax.__version__
    except Exception:
        pass
    return info


def flax_forward(impl: str, ckpt: str, precision: str = "fp32") -> Forward:
    import jax
    import jax.numpy as jnp

    if impl == "ours":
        from flax import nnx

        import bert_flax

        dtype = jnp.bfloat16 if precision == "bf16" else jnp.float32
        model = bert_flax.BertModel.from_pretrained(ckpt, dtype=dtype, param_dtype=dtype)
        graphdef, state = nnx.split(model)

        @jax.jit
        def run(state, input_ids, attention_mask, token_type_ids):
            m = nnx.merge(graphdef, state)
            out = m(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, deterministic=True
            )
            return out[0].astype(jnp.float32)

        params = state
    else:
        if precision != "fp32":
            raise ValueError("HF Flax is timed in fp32 only")
        transformers = _quiet_hf()
        model = transformers.FlaxBertModel.from_pretrained(ckpt, from_pt=True)
        params = model.params

        @jax.jit
        def run(params, input_ids, attention_mask, token_type_ids):
            return model(input_ids, attention_mask, token_type_ids, params=params)[0]

    def forward(batch: Batch) -> np.ndarray:
        out = run(
            params, *(jnp.asarray(batch[k], jnp.int32) for k in ("input_ids", "attention_mask", "token_type_ids"))
        )
        return np.asarray(out)

    return forward


def flax_train_step(impl: str, ckpt: str, num_labels: int = 2):
    import jax
    import jax.numpy as jnp
    import optax

    tx = optax.adamw(LR)

    def xent(logits, labels):
        return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels).mean()

    if impl == "ours":
        from flax import nnx

        import bert_flax

        model = bert_flax.BertForSequenceClassification.from_pretrained(ckpt, num_labels=num_labels)
        opt = nnx.Optimizer(model, tx, wrt=nnx.Param)

        @nnx.jit
        def run(model, opt, input_ids, attention_mask, token_type_ids, labels):
            def loss_fn(m):
                logits = m(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    token_type_ids=token_type_ids,
                    deterministic=False,
                ).logits
                return xent(logits, labels)

            loss, grads = nnx.value_and_grad(loss_fn)(model)
            opt.update(model, grads)
            return loss

        def step(batch: Batch, labels: np.ndarray) -> float:
            args = [jnp.asarray(batch[k], jnp.int32) for k in ("input_ids", "attention_mask", "token_type_ids")]
            return float(run(model, opt, *args, jnp.asarray(labels, jnp.int32)))

        return step

    transformers = _quiet_hf()
    model = transformers.FlaxBertForSequenceClassification.from_pretrained(ckpt, from_pt=True, num_labels=num_labels)
    state = {"params": model.params, "opt": tx.init(model.params), "rng": jax.random.PRNGKey(0)}

    @jax.jit
    def run(params, opt_state, rng, input_ids, attention_mask, token_type_ids, labels):
        rng, dropout_rng = jax.random.split(rng)

        def loss_fn(p):
            logits = model(input_ids, attention_mask, token_type_ids, params=p, dropout_rng=dropout_rng, train=True)[0]
            return xent(logits, labels)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, rng, loss

    def step(batch: Batch, labels: np.ndarray) -> float:
        args = [jnp.asarray(batch[k], jnp.int32) for k in ("input_ids", "attention_mask", "token_type_ids")]
        state["params"], state["opt"], state["rng"], loss = run(
            state["params"], state["opt"], state["rng"], *args, jnp.asarray(labels, jnp.int32)
        )
        return float(loss)

    return step


def flax_peak(n: int, dtype: str, repeats: int) -> float:
    import time

    import jax
    import jax.numpy as jnp

    dt = {"fp32": jnp.float32, "bf16": jnp.bfloat16}[dtype]
    key = jax.random.PRNGKey(0)
    a = jax.random.normal(key, (n, n)).astype(dt)
    b = jax.random.normal(key, (n, n)).astype(dt)
    # bf16 inputs with float32 accumulation: the form bert_flax's bf16 path uses (and the only fast bf16 GEMM XLA:CPU
    # has); bf16 -> bf16 output runs a slow generic loop there.
    mm = jax.jit(lambda x, y: jnp.matmul(x, y, preferred_element_type=jnp.float32))
    mm(a, b).block_until_ready()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        mm(a, b).block_until_ready()
        times.append(time.perf_counter() - t)
    return 2 * n**3 / float(np.median(times))


SETUP = {"torch": torch_setup, "tf": tf_setup, "flax": flax_setup}
PEAK = {"torch": torch_peak, "tf": tf_peak, "flax": flax_peak}


def make_forward(
    framework: str, impl: str, ckpt: str, precision: str = "fp32", tf_jit: bool = False, compiled: bool = False
) -> Forward:
    """``compiled``: our ``compile_for_inference`` (torch and tf only)."""
    if compiled and (impl != "ours" or framework not in COMPILED_FRAMEWORKS):
        raise ValueError(f"no compiled variant for {impl} on {framework}")
    if framework == "torch":
        return torch_forward(impl, ckpt, precision, compiled=compiled)
    if framework == "tf":
        return tf_forward(impl, ckpt, precision, jit_compile=tf_jit, compiled=compiled)
    if framework == "flax":
        return flax_forward(impl, ckpt, precision)
    raise ValueError(framework)


def make_train_step(framework: str, impl: str, ckpt: str, num_labels: int = 2, tf_jit: bool = False):
    if framework == "torch":
        return torch_train_step(impl, ckpt, num_labels)
    if framework == "tf":
        return tf_train_step(impl, ckpt, num_labels, jit_compile=tf_jit)
    if framework == "flax":
        return flax_train_step(impl, ckpt, num_labels)
    raise ValueError(framework)


def our_backend_importable(framework: str) -> Optional[str]:
    """None when our backend imports, else the error text."""
    import importlib

    try:
        importlib.import_module(BACKENDS[framework].package)
    except Exception as err:  # noqa: BLE001 - report any import failure
        return f"{type(err).__name__}: {err}"
    return None
