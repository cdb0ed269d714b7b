"""BERT in Flax NNX, numerically equal to HF transformers 4.57 ``modeling_bert`` (PyTorch).

Read top to bottom: activations, input checks, masks and losses, then the module ladder named like the checkpoint
(``embeddings``, ``encoder.layer.{i}.attention.self.query`` ...), the two caches, the shared model machinery
(weights in and out through ``bert_core``), ``BertModel`` and the eight heads. Every weight name, shape, initial
value, output class and input check comes from ``bert_core``; this file only computes. A parameter's NNX path is
its canonical name split on dots: ``('bert', 'encoder', 'layer', 0, 'attention', 'self', 'query', 'kernel')``.

Shapes below: B batch, S new sequence length, P cached (past) length, K = P + S key length (a fixed-size cache's
buffer length), E encoder length, H hidden size, N heads, D head size (H / N), V vocab size, C choices.

bfloat16: ``dtype=jnp.bfloat16`` computes in bfloat16, and every matrix product (dense layers, attention, the tied
decoder) takes bfloat16 operands but accumulates and returns float32 before the cast back (``_accumulation_dtype``);
softmax runs in float32, the intermediate activation on the float32 sums, and on CPU attention scales the query by
1/sqrt(D) instead of the scores (docs/precision.md). On x86 CPUs XLA only reaches its fast bfloat16 GEMM in that bf16 x bf16 -> f32 form (a
bf16 -> bf16 dot is ~0.8x of float32, slower than the float32 model); no XLA flag of jaxlib 0.10 (oneDNN, XNNPACK
fusion) changes this. For inference also pass ``param_dtype=jnp.bfloat16`` to store the weights in bfloat16 once
instead of casting them every call (~1.8x float32 speed on an AVX-512-BF16 host, ~1.65x with float32 weights).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import os
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from bert_core import validation
from bert_core.checkpoint import aligned_copy, load_head_weights, release_pages
from bert_core.checkpoint import save_pretrained as _save_checkpoint
from bert_core.config import BertConfig
from bert_core.init import complete_weights, init_weights
from bert_core.outputs import (
    BaseModelOutputWithPastAndCrossAttentions,
    BaseModelOutputWithPoolingAndCrossAttentions,
    BertForPreTrainingOutput,
    CausalLMOutputWithCrossAttentions,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    NextSentencePredictorOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
    register_jax_pytree_nodes,
)
from bert_core.weights import WeightSpec, backend_path, check_weights_match, from_backend_array, stored_weights

register_jax_pytree_nodes()  # outputs pass through jit / grad / vmap

Array = jax.Array


def _is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def _accumulation_dtype(dtype) -> Optional[Any]:
    """float32 for a half-width computation ``dtype`` (bfloat16, float16), else None (the default dot).

    Matrix products of half-width operands then accumulate and return float32 (cast back to ``dtype`` right after).
    Besides the better sums, this is the form XLA:CPU runs fast: a bfloat16 x bfloat16 -> bfloat16 dot is emitted
    as a slow generic loop (about 0.8x of float32 on an AVX-512 host), while bfloat16 x bfloat16 -> float32 reaches
    the vendor GEMM (about 2x float32). The float32 path (``None``) keeps the plain dot.

    Only on CPU: XLA:GPU's bf16 GEMMs accumulate in float32 anyway, and there the float32 outputs cost memory
    traffic (bert-base 64 x 128 on an H200: 6.55 ms with float32 outputs, 5.81 ms without, same cosine to float32).
    """
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating) or jnp.dtype(dtype).itemsize >= 4:
        return None
    return jnp.float32 if jax.default_backend() == "cpu" else None


# True while from_pretrained builds a model whose parameters are about to be loaded (see _shape_only_parameters)
_SHAPE_ONLY = contextvars.ContextVar("bert_flax_shape_only_parameters", default=False)


def _shape_only(key: Array, shape, dtype=jnp.float32) -> jax.ShapeDtypeStruct:
    """Parameter initialiser that computes nothing: the parameter's shape and dtype, its value to be loaded."""
    return jax.ShapeDtypeStruct(tuple(shape), dtype)


@contextlib.contextmanager
def _shape_only_parameters():
    """Build modules eagerly with every parameter left as a ``jax.ShapeDtypeStruct`` (no random init, no memory).

    Everything else runs as in an eager build: each initialiser still draws its key from ``rngs``, so the dropout
    streams forked in between, and the caller's ``rngs`` counts, are bit-identical to a plain construction.
    """
    token = _SHAPE_ONLY.set(True)
    try:
        yield
    finally:
        _SHAPE_ONLY.reset(token)


def _initialisers(*names: str) -> Dict[str, Any]:
    """``{name: _shape_only}`` for each initialiser argument while building shape-only parameters, else ``{}``."""
    return dict.fromkeys(names, _shape_only) if _SHAPE_ONLY.get() else {}


class _Linear(nnx.Linear):
    """``nnx.Linear`` whose half-width computation accumulates in float32 and returns ``dtype`` (see above)."""

    def __init__(self, in_features: int, out_features: int, **kwargs) -> None:
        super().__init__(
            in_features,
            out_features,
            preferred_element_type=_accumulation_dtype(kwargs.get("dtype")),
            **_initialisers("kernel_init", "bias_init"),
            **kwargs,
        )

    def __call__(self, inputs: Array, out_sharding=None) -> Array:
        y = super().__call__(inputs, out_sharding=out_sharding)
        return y if self.dtype is None else y.astype(self.dtype)

    def accumulate(self, inputs: Array) -> Array:
        """``inputs @ kernel + bias`` before the cast back to ``dtype``: float32 for a half-width computation on CPU
        (the GEMM's own output), else the same as calling the layer."""
        return super().__call__(inputs)


def _layer_norm(config: BertConfig, dtype, param_dtype, rngs: nnx.Rngs) -> nnx.LayerNorm:
    # use_fast_variance=False: mean((x - mean)^2) as PyTorch computes it, not E[x^2] - E[x]^2
    return nnx.LayerNorm(
        config.hidden_size,
        epsilon=config.layer_norm_eps,
        use_fast_variance=False,
        dtype=dtype,
        param_dtype=param_dtype,
        rngs=rngs,
        **_initialisers("scale_init", "bias_init"),
    )


def _embed(num_embeddings: int, features: int, **kwargs) -> nnx.Embed:
    return nnx.Embed(num_embeddings, features, **_initialisers("embedding_init"), **kwargs)


def _device_array(array: np.ndarray, transpose: bool, dtype) -> Array:
    """A float32 canonical (PyTorch-layout) array as a JAX array of ``dtype``, transposed when ``transpose``.

    Holds one copy of the data, never a view of ``array`` (a checkpoint map whose pages the caller drops). For
    float32 the array is copied (kernels transposed) into a fresh aligned host buffer
    (``bert_core.checkpoint.aligned_copy``) that XLA:CPU adopts as the JAX array's own memory
    (``device_put(may_alias=True)``; a GPU copies it over): one copy, where a transposed numpy copy followed by
    ``jnp.asarray`` makes two. Other dtypes are cast by ``jnp.asarray``.
    """
    if jnp.dtype(dtype) != jnp.float32:
        return jnp.asarray(np.ascontiguousarray(array.T) if transpose else array, dtype=dtype)
    return jax.device_put(aligned_copy(array, transpose=transpose), may_alias=True)


def _rngs(seed: Optional[int], rngs: Optional[nnx.Rngs]) -> nnx.Rngs:
    """The constructor's ``rngs`` (they only drive dropout), by default ``nnx.Rngs(seed)``."""
    return nnx.Rngs(0 if seed is None else seed) if rngs is None else rngs


# -------------------------------------------------------------------------------------------------------- activations


def _gelu_tanh(x: Array) -> Array:
    # HF's "gelu_new" (GPT-2 / original BERT TF code), written with pow as HF does so the rounding matches.
    return 0.5 * x * (1.0 + jnp.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * jnp.power(x, 3.0))))


def _gelu_fast(x: Array) -> Array:
    return 0.5 * x * (1.0 + jnp.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


def _gelu_python(x: Array) -> Array:
    return x * 0.5 * (1.0 + jax.lax.erf(x / math.sqrt(2.0)))


ACT2FN = {
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "gelu_python": _gelu_python,
    "gelu_new": _gelu_tanh,
    "gelu_fast": _gelu_fast,
    "gelu_pytorch_tanh": _gelu_tanh,
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "tanh": jnp.tanh,
    "mish": lambda x: x * jnp.tanh(jax.nn.softplus(x)),
}


# ------------------------------------------------------------------------------------------------------- input checks


def _array_info(x: Any, values: bool) -> Optional[validation.ArrayInfo]:
    """What ``bert_core.validation`` needs of ``x`` (None for None): shape, dtype kind, and with ``values`` the min and
    max of a concrete, non-empty integer array (never of a tracer: only the static checks run under ``jit``)."""
    if x is None:
        return None
    dtype = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
    kind = np.dtype(dtype).kind
    shape = tuple(d if isinstance(d, int) else None for d in np.shape(x))
    if not values or kind not in "iu" or _is_tracer(x) or 0 in shape:
        return validation.ArrayInfo(shape, kind)
    array = np.asarray(x)
    return validation.ArrayInfo(shape, kind, int(array.min()), int(array.max()))


def _check_inputs(
    config: BertConfig,
    input_ids,
    attention_mask,
    token_type_ids,
    position_ids,
    head_mask,
    inputs_embeds,
    encoder_hidden_states,
    encoder_attention_mask,
    past_key_values,
) -> None:
    """Every input check of a ``BertModel`` call (``bert_core.validation.check_inputs``), before any computation."""
    cache = None if past_key_values is None else _as_cache(past_key_values)
    past_length = 0 if cache is None else cache.past_length
    validation.check_inputs(
        config,
        input_ids=_array_info(input_ids, True),
        attention_mask=_array_info(attention_mask, False),
        token_type_ids=_array_info(token_type_ids, True),
        position_ids=_array_info(position_ids, True),
        head_mask=_array_info(head_mask, False),
        inputs_embeds=_array_info(inputs_embeds, False),
        encoder_hidden_states=_array_info(encoder_hidden_states, False),
        encoder_attention_mask=_array_info(encoder_attention_mask, False),
        has_cache=cache is not None,
        past_length=None if _is_tracer(past_length) else int(past_length),
        key_length=None if cache is None else cache.max_length,
    )


def _check_labels(config: BertConfig, head: str, name: str, labels: Any, logits: Array) -> None:
    """``bert_core.validation.check_labels`` on one label array of a head whose logits are (b, s, ...) or (b, c);
    values (class ids in range) only for concrete arrays. A jitted train step skips the value checks: run
    :func:`bert_flax.training.check_batch` on the host batch first."""
    if labels is None:
        return
    info = _array_info(labels, values=False)
    values = None if _is_tracer(labels) else np.asarray(labels)
    batch, second = (d if isinstance(d, int) else None for d in logits.shape[:2])
    validation.check_labels(
        config, head, name, info.shape, info.kind, values, batch=batch, seq_len=second, num_choices=second
    )


# --------------------------------------------------------------------------------------------------- masks and losses


def _extended_attention_mask(config: BertConfig, attention_mask, seq_len: int, past_length, dtype) -> Array:
    """1/0 mask (B, K) or (B, S, K) or (B, 1|N, S, K) -> additive float (B, 1|N, 1|S, K): 0 keep, finfo.min drop.

    A decoder's 2-D mask becomes causal: query i sits at absolute position ``past_length + i`` (traced with a
    fixed-size cache) and sees keys 0..past_length + i, so a fixed cache's unwritten slots stay hidden.
    """
    mask = jnp.asarray(attention_mask)
    if mask.ndim == 3:
        mask = mask[:, None, :, :]
    elif mask.ndim == 2:
        if config.is_decoder:
            key_len = mask.shape[1]
            query_pos = jnp.arange(seq_len)[:, None] + past_length
            causal = jnp.arange(key_len)[None, :] <= query_pos  # (S, K)
            mask = causal[None, None, :, :].astype(dtype) * mask[:, None, None, :].astype(dtype)
        else:
            mask = mask[:, None, None, :]
    mask = mask.astype(dtype)
    return (1.0 - mask) * jnp.finfo(dtype).min


def _encoder_attention_mask(mask, dtype) -> Array:
    """1/0 encoder mask (B, E) or (B, S, E) or 4-D -> additive float (B, 1, 1|S, E)."""
    mask = jnp.asarray(mask)
    if mask.ndim == 3:
        mask = mask[:, None, :, :]
    elif mask.ndim == 2:
        mask = mask[:, None, None, :]
    return (1.0 - mask.astype(dtype)) * jnp.finfo(dtype).min


def _head_mask(head_mask, num_layers: int, dtype) -> Optional[Array]:
    """(N,) or (L, N) with 1 keep / 0 drop -> (L, 1, N, 1, 1) multiplying each layer's probabilities, or None."""
    if head_mask is None:
        return None
    head_mask = jnp.asarray(head_mask, dtype)
    if head_mask.ndim == 1:
        head_mask = jnp.broadcast_to(head_mask[None], (num_layers, head_mask.shape[0]))
    return head_mask[:, None, :, None, None]


def _cross_entropy(logits: Array, labels: Array, ignore_index: int = -100) -> Array:
    """Mean cross-entropy over labels != ignore_index (float32; NaN if none), as torch.nn.CrossEntropyLoss.

    logits: float (..., classes), reshaped to (-1, classes); labels: int (...), reshaped to (-1,).
    """
    logits = jnp.asarray(logits, jnp.float32)
    logits = logits.reshape(-1, logits.shape[-1])
    labels = jnp.asarray(labels).reshape(-1)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    valid = labels != ignore_index
    safe = jnp.where(valid, labels, 0).astype(jnp.int32)
    nll = -jnp.take_along_axis(log_probs, safe[:, None], axis=-1)[:, 0]
    return jnp.sum(jnp.where(valid, nll, 0.0)) / jnp.sum(valid)


def _mse(a: Array, b: Array) -> Array:
    return jnp.mean((jnp.asarray(a, jnp.float32) - jnp.asarray(b, jnp.float32)) ** 2)


def _bce_with_logits(logits: Array, labels: Array) -> Array:
    x = jnp.asarray(logits, jnp.float32)
    y = jnp.asarray(labels, jnp.float32)
    return jnp.mean(jnp.maximum(x, 0.0) - x * y + jnp.log1p(jnp.exp(-jnp.abs(x))))


# --------------------------------------------------------------------------------------------------------- the ladder


class BertEmbeddings(nnx.Module):
    """word + token type (+ absolute position) embeddings, then LayerNorm and dropout -> ``dtype`` (B, S, H)."""

    def __init__(self, config: BertConfig, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.word_embeddings = _embed(config.vocab_size, config.hidden_size, **kw)
        self.position_embeddings = _embed(config.max_position_embeddings, config.hidden_size, **kw)
        self.token_type_embeddings = _embed(config.type_vocab_size, config.hidden_size, **kw)
        self.LayerNorm = _layer_norm(config, dtype, param_dtype, rngs)
        self.dropout = nnx.Dropout(config.hidden_dropout_prob, rngs=rngs)
        self.position_embedding_type = config.position_embedding_type
        self.dtype = dtype

    def __call__(
        self,
        input_ids: Optional[Array] = None,
        token_type_ids: Optional[Array] = None,
        position_ids: Optional[Array] = None,
        inputs_embeds: Optional[Array] = None,
        past_length: Union[int, Array] = 0,
        *,
        deterministic: bool,
    ) -> Array:
        """input_ids int (B, S) or inputs_embeds float (B, S, H); position_ids default to P..P+S-1."""
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(jnp.asarray(input_ids))
        batch, seq = inputs_embeds.shape[:2]
        if token_type_ids is None:
            token_type_ids = jnp.zeros((batch, seq), jnp.int32)
        embeddings = jnp.asarray(inputs_embeds).astype(self.dtype) + self.token_type_embeddings(
            jnp.asarray(token_type_ids)
        )
        if self.position_embedding_type == "absolute":
            if position_ids is None:
                position_ids = jnp.arange(seq, dtype=jnp.int32)[None, :] + past_length
            embeddings = embeddings + self.position_embeddings(jnp.asarray(position_ids))
        return self.dropout(self.LayerNorm(embeddings), deterministic=deterministic)


class BertSelfAttention(nnx.Module):
    """Multi-head scaled dot-product attention with optional relative positions and a key/value cache.

    ``layer_index`` names this layer's entry in the cache (HF 4.57's ``layer_idx``).
    """

    def __init__(
        self,
        config: BertConfig,
        position_embedding_type: Optional[str] = None,
        layer_index: int = 0,
        *,
        dtype,
        param_dtype,
        rngs: nnx.Rngs,
    ) -> None:
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.head_dim
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.query = _Linear(config.hidden_size, self.all_head_size, **kw)
        self.key = _Linear(config.hidden_size, self.all_head_size, **kw)
        self.value = _Linear(config.hidden_size, self.all_head_size, **kw)
        self.dropout = nnx.Dropout(config.attention_probs_dropout_prob, rngs=rngs)
        self.position_embedding_type = position_embedding_type or config.position_embedding_type
        self.max_position_embeddings = config.max_position_embeddings
        if self.position_embedding_type in ("relative_key", "relative_key_query"):
            self.distance_embedding = _embed(2 * config.max_position_embeddings - 1, self.attention_head_size, **kw)
        self.layer_index = layer_index
        self.dtype = dtype

    def _heads(self, x: Array) -> Array:
        # (B, L, N*D) -> (B, N, L, D)
        return x.reshape(x.shape[0], -1, self.num_attention_heads, self.attention_head_size).transpose(0, 2, 1, 3)

    def __call__(
        self,
        hidden_states: Array,
        attention_mask: Optional[Array] = None,
        head_mask: Optional[Array] = None,
        encoder_hidden_states: Optional[Array] = None,
        past_key_value: Optional["_Cache"] = None,
        cache_active: bool = False,
        output_attentions: bool = False,
        *,
        deterministic: bool,
    ) -> Tuple[Array, Optional[Array], Tuple[Array, Array]]:
        """hidden_states float (B, S, H); attention_mask additive float broadcastable to (B, N, S, K).

        past_key_value: the model's cache (:class:`BertKVCache` or the legacy tuples), read and extended at
        ``layer_index``; for cross-attention its cached encoder keys/values are reused instead of recomputed.

        Returns:
            (context float (B, S, H), probs float (B, N, S, K) or None, (keys, values) each (B, N, K, D)).
        """
        query = self._heads(self.query(hidden_states))
        is_cross = encoder_hidden_states is not None
        cached_cross = past_key_value.cross(self.layer_index) if is_cross and past_key_value is not None else None
        if cached_cross is not None:
            key, value = cached_cross
        else:
            source = encoder_hidden_states if is_cross else hidden_states
            key, value = self._heads(self.key(source)), self._heads(self.value(source))
            if past_key_value is not None and not is_cross:
                key, value = past_key_value.update(self.layer_index, key, value)
        relative = self.position_embedding_type in ("relative_key", "relative_key_query")

        acc = _accumulation_dtype(self.dtype)
        # Half width on CPU: scale the query, not the scores, and hand the attention fusion finished half-width heads.
        # Else XLA:CPU materialises 1/sqrt(D) as a float32 (B, N, S, K) operand of its attention fusion and widens
        # the head transposes to float32 (12% fewer bytes moved for MiniLM 32 x 128). Float32 keeps HF's order.
        prescale = acc is not None and not relative
        if prescale:
            query = query * jnp.asarray(1 / math.sqrt(self.attention_head_size), query.dtype)
            query, key, value = jax.lax.optimization_barrier((query, key, value))
        scores = jnp.einsum("bnqd,bnkd->bnqk", query, key, preferred_element_type=acc)
        if relative:
            q_len, k_len = query.shape[2], key.shape[2]
            if cache_active:
                # HF 4.57 places every query at the last key position whenever a cache object exists.
                left = jnp.full((1, 1), past_key_value.past_length + q_len - 1, dtype=jnp.int32)
            else:
                left = jnp.arange(q_len, dtype=jnp.int32)[:, None]
            right = jnp.arange(k_len, dtype=jnp.int32)[None, :]
            distance = self.distance_embedding(left - right + self.max_position_embeddings - 1).astype(query.dtype)
            distance = jnp.broadcast_to(distance, (q_len, k_len, self.attention_head_size))
            scores = scores + jnp.einsum("bnld,lrd->bnlr", query, distance, preferred_element_type=acc)
            if self.position_embedding_type == "relative_key_query":
                scores = scores + jnp.einsum("bnrd,lrd->bnlr", key, distance, preferred_element_type=acc)
        if not prescale:
            scores = scores / jnp.asarray(math.sqrt(self.attention_head_size), scores.dtype)
        if attention_mask is not None:
            scores = scores + attention_mask.astype(scores.dtype)
        # softmax in float32 even for bfloat16 computation: the max-subtraction needs the range
        probs = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(self.dtype)
        probs = self.dropout(probs, deterministic=deterministic)
        if head_mask is not None:
            probs = probs * head_mask.astype(probs.dtype)
        context = jnp.einsum("bnqk,bnkd->bnqd", probs, value.astype(probs.dtype), preferred_element_type=acc)
        context = (
            context.astype(self.dtype).transpose(0, 2, 1, 3).reshape(hidden_states.shape[0], -1, self.all_head_size)
        )
        return context, (probs if output_attentions else None), (key, value)


class BertSelfOutput(nnx.Module):
    """dense + dropout + residual LayerNorm after attention: (B, S, H) -> (B, S, H)."""

    def __init__(self, config: BertConfig, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        self.dense = _Linear(config.hidden_size, config.hidden_size, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.LayerNorm = _layer_norm(config, dtype, param_dtype, rngs)
        self.dropout = nnx.Dropout(config.hidden_dropout_prob, rngs=rngs)

    def __call__(self, hidden_states: Array, input_tensor: Array, *, deterministic: bool) -> Array:
        return self.LayerNorm(self.dropout(self.dense(hidden_states), deterministic=deterministic) + input_tensor)


class BertAttention(nnx.Module):
    """Self- or cross-attention block: ``self`` (projections) and ``output`` (dense + LayerNorm)."""

    def __init__(
        self,
        config: BertConfig,
        position_embedding_type: Optional[str] = None,
        layer_index: int = 0,
        *,
        dtype,
        param_dtype,
        rngs: nnx.Rngs,
    ) -> None:
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.self = BertSelfAttention(config, position_embedding_type, layer_index, **kw)
        self.output = BertSelfOutput(config, **kw)

    def __call__(
        self,
        hidden_states,
        attention_mask=None,
        head_mask=None,
        encoder_hidden_states=None,
        past_key_value=None,
        cache_active=False,
        output_attentions=False,
        *,
        deterministic: bool,
    ):
        context, probs, present = self.self(
            hidden_states,
            attention_mask,
            head_mask,
            encoder_hidden_states,
            past_key_value,
            cache_active,
            output_attentions,
            deterministic=deterministic,
        )
        return self.output(context, hidden_states, deterministic=deterministic), probs, present


class BertIntermediate(nnx.Module):
    """dense H -> intermediate_size, then config.hidden_act."""

    def __init__(self, config: BertConfig, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        self.dense = _Linear(
            config.hidden_size, config.intermediate_size, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        self.intermediate_act_fn = ACT2FN[config.hidden_act]

    def __call__(self, hidden_states: Array) -> Array:
        # The activation takes the GEMM's float32 sums (bias included) and is rounded to ``dtype`` once: in bfloat16
        # XLA:CPU would otherwise write the float32 product, round it, widen it again for the activation's float32
        # arithmetic and materialise the activation's constants at full size for the next GEMM's fusion.
        out = self.intermediate_act_fn(self.dense.accumulate(hidden_states))
        return out if self.dense.dtype is None else out.astype(self.dense.dtype)


class BertOutput(nnx.Module):
    """dense intermediate_size -> H, dropout, residual LayerNorm."""

    def __init__(self, config: BertConfig, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        self.dense = _Linear(
            config.intermediate_size, config.hidden_size, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        self.LayerNorm = _layer_norm(config, dtype, param_dtype, rngs)
        self.dropout = nnx.Dropout(config.hidden_dropout_prob, rngs=rngs)

    def __call__(self, hidden_states: Array, input_tensor: Array, *, deterministic: bool) -> Array:
        return self.LayerNorm(self.dropout(self.dense(hidden_states), deterministic=deterministic) + input_tensor)


class BertLayer(nnx.Module):
    """attention (+ crossattention in decoders with add_cross_attention) + feed-forward, optionally chunked."""

    def __init__(self, config: BertConfig, layer_index: int = 0, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.chunk_size_feed_forward = config.chunk_size_feed_forward
        self.attention = BertAttention(config, None, layer_index, **kw)
        if config.add_cross_attention:
            if not config.is_decoder:
                raise ValueError("add_cross_attention=True needs is_decoder=True (cross-attention is for decoders)")
            self.crossattention = BertAttention(config, "absolute", layer_index, **kw)
        self.intermediate = BertIntermediate(config, **kw)
        self.output = BertOutput(config, **kw)

    def __call__(
        self,
        hidden_states,
        attention_mask=None,
        head_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        past_key_value: Optional["_Cache"] = None,
        cache_active: bool = False,
        output_attentions: bool = False,
        *,
        deterministic: bool,
    ):
        """Returns (hidden float (B, S, H), self probs or None, cross probs or None, present cache entry
        (k, v) or (k, v, cross_k, cross_v))."""
        attention_output, self_probs, present = self.attention(
            hidden_states,
            attention_mask,
            head_mask,
            None,
            past_key_value,
            cache_active,
            output_attentions,
            deterministic=deterministic,
        )
        cross_probs = None
        if encoder_hidden_states is not None:
            attention_output, cross_probs, cross_present = self.crossattention(
                attention_output,
                encoder_attention_mask,
                head_mask,
                encoder_hidden_states,
                past_key_value,
                cache_active,
                output_attentions,
                deterministic=deterministic,
            )
            present = present + cross_present
        chunk = self.chunk_size_feed_forward
        if chunk > 0:
            # Position-wise feed-forward: chunks along the sequence give the same result with less peak memory (the
            # last chunk may be shorter; HF refuses a remainder, every backend here takes it alike).
            seq_len = attention_output.shape[1]
            pieces = [
                self._feed_forward(attention_output[:, i : i + chunk], deterministic) for i in range(0, seq_len, chunk)
            ]
            layer_output = jnp.concatenate(pieces, axis=1)
        else:
            layer_output = self._feed_forward(attention_output, deterministic)
        return layer_output, self_probs, cross_probs, present

    def _feed_forward(self, attention_output: Array, deterministic: bool) -> Array:
        return self.output(self.intermediate(attention_output), attention_output, deterministic=deterministic)


class BertEncoder(nnx.Module):
    """The stack ``layer[0..L-1]``; with config.gradient_checkpointing each layer is recomputed in backward."""

    def __init__(self, config: BertConfig, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        self.layer = nnx.List(
            [
                BertLayer(config, i, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
                for i in range(config.num_hidden_layers)
            ]
        )
        self.gradient_checkpointing = bool(config.gradient_checkpointing)

    def __call__(
        self,
        hidden_states,
        attention_mask=None,
        head_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        past_key_values: Optional["_Cache"] = None,
        use_cache=False,
        cache_active=False,
        output_attentions=False,
        output_hidden_states=False,
        *,
        deterministic: bool,
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        """past_key_values: the model's cache object (``cache_active``); with ``use_cache`` the output holds the
        updated cache in its public form (legacy tuples or :class:`BertKVCache`)."""
        all_hidden = () if output_hidden_states else None
        all_self = () if output_attentions else None
        all_cross = () if output_attentions and encoder_hidden_states is not None else None
        presents = () if use_cache else None

        def run_layer(layer, *args):
            return layer(*args, cache_active, output_attentions, deterministic=deterministic)

        if self.gradient_checkpointing:
            # recompute each layer's activations in the backward pass instead of storing them; tree mode also works
            # when the model was merged inside a plain jax.grad trace
            run_layer = nnx.remat(run_layer, graph=False)
        for i, layer in enumerate(self.layer):
            if output_hidden_states:
                all_hidden = all_hidden + (hidden_states,)
            layer_head_mask = None if head_mask is None else head_mask[i]
            hidden_states, self_probs, cross_probs, present = run_layer(
                layer,
                hidden_states,
                attention_mask,
                layer_head_mask,
                encoder_hidden_states,
                encoder_attention_mask,
                past_key_values,
            )
            if use_cache:
                presents = presents + (present,)
            if output_attentions:
                all_self = all_self + (self_probs,)
                if all_cross is not None:
                    all_cross = all_cross + (cross_probs,)
        if output_hidden_states:
            all_hidden = all_hidden + (hidden_states,)
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states,
            past_key_values=past_key_values.next_cache(presents, hidden_states.shape[1]) if use_cache else None,
            hidden_states=all_hidden,
            attentions=all_self,
            cross_attentions=all_cross,
        )


class BertPooler(nnx.Module):
    """tanh(dense(first token)): (B, S, H) -> (B, H)."""

    def __init__(self, config: BertConfig, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        self.dense = _Linear(config.hidden_size, config.hidden_size, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.activation = jnp.tanh

    def __call__(self, hidden_states: Array) -> Array:
        return self.activation(self.dense(hidden_states[:, 0]))


class BertPredictionHeadTransform(nnx.Module):
    """dense -> activation -> LayerNorm, (B, S, H)."""

    def __init__(self, config: BertConfig, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        self.dense = _Linear(config.hidden_size, config.hidden_size, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.transform_act_fn = ACT2FN[config.hidden_act]
        self.LayerNorm = _layer_norm(config, dtype, param_dtype, rngs)

    def __call__(self, hidden_states: Array) -> Array:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class BertLMPredictionHead(nnx.Module):
    """transform, then ``decoder`` + ``bias``: -> (B, S, V).

    Tied (config.tie_word_embeddings): ``decoder`` is the model's word-embedding ``nnx.Embed`` itself, one module
    reached from two places of the graph, so ``nnx.split`` / ``jit`` / ``grad`` see one variable (stored under
    ``bert.embeddings.word_embeddings``) and its gradient sums both uses. Untied: a Linear of its own.
    """

    def __init__(self, config: BertConfig, word_embeddings: nnx.Embed, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        self.transform = BertPredictionHeadTransform(config, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.tied = bool(config.tie_word_embeddings)
        if self.tied:
            self.decoder = word_embeddings
        else:
            self.decoder = _Linear(
                config.hidden_size, config.vocab_size, use_bias=False, dtype=dtype, param_dtype=param_dtype, rngs=rngs
            )
        self.bias = nnx.Param(jnp.zeros((config.vocab_size,), param_dtype))
        self.dtype = dtype

    def __call__(self, hidden_states: Array) -> Array:
        hidden_states = self.transform(hidden_states)
        if self.tied:
            weight = jnp.asarray(self.decoder.embedding[...], self.dtype)  # (V, H)
            logits = jnp.matmul(hidden_states, weight.T, preferred_element_type=_accumulation_dtype(self.dtype))
        else:
            logits = self.decoder(hidden_states)
        return (logits + jnp.asarray(self.bias[...], self.dtype)).astype(self.dtype)


class BertOnlyMLMHead(nnx.Module):
    def __init__(self, config: BertConfig, word_embeddings: nnx.Embed, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        self.predictions = BertLMPredictionHead(
            config, word_embeddings, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )

    def __call__(self, sequence_output: Array) -> Array:
        return self.predictions(sequence_output)


class BertOnlyNSPHead(nnx.Module):
    def __init__(self, config: BertConfig, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        self.seq_relationship = _Linear(config.hidden_size, 2, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, pooled_output: Array) -> Array:
        return self.seq_relationship(pooled_output)


class BertPreTrainingHeads(nnx.Module):
    def __init__(self, config: BertConfig, word_embeddings: nnx.Embed, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.predictions = BertLMPredictionHead(config, word_embeddings, **kw)
        self.seq_relationship = _Linear(config.hidden_size, 2, **kw)

    def __call__(self, sequence_output: Array, pooled_output: Array) -> Tuple[Array, Array]:
        return self.predictions(sequence_output), self.seq_relationship(pooled_output)


# ------------------------------------------------------------------------------------------------------------- caches
#
# Both caches hold a tuple per layer of (k, v) or (k, v, cross_k, cross_v), each (B, N, P|E, D), and show the ladder
# one interface: ``past_length``, ``max_length``, ``key_length(seq_len)``, ``update(layer_index, key, value)`` ->
# the layer's full keys and values, ``cross(layer_index)`` -> cached encoder keys/values or None, and
# ``next_cache(presents, seq_len)`` -> the cache the model returns. The legacy cache grows by concatenation (shapes
# change every step); BertKVCache writes into a fixed buffer at ``index`` (one compile serves every step of ``jit``).


class _Cache:
    layers: Optional[Tuple[Tuple[Array, ...], ...]]

    def cross(self, layer_index: int) -> Optional[Tuple[Array, Array]]:
        """The encoder keys/values cached for ``layer_index`` (computed once, at the first step), or None."""
        entry = None if self.layers is None else self.layers[layer_index]
        return None if entry is None or len(entry) < 4 else (entry[2], entry[3])

    def key_length(self, seq_len: int) -> int:
        """The keys a call of ``seq_len`` new tokens attends to (the width of its attention mask)."""
        return self.past_length + seq_len if self.max_length is None else self.max_length


@functools.partial(jax.tree_util.register_dataclass, data_fields=["layers"], meta_fields=[])
class _LegacyCache(_Cache):
    """HF's legacy tuples (``layers``, None before the first step), grown by concatenation."""

    max_length = None

    def __init__(self, layers: Optional[Tuple[Tuple[Array, ...], ...]]) -> None:
        self.layers = None if layers is None else tuple(tuple(entry) for entry in layers)

    @property
    def past_length(self) -> int:
        return 0 if self.layers is None else self.layers[0][0].shape[2]

    def update(self, layer_index: int, key: Array, value: Array) -> Tuple[Array, Array]:
        if self.layers is None:
            return key, value
        past = self.layers[layer_index]
        return jnp.concatenate([past[0], key], axis=2), jnp.concatenate([past[1], value], axis=2)

    def next_cache(self, presents: Tuple[Tuple[Array, ...], ...], seq_len: int) -> Tuple[Tuple[Array, ...], ...]:
        return presents


@functools.partial(jax.tree_util.register_dataclass, data_fields=["layers", "index"], meta_fields=[])
class BertKVCache(_Cache):
    """Fixed-size decoder cache, usable inside ``jit`` (shapes never change while decoding); from ``init_cache``.

    layers: tuple per layer of (key, value), each ``dtype`` (B, N, max_length, D), plus (cross_key, cross_value)
    (B, N, E, D) once a call with ``encoder_hidden_states`` has computed them; slots at and after ``index`` are not
    written yet (the causal mask hides them). index: int32 scalar, tokens cached so far. Pass an attention mask of
    width ``max_length`` (1 for every slot that is or will be a real token).
    """

    def __init__(self, layers: Tuple[Tuple[Array, ...], ...], index: Array) -> None:
        self.layers = layers
        self.index = index

    @property
    def past_length(self) -> Array:
        return self.index

    @property
    def max_length(self) -> int:
        return self.layers[0][0].shape[2]

    def update(self, layer_index: int, key: Array, value: Array) -> Tuple[Array, Array]:
        keys, values = self.layers[layer_index][:2]
        start = (0, 0, self.index, 0)
        return (
            jax.lax.dynamic_update_slice(keys, key.astype(keys.dtype), start),
            jax.lax.dynamic_update_slice(values, value.astype(values.dtype), start),
        )

    def next_cache(self, presents: Tuple[Tuple[Array, ...], ...], seq_len: int) -> "BertKVCache":
        return BertKVCache(presents, self.index + seq_len)

    def __repr__(self) -> str:
        return f"BertKVCache(layers={len(self.layers)}, max_length={self.max_length}, index={self.index})"


def _as_cache(past_key_values) -> _Cache:
    """The model's ``past_key_values`` (None, legacy tuples or a BertKVCache) as a cache object."""
    return past_key_values if isinstance(past_key_values, BertKVCache) else _LegacyCache(past_key_values)


# ------------------------------------------------------------------------------------------------------------- models


class BertPreTrainedModel(nnx.Module):
    """Weights in/out through ``bert_core`` (canonical names, PyTorch layout), save/load, the shared flags.

    Subclasses set ``head_name``, build their modules in ``__init__`` then call :meth:`_post_init`. ``rngs``
    (default ``nnx.Rngs(seed)``) only drive dropout when called with ``deterministic=False``.
    """

    head_name = "BertModel"
    _add_pooling_layer: Optional[bool] = None  # None: the head's default (bert_core.weights.head_has_pooler)

    def __init__(self, config: BertConfig, *, dtype=jnp.float32, param_dtype=jnp.float32) -> None:
        if not isinstance(config, BertConfig):
            raise TypeError(f"config must be a bert_core BertConfig, got {type(config).__name__}")
        self.config = config
        self.dtype = dtype
        self.param_dtype = param_dtype

    def _post_init(self, seed: Optional[int]) -> None:
        if seed is not None:
            self.load_canonical_weights(
                init_weights(self.config, self.head_name, seed, add_pooling_layer=self._add_pooling_layer)
            )

    # -------------------------------------------------------------- canonical weights
    def _weight_table(self):
        return stored_weights(self.config, self.head_name, self._add_pooling_layer)

    def _variable(self, name: str, spec: Optional[WeightSpec] = None) -> nnx.Variable:
        path, _ = backend_path(self._weight_table()[name] if spec is None else spec, "flax")
        node: Any = self
        for part in path:
            node = node[int(part)] if part.isdigit() else getattr(node, part)
        return node

    def load_canonical_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Set every stored tensor from canonical PyTorch-layout arrays (names of ``bert_core.weights.stored_weights``).

        Raises:
            ValueError: from ``bert_core.weights.check_weights_match``, naming every missing, unexpected or
                wrongly shaped tensor.
        """
        table = self._weight_table()
        check_weights_match(table, weights, self.head_name)
        for name, spec in table.items():
            array = np.asarray(weights[name], dtype=np.float32)
            value = _device_array(array, backend_path(spec, "flax")[1], self.param_dtype)
            # a new value, not an in-place update: from_pretrained's parameters are shapes only until here
            self._variable(name, spec).set_value(value)
            # the copy is asynchronous: the checkpoint's mapped pages can go once it is done (dropped before, the
            # copy would fault them in again and they would stay)
            value.block_until_ready()
            release_pages(array)

    def canonical_weights(self) -> "OrderedDict[str, np.ndarray]":
        """Every stored tensor as float32 numpy, PyTorch layout, keyed like ``stored_weights`` (tied decoder left out)."""
        return OrderedDict(
            (name, from_backend_array(np.asarray(self._variable(name, spec)[...], np.float32), spec, "flax"))
            for name, spec in self._weight_table().items()
        )

    # -------------------------------------------------------------- load / save
    @classmethod
    def _init_kwargs(cls, add_pooling_layer: Optional[bool]) -> Dict[str, Any]:
        """Constructor arguments besides config and seed; a head has none (its pooler is fixed by the table)."""
        return {}

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: Union[str, os.PathLike],
        *,
        config: Optional[BertConfig] = None,
        revision: Optional[str] = None,
        cache_dir: Optional[Union[str, os.PathLike]] = None,
        token: Optional[Union[str, bool]] = None,
        local_files_only: bool = False,
        ignore_mismatched_sizes: bool = False,
        output_loading_info: bool = False,
        seed: int = 0,
        add_pooling_layer: Optional[bool] = None,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: Optional[nnx.Rngs] = None,
        **config_overrides: Any,
    ):
        """Load a local directory or hub id (safetensors / .bin / .h5 / .msgpack) into this head.

        Head weights the checkpoint lacks are initialised from ``seed`` (``bert_core.init``). ``config_overrides``
        (``num_labels=``, ``id2label=``, ``problem_type=``, ``is_decoder=`` ...) update the loaded config.
        ``add_pooling_layer`` is for ``BertModel`` (heads have HF's fixed choice). ``dtype`` / ``param_dtype``: the
        computation and storage dtypes; ``rngs`` (default ``nnx.Rngs(seed)``) drive dropout.

        Returns:
            the model, or ``(model, {"missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"})``
            when ``output_loading_info``.
        """
        init_kwargs = cls._init_kwargs(add_pooling_layer)
        pool = init_kwargs.get("add_pooling_layer")
        config, weights, info = load_head_weights(
            name_or_path,
            cls.head_name,
            config=config,
            add_pooling_layer=pool,
            ignore_mismatched_sizes=ignore_mismatched_sizes,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            local_files_only=local_files_only,
            **config_overrides,
        )
        # No random init of weights about to be replaced: an eager build whose parameters are only shapes (no
        # tracing, no compilation), leaving the dropout streams and the caller's rngs as a plain build does.
        with _shape_only_parameters():
            model = cls(config, **init_kwargs, seed=None, dtype=dtype, param_dtype=param_dtype, rngs=_rngs(seed, rngs))
        model.load_canonical_weights(complete_weights(weights, config, cls.head_name, seed, pool))
        return (model, info.as_dict()) if output_loading_info else model

    def save_pretrained(self, save_directory: Union[str, os.PathLike], max_shard_size: Union[int, str] = "5GB"):
        """Write ``config.json`` + ``model.safetensors`` (float32, HF names), loadable by HF ``BertFor*``."""
        return _save_checkpoint(
            save_directory,
            self.config,
            self.canonical_weights(),
            architecture=self.head_name,
            max_shard_size=max_shard_size,
        )

    def _flags(self, output_attentions, output_hidden_states, return_dict) -> Tuple[bool, bool, bool]:
        """The three output switches, each defaulting to the config's (``BertConfig.output_flags``)."""
        return self.config.output_flags(output_attentions, output_hidden_states, return_dict)


def _finish(output, return_dict: bool):
    return output if return_dict else output.to_tuple()


class BertModel(BertPreTrainedModel):
    """The bare encoder (or decoder, with ``config.is_decoder``): embeddings, encoder, optional pooler.

    Args:
        config: a ``bert_core`` BertConfig.
        add_pooling_layer: build ``pooler`` (tanh(dense(first token))).
        seed: initial weights from ``bert_core.init.init_weights(config, "BertModel", seed)``; None keeps Flax's
            own initialisation (used when weights are loaded right after).
        dtype / param_dtype: computation / parameter dtype. rngs: dropout streams (default ``nnx.Rngs(seed)``).
    """

    head_name = "BertModel"

    def __init__(
        self,
        config: BertConfig,
        add_pooling_layer: bool = True,
        *,
        seed: Optional[int] = 0,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: Optional[nnx.Rngs] = None,
    ) -> None:
        super().__init__(config, dtype=dtype, param_dtype=param_dtype)
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=_rngs(seed, rngs))
        self._add_pooling_layer = bool(add_pooling_layer)
        self.embeddings = BertEmbeddings(config, **kw)
        self.encoder = BertEncoder(config, **kw)
        self.pooler = BertPooler(config, **kw) if add_pooling_layer else None
        self._post_init(seed)

    @classmethod
    def _init_kwargs(cls, add_pooling_layer: Optional[bool]) -> Dict[str, Any]:
        return {"add_pooling_layer": True if add_pooling_layer is None else bool(add_pooling_layer)}

    def init_cache(self, batch_size: int, max_length: int) -> BertKVCache:
        """An empty fixed-size cache for decoding up to ``max_length`` tokens (prompt included), ``jit`` friendly."""
        if not self.config.is_decoder:
            raise ValueError("init_cache needs config.is_decoder=True (the cache is for decoders)")
        validation.check_sequence_length(max_length, 0, self.config.max_position_embeddings)
        c = self.config
        shape = (batch_size, c.num_attention_heads, max_length, c.head_dim)
        layers = tuple((jnp.zeros(shape, self.dtype), jnp.zeros(shape, self.dtype)) for _ in range(c.num_hidden_layers))
        return BertKVCache(layers, jnp.zeros((), jnp.int32))

    def __call__(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        head_mask=None,
        inputs_embeds=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        past_key_values=None,
        use_cache: Optional[bool] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
        *,
        deterministic: bool = True,
    ):
        """Encode (or decode) a batch.

        Args:
            input_ids: int (B, S) token ids in [0, vocab_size); or inputs_embeds: float (B, S, H).
            attention_mask: 1 keep / 0 pad, (B, P + S) (with a BertKVCache (B, max_length)), or (B, S, K) / 4-D;
                default all ones.
            token_type_ids: int (B, S) segment ids; default zeros. position_ids: int (B or 1, S); default P..P+S-1.
            head_mask: float (N,) or (L, N), 1 keep / 0 drop a head.
            encoder_hidden_states: float (B, E, H) for cross-attention; encoder_attention_mask: (B, E), 1 keep.
            past_key_values: legacy tuple per layer of (self_k, self_v[, cross_k, cross_v]), each float
                (B, N, P|E, D), or a :class:`BertKVCache` from :meth:`init_cache`; returned updated, in the same
                form, when ``use_cache``.
            use_cache: decoders only (default config.use_cache); return the updated cache.
            output_attentions / output_hidden_states / return_dict: default from config.
            deterministic: False turns dropout on (drawing from the constructor's ``rngs``).

        Returns:
            BaseModelOutputWithPoolingAndCrossAttentions (or its ``to_tuple()`` when return_dict is False).
        """
        config = self.config
        output_attentions, output_hidden_states, return_dict = self._flags(
            output_attentions, output_hidden_states, return_dict
        )
        use_cache = (config.use_cache if use_cache is None else bool(use_cache)) if config.is_decoder else False
        _check_inputs(
            config,
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            head_mask,
            inputs_embeds,
            encoder_hidden_states,
            encoder_attention_mask,
            past_key_values,
        )
        cache_active = config.is_decoder and (use_cache or past_key_values is not None)
        cache = _as_cache(past_key_values) if cache_active else None
        past_length = 0 if cache is None else cache.past_length

        embedding_output = self.embeddings(
            input_ids, token_type_ids, position_ids, inputs_embeds, past_length, deterministic=deterministic
        )
        batch, seq_len = embedding_output.shape[:2]
        if attention_mask is None:
            key_length = seq_len if cache is None else cache.key_length(seq_len)
            attention_mask = jnp.ones((batch, key_length), self.dtype)
        extended_mask = _extended_attention_mask(config, attention_mask, seq_len, past_length, self.dtype)
        encoder_mask = None
        if encoder_hidden_states is not None:
            encoder_hidden_states = jnp.asarray(encoder_hidden_states)
            if encoder_attention_mask is None:
                encoder_attention_mask = jnp.ones(encoder_hidden_states.shape[:2], self.dtype)
            encoder_mask = _encoder_attention_mask(encoder_attention_mask, self.dtype)

        encoded = self.encoder(
            embedding_output,
            extended_mask,
            _head_mask(head_mask, config.num_hidden_layers, self.dtype),
            encoder_hidden_states,
            encoder_mask,
            cache,
            use_cache,
            cache_active,
            output_attentions,
            output_hidden_states,
            deterministic=deterministic,
        )
        sequence_output = encoded.last_hidden_state
        pooled = self.pooler(sequence_output) if self.pooler is not None else None
        output = BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence_output,
            pooler_output=pooled,
            hidden_states=encoded.hidden_states,
            past_key_values=encoded.past_key_values,
            attentions=encoded.attentions,
            cross_attentions=encoded.cross_attentions,
        )
        return _finish(output, return_dict)


class _HeadModel(BertPreTrainedModel):
    """A head on ``bert``: forwards the common arguments and always asks the backbone for a dict."""

    def _run_bert(
        self,
        input_ids,
        attention_mask,
        token_type_ids,
        position_ids,
        head_mask,
        inputs_embeds,
        output_attentions,
        output_hidden_states,
        *,
        deterministic: bool,
        **decoder_kwargs,
    ) -> BaseModelOutputWithPoolingAndCrossAttentions:
        return self.bert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            head_mask=head_mask,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            deterministic=deterministic,
            **decoder_kwargs,
        )


class BertForPreTraining(_HeadModel):
    """MLM + NSP heads (``cls.predictions``, ``cls.seq_relationship``). loss = MLM CE + NSP CE when both labels given."""

    head_name = "BertForPreTraining"

    def __init__(
        self,
        config: BertConfig,
        *,
        seed: Optional[int] = 0,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: Optional[nnx.Rngs] = None,
    ) -> None:
        super().__init__(config, dtype=dtype, param_dtype=param_dtype)
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=_rngs(seed, rngs))
        self.bert = BertModel(config, add_pooling_layer=True, seed=None, **kw)
        self.cls = BertPreTrainingHeads(config, self.bert.embeddings.word_embeddings, **kw)
        self._post_init(seed)

    def __call__(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        head_mask=None,
        inputs_embeds=None,
        labels=None,
        next_sentence_label=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        *,
        deterministic: bool = True,
    ):
        """labels: int (B, S), -100 ignored; next_sentence_label: int (B,), 0 = B follows A.

        Returns BertForPreTrainingOutput: prediction_logits float (B, S, V), seq_relationship_logits float (B, 2).
        """
        output_attentions, output_hidden_states, return_dict = self._flags(
            output_attentions, output_hidden_states, return_dict
        )
        out = self._run_bert(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            head_mask,
            inputs_embeds,
            output_attentions,
            output_hidden_states,
            deterministic=deterministic,
        )
        prediction_scores, nsp_scores = self.cls(out.last_hidden_state, out.pooler_output)
        _check_labels(self.config, self.head_name, "labels", labels, prediction_scores)
        _check_labels(self.config, self.head_name, "next_sentence_label", next_sentence_label, prediction_scores)
        loss = None
        if labels is not None and next_sentence_label is not None:
            loss = _cross_entropy(prediction_scores, labels) + _cross_entropy(nsp_scores, next_sentence_label)
        return _finish(
            BertForPreTrainingOutput(
                loss=loss,
                prediction_logits=prediction_scores,
                seq_relationship_logits=nsp_scores,
                hidden_states=out.hidden_states,
                attentions=out.attentions,
            ),
            return_dict,
        )


class BertLMHeadModel(_HeadModel):
    """Causal LM head (needs ``config.is_decoder``): next-token logits, loss on labels shifted by one, generation."""

    head_name = "BertLMHeadModel"

    def __init__(
        self,
        config: BertConfig,
        *,
        seed: Optional[int] = 0,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: Optional[nnx.Rngs] = None,
    ) -> None:
        super().__init__(config, dtype=dtype, param_dtype=param_dtype)
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=_rngs(seed, rngs))
        self.bert = BertModel(config, add_pooling_layer=False, seed=None, **kw)
        self.cls = BertOnlyMLMHead(config, self.bert.embeddings.word_embeddings, **kw)
        self._post_init(seed)

    def init_cache(self, batch_size: int, max_length: int) -> BertKVCache:
        """An empty fixed-size cache (see :meth:`BertModel.init_cache`)."""
        return self.bert.init_cache(batch_size, max_length)

    def __call__(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        head_mask=None,
        inputs_embeds=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        labels=None,
        past_key_values=None,
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        *,
        deterministic: bool = True,
    ):
        """labels: int (B, S); logits[:, t] is scored against labels[:, t+1] (-100 ignored). Giving labels turns
        the cache off, as in HF.

        Returns CausalLMOutputWithCrossAttentions: logits float (B, S, V), past_key_values (legacy tuples or
        BertKVCache, as given) when caching.
        """
        output_attentions, output_hidden_states, return_dict = self._flags(
            output_attentions, output_hidden_states, return_dict
        )
        if labels is not None:
            use_cache = False
        out = self._run_bert(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            head_mask,
            inputs_embeds,
            output_attentions,
            output_hidden_states,
            deterministic=deterministic,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            past_key_values=past_key_values,
            use_cache=use_cache,
        )
        logits = self.cls(out.last_hidden_state)
        _check_labels(self.config, self.head_name, "labels", labels, logits)
        loss = None
        if labels is not None:
            loss = _cross_entropy(logits[:, :-1], jnp.asarray(labels)[:, 1:])
        return _finish(
            CausalLMOutputWithCrossAttentions(
                loss=loss,
                logits=logits,
                past_key_values=out.past_key_values,
                hidden_states=out.hidden_states,
                attentions=out.attentions,
                cross_attentions=out.cross_attentions,
            ),
            return_dict,
        )

    def generate(
        self,
        input_ids,
        attention_mask=None,
        max_new_tokens: int = 20,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        eos_token_id: Optional[int] = None,
        pad_token_id: Optional[int] = None,
        seed: Optional[int] = None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
    ) -> Array:
        """Greedy or sampled continuation, as HF ``generate``, in one ``jit``-compiled ``lax.while_loop`` with a
        fixed-size cache.

        Args:
            input_ids: int (B, S) prompt, may be left-padded. attention_mask: (B, S) 1 token / 0 pad (default
                ones); position ids follow HF (cumsum(mask) - 1, pads at 1).
            do_sample: sample from softmax(logits / temperature), restricted to the top_k logits and then to the
                top_p nucleus when given (HF's warpers, in that order); otherwise argmax.
            seed: ``jax.random.key(seed)`` for sampling; None draws a fresh seed.
            eos_token_id: a row that produced it is finished; later positions get pad_token_id (default
                config.pad_token_id). Decoding stops once every row is finished.
            encoder_hidden_states / encoder_attention_mask: cross-attention inputs (B, E, H) / (B, E); their keys
                and values are computed once and cached.

        Returns:
            int32 (B, S + T), T <= max_new_tokens the number of steps run.
        """
        validation.check_generate_args(
            self.config,
            _array_info(input_ids, True),
            _array_info(attention_mask, False),
            max_new_tokens,
            do_sample,
            temperature,
            top_k,
            top_p,
            eos_token_id,
            pad_token_id,
        )
        pad = self.config.pad_token_id if pad_token_id is None else pad_token_id
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        input_ids = jnp.asarray(input_ids, jnp.int32)
        attention_mask = jnp.ones_like(input_ids) if attention_mask is None else jnp.asarray(attention_mask, jnp.int32)
        graphdef, state = nnx.split(self)
        sequences, steps = _generate(
            graphdef,
            state,
            input_ids,
            attention_mask,
            encoder_hidden_states,
            encoder_attention_mask,
            jax.random.key(seed),
            jnp.float32(temperature),
            jnp.float32(1.0 if top_p is None else top_p),
            jnp.int32(-1 if eos_token_id is None else eos_token_id),
            jnp.int32(0 if pad is None else pad),
            max_new_tokens=max_new_tokens,
            do_sample=bool(do_sample),
            top_k=top_k,
            use_top_p=top_p is not None and top_p < 1.0,
        )
        return sequences[:, : input_ids.shape[1] + int(steps)]


def _next_token(logits, key, temperature, top_p, *, do_sample: bool, top_k: Optional[int], use_top_p: bool) -> Array:
    """Greedy argmax (first max on ties), or a sample after HF's temperature, top-k and top-p warpers: (B,) int32."""
    logits = logits.astype(jnp.float32)
    if not do_sample:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)  # ties with the k-th are kept
    if use_top_p:
        order = jnp.argsort(logits, axis=-1)  # ascending
        cumulative = jnp.cumsum(jax.nn.softmax(jnp.take_along_axis(logits, order, axis=-1), axis=-1), axis=-1)
        remove = (cumulative <= 1 - top_p).at[:, -1].set(False)  # the most likely token always stays
        remove = jnp.take_along_axis(remove, jnp.argsort(order, axis=-1), axis=-1)  # back to vocabulary order
        logits = jnp.where(remove, -jnp.inf, logits)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("graphdef", "max_new_tokens", "do_sample", "top_k", "use_top_p"))
def _generate(
    graphdef,
    state,
    input_ids,
    attention_mask,
    encoder_hidden_states,
    encoder_attention_mask,
    key,
    temperature,
    top_p,
    eos_token_id,
    pad_token_id,
    *,
    max_new_tokens: int,
    do_sample: bool,
    top_k: Optional[int],
    use_top_p: bool,
):
    """The decoding loop of :meth:`BertLMHeadModel.generate`: (int32 (B, S + max_new_tokens), steps run)."""
    model = nnx.merge(graphdef, state)
    batch, seq_len = input_ids.shape
    choose = functools.partial(_next_token, do_sample=do_sample, top_k=top_k, use_top_p=use_top_p)
    cross = dict(encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=encoder_attention_mask)
    # The mask covers the whole cache buffer: slots not written yet lie in every query's causal future.
    buffer_mask = jnp.concatenate([attention_mask, jnp.ones((batch, max_new_tokens), jnp.int32)], axis=1)
    positions = jnp.where(attention_mask == 0, 1, jnp.cumsum(attention_mask, axis=-1) - 1)
    out = model(
        input_ids,
        attention_mask=buffer_mask,
        position_ids=positions,
        past_key_values=model.init_cache(batch, seq_len + max_new_tokens),
        use_cache=True,
        **cross,
    )

    def select(logits, finished, key):
        key, sample_key = jax.random.split(key)
        token = choose(logits[:, -1], sample_key, temperature, top_p)
        token = jnp.where(finished, pad_token_id, token)
        return token, finished | (token == eos_token_id), key

    token, finished, key = select(out.logits, jnp.zeros((batch,), bool), key)
    tokens = jnp.zeros((batch, max_new_tokens), jnp.int32).at[:, 0].set(token)
    # HF's next position: the count of real tokens so far, minus one (cumsum of the grown mask)
    position = jnp.sum(attention_mask, axis=-1).astype(jnp.int32) - 1

    def cond(carry):
        step, _, _, finished, _, _, _ = carry
        return (step < max_new_tokens) & ~jnp.all(finished)

    def body(carry):
        step, tokens, token, finished, cache, position, key = carry
        position = position + 1
        out = model(
            token[:, None],
            attention_mask=buffer_mask,
            position_ids=position[:, None],
            past_key_values=cache,
            use_cache=True,
            **cross,
        )
        token, finished, key = select(out.logits, finished, key)
        tokens = jax.lax.dynamic_update_slice(tokens, token[:, None], (0, step))
        return step + 1, tokens, token, finished, out.past_key_values, position, key

    carry = (jnp.int32(1), tokens, token, finished, out.past_key_values, position, key)
    steps, tokens = jax.lax.while_loop(cond, body, carry)[:2]
    return jnp.concatenate([input_ids, tokens], axis=1), steps


class BertForMaskedLM(_HeadModel):
    """Masked-token logits from ``cls.predictions``; loss = CE over labels != -100."""

    head_name = "BertForMaskedLM"

    def __init__(
        self,
        config: BertConfig,
        *,
        seed: Optional[int] = 0,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: Optional[nnx.Rngs] = None,
    ) -> None:
        super().__init__(config, dtype=dtype, param_dtype=param_dtype)
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=_rngs(seed, rngs))
        self.bert = BertModel(config, add_pooling_layer=False, seed=None, **kw)
        self.cls = BertOnlyMLMHead(config, self.bert.embeddings.word_embeddings, **kw)
        self._post_init(seed)

    def __call__(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        head_mask=None,
        inputs_embeds=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        *,
        deterministic: bool = True,
    ):
        """labels: int (B, S), -100 ignored. Returns MaskedLMOutput: logits float (B, S, V)."""
        output_attentions, output_hidden_states, return_dict = self._flags(
            output_attentions, output_hidden_states, return_dict
        )
        out = self._run_bert(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            head_mask,
            inputs_embeds,
            output_attentions,
            output_hidden_states,
            deterministic=deterministic,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            use_cache=False,
        )
        logits = self.cls(out.last_hidden_state)
        _check_labels(self.config, self.head_name, "labels", labels, logits)
        loss = None if labels is None else _cross_entropy(logits, labels)
        return _finish(
            MaskedLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions),
            return_dict,
        )


class BertForNextSentencePrediction(_HeadModel):
    """Is sentence B the continuation of A? ``cls.seq_relationship`` on the pooled output."""

    head_name = "BertForNextSentencePrediction"

    def __init__(
        self,
        config: BertConfig,
        *,
        seed: Optional[int] = 0,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: Optional[nnx.Rngs] = None,
    ) -> None:
        super().__init__(config, dtype=dtype, param_dtype=param_dtype)
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=_rngs(seed, rngs))
        self.bert = BertModel(config, add_pooling_layer=True, seed=None, **kw)
        self.cls = BertOnlyNSPHead(config, **kw)
        self._post_init(seed)

    def __call__(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        head_mask=None,
        inputs_embeds=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        next_sentence_label=None,
        *,
        deterministic: bool = True,
    ):
        """labels (or next_sentence_label): int (B,), 0 = B follows A. Returns logits float (B, 2)."""
        labels = next_sentence_label if labels is None else labels
        output_attentions, output_hidden_states, return_dict = self._flags(
            output_attentions, output_hidden_states, return_dict
        )
        out = self._run_bert(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            head_mask,
            inputs_embeds,
            output_attentions,
            output_hidden_states,
            deterministic=deterministic,
        )
        logits = self.cls(out.pooler_output)
        _check_labels(self.config, self.head_name, "labels", labels, logits)
        loss = None if labels is None else _cross_entropy(logits, labels)
        return _finish(
            NextSentencePredictorOutput(
                loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
            ),
            return_dict,
        )


class BertForSequenceClassification(_HeadModel):
    """``classifier`` on the dropped-out pooled output: regression, single- or multi-label classification."""

    head_name = "BertForSequenceClassification"

    def __init__(
        self,
        config: BertConfig,
        *,
        seed: Optional[int] = 0,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: Optional[nnx.Rngs] = None,
    ) -> None:
        super().__init__(config, dtype=dtype, param_dtype=param_dtype)
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=_rngs(seed, rngs))
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=True, seed=None, **kw)
        self.dropout = nnx.Dropout(config.classifier_dropout_prob, rngs=kw["rngs"])
        self.classifier = _Linear(config.hidden_size, config.num_labels, **kw)
        self._post_init(seed)

    def __call__(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        head_mask=None,
        inputs_embeds=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        *,
        deterministic: bool = True,
    ):
        """labels: int (B,) classes, float (B,) / (B, num_labels) regression targets, or float (B, num_labels)
        multi-hot; the loss is chosen by ``bert_core.validation.resolve_problem_type``. Returns logits (B, num_labels).
        """
        output_attentions, output_hidden_states, return_dict = self._flags(
            output_attentions, output_hidden_states, return_dict
        )
        out = self._run_bert(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            head_mask,
            inputs_embeds,
            output_attentions,
            output_hidden_states,
            deterministic=deterministic,
        )
        logits = self.classifier(self.dropout(out.pooler_output, deterministic=deterministic))
        _check_labels(self.config, self.head_name, "labels", labels, logits)
        loss = None
        if labels is not None:
            labels = jnp.asarray(labels)
            problem = validation.resolve_problem_type(self.config, jnp.issubdtype(labels.dtype, jnp.integer))
            if problem == "regression":
                if self.num_labels == 1:
                    loss = _mse(logits.squeeze(), labels.squeeze())
                else:
                    loss = _mse(logits, labels)
            elif problem == "single_label_classification":
                loss = _cross_entropy(logits, labels)
            else:
                loss = _bce_with_logits(logits, labels)
        return _finish(
            SequenceClassifierOutput(
                loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
            ),
            return_dict,
        )


class BertForMultipleChoice(_HeadModel):
    """Scores each of C choices: inputs (B, C, S) are flattened to (B*C, S); logits come back as (B, C)."""

    head_name = "BertForMultipleChoice"

    def __init__(
        self,
        config: BertConfig,
        *,
        seed: Optional[int] = 0,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: Optional[nnx.Rngs] = None,
    ) -> None:
        super().__init__(config, dtype=dtype, param_dtype=param_dtype)
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=_rngs(seed, rngs))
        self.bert = BertModel(config, add_pooling_layer=True, seed=None, **kw)
        self.dropout = nnx.Dropout(config.classifier_dropout_prob, rngs=kw["rngs"])
        self.classifier = _Linear(config.hidden_size, 1, **kw)
        self._post_init(seed)

    def __call__(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        head_mask=None,
        inputs_embeds=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        *,
        deterministic: bool = True,
    ):
        """input_ids / attention_mask / token_type_ids / position_ids: (B, C, S); inputs_embeds (B, C, S, H);
        labels: int (B,) index of the right choice. Returns MultipleChoiceModelOutput: logits float (B, C)."""
        output_attentions, output_hidden_states, return_dict = self._flags(
            output_attentions, output_hidden_states, return_dict
        )
        num_choices = validation.check_multiple_choice_inputs(
            _array_info(input_ids, False),
            _array_info(attention_mask, False),
            _array_info(token_type_ids, False),
            _array_info(position_ids, False),
            _array_info(inputs_embeds, False),
        )

        def flat(x):
            return None if x is None else jnp.reshape(jnp.asarray(x), (-1, np.shape(x)[-1]))

        embeds = None if inputs_embeds is None else jnp.reshape(inputs_embeds, (-1,) + np.shape(inputs_embeds)[-2:])
        out = self._run_bert(
            flat(input_ids),
            flat(attention_mask),
            flat(token_type_ids),
            flat(position_ids),
            head_mask,
            embeds,
            output_attentions,
            output_hidden_states,
            deterministic=deterministic,
        )
        logits = self.classifier(self.dropout(out.pooler_output, deterministic=deterministic)).reshape(-1, num_choices)
        _check_labels(self.config, self.head_name, "labels", labels, logits)
        loss = None if labels is None else _cross_entropy(logits, labels)
        return _finish(
            MultipleChoiceModelOutput(
                loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
            ),
            return_dict,
        )


class BertForTokenClassification(_HeadModel):
    """Per-token ``classifier`` (NER and the like): logits float (B, S, num_labels); loss CE, -100 ignored."""

    head_name = "BertForTokenClassification"

    def __init__(
        self,
        config: BertConfig,
        *,
        seed: Optional[int] = 0,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: Optional[nnx.Rngs] = None,
    ) -> None:
        super().__init__(config, dtype=dtype, param_dtype=param_dtype)
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=_rngs(seed, rngs))
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False, seed=None, **kw)
        self.dropout = nnx.Dropout(config.classifier_dropout_prob, rngs=kw["rngs"])
        self.classifier = _Linear(config.hidden_size, config.num_labels, **kw)
        self._post_init(seed)

    def __call__(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        head_mask=None,
        inputs_embeds=None,
        labels=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        *,
        deterministic: bool = True,
    ):
        """labels: int (B, S), -100 ignored."""
        output_attentions, output_hidden_states, return_dict = self._flags(
            output_attentions, output_hidden_states, return_dict
        )
        out = self._run_bert(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            head_mask,
            inputs_embeds,
            output_attentions,
            output_hidden_states,
            deterministic=deterministic,
        )
        logits = self.classifier(self.dropout(out.last_hidden_state, deterministic=deterministic))
        _check_labels(self.config, self.head_name, "labels", labels, logits)
        loss = None if labels is None else _cross_entropy(logits, labels)
        return _finish(
            TokenClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions),
            return_dict,
        )


class BertForQuestionAnswering(_HeadModel):
    """Extractive QA: ``qa_outputs`` gives span start/end logits, float (B, S) each."""

    head_name = "BertForQuestionAnswering"

    def __init__(
        self,
        config: BertConfig,
        *,
        seed: Optional[int] = 0,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: Optional[nnx.Rngs] = None,
    ) -> None:
        super().__init__(config, dtype=dtype, param_dtype=param_dtype)
        validation.check_qa_num_labels(config)
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=_rngs(seed, rngs))
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False, seed=None, **kw)
        self.qa_outputs = _Linear(config.hidden_size, config.num_labels, **kw)
        self._post_init(seed)

    def __call__(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        head_mask=None,
        inputs_embeds=None,
        start_positions=None,
        end_positions=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        *,
        deterministic: bool = True,
    ):
        """start_positions / end_positions: int (B,). Positions outside the sequence are clamped to S and ignored;
        loss = (CE(start) + CE(end)) / 2."""
        output_attentions, output_hidden_states, return_dict = self._flags(
            output_attentions, output_hidden_states, return_dict
        )
        out = self._run_bert(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            head_mask,
            inputs_embeds,
            output_attentions,
            output_hidden_states,
            deterministic=deterministic,
        )
        logits = self.qa_outputs(out.last_hidden_state)
        start_logits, end_logits = logits[..., 0], logits[..., 1]
        _check_labels(self.config, self.head_name, "start_positions", start_positions, start_logits)
        _check_labels(self.config, self.head_name, "end_positions", end_positions, start_logits)
        loss = None
        if start_positions is not None and end_positions is not None:
            start_positions, end_positions = jnp.asarray(start_positions), jnp.asarray(end_positions)
            if start_positions.ndim > 1:
                start_positions = start_positions.squeeze(-1)
            if end_positions.ndim > 1:
                end_positions = end_positions.squeeze(-1)
            ignored = start_logits.shape[1]
            start_positions = jnp.clip(start_positions, 0, ignored)
            end_positions = jnp.clip(end_positions, 0, ignored)
            loss = (
                _cross_entropy(start_logits, start_positions, ignore_index=ignored)
                + _cross_entropy(end_logits, end_positions, ignore_index=ignored)
            ) / 2
        return _finish(
            QuestionAnsweringModelOutput(
                loss=loss,
                start_logits=start_logits,
                end_logits=end_logits,
                hidden_states=out.hidden_states,
                attentions=out.attentions,
            ),
            return_dict,
        )


ALL_MODEL_CLASSES = (
    BertModel,
    BertForPreTraining,
    BertLMHeadModel,
    BertForMaskedLM,
    BertForNextSentencePrediction,
    BertForSequenceClassification,
    BertForMultipleChoice,
    BertForTokenClassification,
    BertForQuestionAnswering,
)


# ----------------------------------------------------------------------------------------------------- harness helper


def canonical_grads(
    model: BertPreTrainedModel, inputs: Mapping[str, Any]
) -> Tuple[float, "OrderedDict[str, np.ndarray]"]:
    """Loss and gradient of every stored tensor, by canonical name (PyTorch layout, float32 numpy), dropout off.

    ``inputs`` are forward keyword arguments including the labels. The tied decoder's gradient lands in
    ``word_embeddings`` (one shared variable).
    """
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss_fn(p):
        output = nnx.merge(graphdef, p, rest)(**inputs, deterministic=True, return_dict=True)
        if output.loss is None:
            raise ValueError(f"{model.head_name} returned no loss: pass its labels in inputs")
        return output.loss

    loss, grads = jax.value_and_grad(loss_fn)(params)
    return float(loss), nnx.merge(graphdef, grads, rest).canonical_weights()
