"""BERT in Flax NNX, numerically equal to Hugging Face transformers 4.57 ``modeling_bert`` (PyTorch).

The modules form a ladder named like the checkpoint (``bert.encoder.layer.0.attention.self.query``), so every
canonical tensor of :mod:`bert_core.weights` is reached by a plain attribute walk: a parameter's NNX path is
``('bert', 'encoder', 'layer', 0, 'attention', 'self', 'query', 'kernel')``.

Conventions: ``b`` batch, ``s`` query length, ``k`` key length, ``h`` hidden size, ``n`` heads, ``d`` head size.
Token ids are integer arrays; float outputs have the computation ``dtype`` (float32 unless asked otherwise);
losses are float32 scalars.

bfloat16: ``dtype=jnp.bfloat16`` computes in bfloat16, and every matrix product (dense layers, attention, the tied
decoder) takes bfloat16 operands but accumulates and returns float32 before the cast back (``_accumulation_dtype``);
softmax runs in float32. On x86 CPUs XLA only reaches its fast bfloat16 GEMM in that bf16 x bf16 -> f32 form (a
bf16 -> bf16 dot is ~0.8x of float32, slower than the float32 model); no XLA flag of jaxlib 0.10 (oneDNN, XNNPACK
fusion) changes this. For inference also pass ``param_dtype=jnp.bfloat16`` to store the weights in bfloat16 once
instead of casting them every call (~1.8x float32 speed on an AVX-512-BF16 host, ~1.65x with float32 weights).
"""

from __future__ import annotations

import functools
import math
import os
from collections import OrderedDict
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from bert_core import checkpoint as core_checkpoint
from bert_core import validation
from bert_core.config import BertConfig
from bert_core.init import complete_weights, init_weights
from bert_core.outputs import (
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
from bert_core.weights import (
    TIED_DECODER,
    backend_path,
    from_backend_array,
    head_has_pooler,
    stored_weights,
    to_backend_array,
)

register_jax_pytree_nodes()

Array = jax.Array


# ============================================================================================ activations


def _gelu_tanh(x: Array) -> Array:
    return 0.5 * x * (1.0 + jnp.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * jnp.power(x, 3.0))))


def _gelu_fast(x: Array) -> Array:
    return 0.5 * x * (1.0 + jnp.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


ACT2FN = {
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "gelu_python": lambda x: x * 0.5 * (1.0 + jax.lax.erf(x / math.sqrt(2.0))),
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu_fast": _gelu_fast,
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "tanh": jnp.tanh,
    "mish": lambda x: x * jnp.tanh(jax.nn.softplus(x)),
}


# ============================================================================================ KV cache


@functools.partial(jax.tree_util.register_dataclass, data_fields=["layers", "index"], meta_fields=[])
class BertKVCache:
    """Fixed-size decoder cache, usable inside ``jit`` (shapes never change while decoding).

    layers: tuple per layer of (key, value), each ``dtype`` (batch, heads, max_length, head_dim); positions at and
    after ``index`` are not yet written (the causal mask hides them). index: int32 scalar, tokens cached so far.
    """

    def __init__(self, layers: Tuple[Tuple[Array, Array], ...], index: Array) -> None:
        self.layers = layers
        self.index = index

    @property
    def max_length(self) -> int:
        return self.layers[0][0].shape[2]

    def __repr__(self) -> str:
        return f"BertKVCache(layers={len(self.layers)}, max_length={self.max_length}, index={self.index})"


def _is_tracer(x: Any) -> bool:
    return isinstance(x, jax.core.Tracer)


def _accumulation_dtype(dtype) -> Optional[Any]:
    """float32 for a half-width computation ``dtype`` (bfloat16, float16), else None (the default dot).

    Matrix products of half-width operands then accumulate and return float32 (cast back to ``dtype`` right after).
    Besides the better sums, this is the form XLA:CPU runs fast: a bfloat16 x bfloat16 -> bfloat16 dot is emitted
    as a slow generic loop (about 0.8x of float32 on an AVX-512 host), while bfloat16 x bfloat16 -> float32 reaches
    the vendor GEMM (about 2x float32). The float32 path (``None``) keeps the plain dot.
    """
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating) or jnp.dtype(dtype).itemsize >= 4:
        return None
    return jnp.float32


class _Linear(nnx.Linear):
    """``nnx.Linear`` whose half-width computation accumulates in float32 and returns ``dtype`` (see above)."""

    def __init__(self, in_features: int, out_features: int, **kwargs) -> None:
        super().__init__(
            in_features, out_features, preferred_element_type=_accumulation_dtype(kwargs.get("dtype")), **kwargs
        )

    def __call__(self, inputs: Array, out_sharding=None) -> Array:
        y = super().__call__(inputs, out_sharding=out_sharding)
        return y if self.dtype is None else y.astype(self.dtype)


# ============================================================================================ the ladder


def _layer_norm(config: BertConfig, dtype, param_dtype, rngs: nnx.Rngs) -> nnx.LayerNorm:
    # use_fast_variance=False: mean((x - mean)^2) as PyTorch computes it, not E[x^2] - E[x]^2
    return nnx.LayerNorm(
        config.hidden_size,
        epsilon=config.layer_norm_eps,
        use_fast_variance=False,
        dtype=dtype,
        param_dtype=param_dtype,
        rngs=rngs,
    )


class BertEmbeddings(nnx.Module):
    """word + token type (+ absolute position) embeddings, LayerNorm, dropout -> ``dtype`` (b, s, h)."""

    def __init__(self, config: BertConfig, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        h = config.hidden_size
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.word_embeddings = nnx.Embed(config.vocab_size, h, **kw)
        self.position_embeddings = nnx.Embed(config.max_position_embeddings, h, **kw)
        self.token_type_embeddings = nnx.Embed(config.type_vocab_size, h, **kw)
        self.LayerNorm = _layer_norm(config, dtype, param_dtype, rngs)
        self.dropout = nnx.Dropout(config.hidden_dropout_prob, rngs=rngs)
        self.absolute = config.position_embedding_type == "absolute"
        self.dtype = dtype

    def __call__(self, input_ids, token_type_ids, position_ids, inputs_embeds, *, deterministic: bool) -> Array:
        """input_ids / token_type_ids / position_ids: int (b, s); inputs_embeds: float (b, s, h) or None."""
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        embeddings = inputs_embeds.astype(self.dtype) + self.token_type_embeddings(token_type_ids)
        if self.absolute:
            embeddings = embeddings + self.position_embeddings(position_ids)
        embeddings = self.LayerNorm(embeddings)
        return self.dropout(embeddings, deterministic=deterministic)


class BertSelfAttention(nnx.Module):
    """Scaled dot-product attention with optional relative position scores (``distance_embedding``)."""

    def __init__(self, config: BertConfig, *, relative: bool, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        h = config.hidden_size
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.query = _Linear(h, h, **kw)
        self.key = _Linear(h, h, **kw)
        self.value = _Linear(h, h, **kw)
        self.dropout = nnx.Dropout(config.attention_probs_dropout_prob, rngs=rngs)
        # HF builds cross-attention with position_embedding_type="absolute", so only self-attention is relative
        self.position_embedding_type = config.position_embedding_type if relative else "absolute"
        self.max_position_embeddings = config.max_position_embeddings
        if self.position_embedding_type != "absolute":
            self.distance_embedding = nnx.Embed(2 * config.max_position_embeddings - 1, config.head_dim, **kw)
        self.dtype = dtype

    def _split_heads(self, x: Array) -> Array:
        b, s, _ = x.shape
        return x.reshape(b, s, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)

    def __call__(
        self,
        hidden_states: Array,
        attention_bias: Optional[Array],
        head_mask: Optional[Array],
        key_value_states: Optional[Array],
        past: Optional[Tuple[Array, Array]],
        cache_index: Optional[Array],
        query_at_end: bool,
        *,
        deterministic: bool,
    ) -> Tuple[Array, Array, Tuple[Array, Array]]:
        """Attend from ``hidden_states`` (b, s, h) to itself, or to ``key_value_states`` (b, k, h) (cross-attention).

        attention_bias: additive float, broadcastable to (b, n, s, k). head_mask: float (1, n, 1, 1) multiplying the
        probabilities. past: cached (key, value) (b, n, past, d) -- with ``cache_index`` a fixed buffer written at
        that index, otherwise a growing cache the new keys are appended to; cross-attention reuses it as is.
        query_at_end: a cache is in use, and HF then places every query at the last key position for relative scores.

        Returns:
            (context (b, s, h), probabilities (b, n, s, k), (key, value) to cache).
        """
        query = self._split_heads(self.query(hidden_states))
        if key_value_states is not None and past is not None:
            key, value = past  # cross-attention keys of the encoder do not change while decoding
        else:
            source = hidden_states if key_value_states is None else key_value_states
            key = self._split_heads(self.key(source))
            value = self._split_heads(self.value(source))
            if past is not None and cache_index is not None:
                start = (0, 0, cache_index, 0)
                key = jax.lax.dynamic_update_slice(past[0], key.astype(past[0].dtype), start)
                value = jax.lax.dynamic_update_slice(past[1], value.astype(past[1].dtype), start)
            elif past is not None:
                key = jnp.concatenate([past[0], key], axis=2)
                value = jnp.concatenate([past[1], value], axis=2)

        acc = _accumulation_dtype(self.dtype)
        scores = jnp.einsum("bnqd,bnkd->bnqk", query, key, preferred_element_type=acc)
        if self.position_embedding_type != "absolute":
            query_len, key_len = query.shape[2], key.shape[2]
            if query_at_end:
                last = key_len - 1 if cache_index is None else cache_index + query_len - 1
                left = jnp.full((1, 1), last, dtype=jnp.int32)
            else:
                left = jnp.arange(query_len, dtype=jnp.int32)[:, None]
            distance = left - jnp.arange(key_len, dtype=jnp.int32)[None, :]
            positional = self.distance_embedding(distance + self.max_position_embeddings - 1).astype(query.dtype)
            positional = jnp.broadcast_to(positional, (query_len, key_len, self.head_dim))
            relative_query = jnp.einsum("bnld,lrd->bnlr", query, positional, preferred_element_type=acc)
            if self.position_embedding_type == "relative_key":
                scores = scores + relative_query
            else:
                scores = (
                    scores + relative_query + jnp.einsum("bnrd,lrd->bnlr", key, positional, preferred_element_type=acc)
                )
        scores = scores / jnp.asarray(math.sqrt(self.head_dim), scores.dtype)
        if attention_bias is not None:
            scores = scores + attention_bias.astype(scores.dtype)
        # softmax in float32 even for bfloat16 computation: the max-subtraction needs the range
        probs = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(self.dtype)
        probs = self.dropout(probs, deterministic=deterministic)
        if head_mask is not None:
            probs = probs * head_mask.astype(probs.dtype)
        context = jnp.einsum("bnqk,bnkd->bnqd", probs, value.astype(probs.dtype), preferred_element_type=acc).astype(
            self.dtype
        )
        b, n, s, d = context.shape
        context = context.transpose(0, 2, 1, 3).reshape(b, s, n * d)
        return context, probs, (key, value)


class BertSelfOutput(nnx.Module):
    """dense -> dropout -> LayerNorm(x + residual), (b, s, h)."""

    def __init__(self, config: BertConfig, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        self.dense = _Linear(config.hidden_size, config.hidden_size, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.LayerNorm = _layer_norm(config, dtype, param_dtype, rngs)
        self.dropout = nnx.Dropout(config.hidden_dropout_prob, rngs=rngs)

    def __call__(self, hidden_states: Array, residual: Array, *, deterministic: bool) -> Array:
        hidden_states = self.dropout(self.dense(hidden_states), deterministic=deterministic)
        return self.LayerNorm(hidden_states + residual)


class BertAttention(nnx.Module):
    """Attention block: ``self`` (BertSelfAttention) then ``output`` (BertSelfOutput).

    The first parameter of the methods is named ``module`` because the checkpoint names the sub-module ``self``.
    """

    def __init__(module, config: BertConfig, *, relative: bool, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        module.self = BertSelfAttention(config, relative=relative, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        module.output = BertSelfOutput(config, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def __call__(
        module,
        hidden_states,
        attention_bias,
        head_mask,
        key_value_states,
        past,
        cache_index,
        query_at_end,
        *,
        deterministic: bool,
    ):
        """Returns (output (b, s, h), probabilities (b, n, s, k), (key, value))."""
        context, probs, present = module.self(
            hidden_states,
            attention_bias,
            head_mask,
            key_value_states,
            past,
            cache_index,
            query_at_end,
            deterministic=deterministic,
        )
        return module.output(context, hidden_states, deterministic=deterministic), probs, present


class BertIntermediate(nnx.Module):
    """dense to intermediate_size, then the config's activation: (b, s, h) -> (b, s, intermediate_size)."""

    def __init__(self, config: BertConfig, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        self.dense = _Linear(
            config.hidden_size, config.intermediate_size, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        self.hidden_act = config.hidden_act

    def __call__(self, hidden_states: Array) -> Array:
        return ACT2FN[self.hidden_act](self.dense(hidden_states))


class BertOutput(nnx.Module):
    """dense back to hidden_size -> dropout -> LayerNorm(x + residual)."""

    def __init__(self, config: BertConfig, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        self.dense = _Linear(
            config.intermediate_size, config.hidden_size, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        self.LayerNorm = _layer_norm(config, dtype, param_dtype, rngs)
        self.dropout = nnx.Dropout(config.hidden_dropout_prob, rngs=rngs)

    def __call__(self, hidden_states: Array, residual: Array, *, deterministic: bool) -> Array:
        hidden_states = self.dropout(self.dense(hidden_states), deterministic=deterministic)
        return self.LayerNorm(hidden_states + residual)


class BertLayer(nnx.Module):
    """Self-attention, optional cross-attention (decoders), feed-forward (chunked along the sequence if asked)."""

    def __init__(self, config: BertConfig, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.attention = BertAttention(config, relative=True, **kw)
        if config.add_cross_attention:
            if not config.is_decoder:
                raise ValueError("add_cross_attention=True needs is_decoder=True (cross-attention is for decoders)")
            self.crossattention = BertAttention(config, relative=False, **kw)
        else:
            self.crossattention = None
        self.intermediate = BertIntermediate(config, **kw)
        self.output = BertOutput(config, **kw)
        self.chunk_size_feed_forward = config.chunk_size_feed_forward

    def _feed_forward(self, attention_output: Array, deterministic: bool) -> Array:
        return self.output(self.intermediate(attention_output), attention_output, deterministic=deterministic)

    def __call__(
        self,
        hidden_states,
        attention_bias,
        head_mask,
        encoder_hidden_states,
        encoder_bias,
        past,
        cache_index,
        query_at_end,
        *,
        deterministic: bool,
    ):
        """One layer. past: this layer's cache, (k, v) or (k, v, cross_k, cross_v), or None.

        Returns (hidden (b, s, h), self probs, cross probs or None, cache tuple for this layer).
        """
        self_past = None if past is None else tuple(past[:2])
        cross_past = tuple(past[2:4]) if past is not None and len(past) == 4 else None
        attention_output, self_probs, present = self.attention(
            hidden_states,
            attention_bias,
            head_mask,
            None,
            self_past,
            cache_index,
            query_at_end,
            deterministic=deterministic,
        )
        cross_probs = None
        if encoder_hidden_states is not None and self.crossattention is not None:
            attention_output, cross_probs, cross_present = self.crossattention(
                attention_output,
                encoder_bias,
                head_mask,
                encoder_hidden_states,
                cross_past,
                None,
                False,
                deterministic=deterministic,
            )
            if cache_index is None:  # the fixed cache recomputes cross keys from encoder_hidden_states instead
                present = present + cross_present
        chunk = self.chunk_size_feed_forward
        if chunk > 0:
            seq_len = attention_output.shape[1]
            if seq_len % chunk != 0:
                raise ValueError(
                    f"sequence length {seq_len} is not a multiple of chunk_size_feed_forward={chunk} (HF requires it)"
                )
            pieces = [
                self._feed_forward(attention_output[:, i : i + chunk], deterministic) for i in range(0, seq_len, chunk)
            ]
            layer_output = jnp.concatenate(pieces, axis=1)
        else:
            layer_output = self._feed_forward(attention_output, deterministic)
        return layer_output, self_probs, cross_probs, present


class BertEncoder(nnx.Module):
    """``layer``: an nnx.List of num_hidden_layers BertLayer."""

    def __init__(self, config: BertConfig, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        self.layer = nnx.List(
            [
                BertLayer(config, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
                for _ in range(config.num_hidden_layers)
            ]
        )
        self.gradient_checkpointing = bool(config.gradient_checkpointing)

    def __call__(
        self,
        hidden_states,
        attention_bias,
        head_masks,
        encoder_hidden_states,
        encoder_bias,
        past,
        cache_index,
        query_at_end,
        *,
        output_attentions: bool,
        output_hidden_states: bool,
        deterministic: bool,
    ):
        """Returns (last hidden (b, s, h), all hidden states or None, self attentions or None, cross attentions or
        None, per-layer caches)."""
        all_hidden = () if output_hidden_states else None
        all_self = () if output_attentions else None
        all_cross = () if output_attentions else None
        presents = ()

        def run(layer, hidden, bias, head_mask, enc_states, enc_bias, layer_past, cache_index):
            return layer(
                hidden,
                bias,
                head_mask,
                enc_states,
                enc_bias,
                layer_past,
                cache_index,
                query_at_end,
                deterministic=deterministic,
            )

        if self.gradient_checkpointing:
            # recompute each layer's activations in the backward pass instead of storing them
            # tree mode: also works when the model was merged inside a plain jax.grad trace
            run = nnx.remat(run, graph=False)
        for i, layer in enumerate(self.layer):
            if output_hidden_states:
                all_hidden = all_hidden + (hidden_states,)
            layer_past = None if past is None else past[i]
            head_mask = None if head_masks is None else head_masks[i]
            hidden_states, self_probs, cross_probs, present = run(
                layer,
                hidden_states,
                attention_bias,
                head_mask,
                encoder_hidden_states,
                encoder_bias,
                layer_past,
                cache_index,
            )
            presents = presents + (present,)
            if output_attentions:
                all_self = all_self + (self_probs,)
                if cross_probs is not None:
                    all_cross = all_cross + (cross_probs,)
        if output_hidden_states:
            all_hidden = all_hidden + (hidden_states,)
        return hidden_states, all_hidden, all_self, (all_cross or None), presents


class BertPooler(nnx.Module):
    """tanh(dense(first token)): (b, s, h) -> (b, h)."""

    def __init__(self, config: BertConfig, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        self.dense = _Linear(config.hidden_size, config.hidden_size, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, hidden_states: Array) -> Array:
        return jnp.tanh(self.dense(hidden_states[:, 0]))


class BertPredictionHeadTransform(nnx.Module):
    """dense -> activation -> LayerNorm, (b, s, h)."""

    def __init__(self, config: BertConfig, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        self.dense = _Linear(config.hidden_size, config.hidden_size, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.LayerNorm = _layer_norm(config, dtype, param_dtype, rngs)
        self.hidden_act = config.hidden_act

    def __call__(self, hidden_states: Array) -> Array:
        return self.LayerNorm(ACT2FN[self.hidden_act](self.dense(hidden_states)))


class BertLMPredictionHead(nnx.Module):
    """transform, then vocabulary logits (b, s, vocab): the decoder is the word-embedding matrix when tied."""

    def __init__(self, config: BertConfig, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        self.transform = BertPredictionHeadTransform(config, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.tied = bool(config.tie_word_embeddings)
        if self.tied:
            self.decoder = None
        else:
            self.decoder = _Linear(
                config.hidden_size, config.vocab_size, use_bias=False, dtype=dtype, param_dtype=param_dtype, rngs=rngs
            )
        self.bias = nnx.Param(jnp.zeros((config.vocab_size,), param_dtype))
        self.dtype = dtype

    def __call__(self, hidden_states: Array, word_embeddings: Array) -> Array:
        """word_embeddings: (vocab, h), used as the decoder when tied."""
        hidden_states = self.transform(hidden_states)
        if self.tied:
            logits = jnp.matmul(
                hidden_states,
                jnp.asarray(word_embeddings, self.dtype).T,
                preferred_element_type=_accumulation_dtype(self.dtype),
            )
        else:
            logits = self.decoder(hidden_states)
        return (logits + jnp.asarray(self.bias[...], self.dtype)).astype(self.dtype)


class BertOnlyMLMHead(nnx.Module):
    def __init__(self, config: BertConfig, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        self.predictions = BertLMPredictionHead(config, dtype=dtype, param_dtype=param_dtype, rngs=rngs)


class BertOnlyNSPHead(nnx.Module):
    def __init__(self, config: BertConfig, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        self.seq_relationship = _Linear(config.hidden_size, 2, dtype=dtype, param_dtype=param_dtype, rngs=rngs)


class BertPreTrainingHeads(nnx.Module):
    def __init__(self, config: BertConfig, *, dtype, param_dtype, rngs: nnx.Rngs) -> None:
        self.predictions = BertLMPredictionHead(config, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.seq_relationship = _Linear(config.hidden_size, 2, dtype=dtype, param_dtype=param_dtype, rngs=rngs)


# ============================================================================================ masks, losses


def _extended_attention_bias(
    config: BertConfig, attention_mask: Array, batch: int, seq_len: int, past_len, fixed_cache: bool, dtype
) -> Array:
    """HF's extended mask: (1 - mask) * finfo(dtype).min, causal (offset by the cache) for 2-D masks of decoders.

    attention_mask: (b, k) padding mask, (b, s, k) or (b, 1|n, s, k). past_len: tokens already cached (may be traced
    with a fixed cache, whose keys span the whole buffer).
    """
    mask = jnp.asarray(attention_mask)
    if mask.ndim == 3:
        extended = mask[:, None, :, :]
    elif mask.ndim == 4:
        extended = mask
    elif config.is_decoder:
        key_len = mask.shape[1]
        query_pos = jnp.arange(seq_len)[:, None] + (past_len if fixed_cache else key_len - seq_len)
        causal = jnp.arange(key_len)[None, :] <= query_pos  # (s, k): a query sees keys up to its own position
        extended = causal[None, None, :, :].astype(dtype) * mask[:, None, None, :].astype(dtype)
    else:
        extended = mask[:, None, None, :]
    extended = extended.astype(dtype)
    return (1.0 - extended) * jnp.finfo(dtype).min


def _invert_encoder_mask(mask: Array, dtype) -> Array:
    mask = jnp.asarray(mask)
    extended = mask[:, None, :, :] if mask.ndim == 3 else mask[:, None, None, :]
    return (1.0 - extended.astype(dtype)) * jnp.finfo(dtype).min


def _head_masks(head_mask, num_layers: int, num_heads: int, dtype):
    """(n,) or (layers, n) -> per-layer (1, n, 1, 1), or None."""
    if head_mask is None:
        return None
    head_mask = jnp.asarray(head_mask, dtype)
    if head_mask.ndim == 1:
        head_mask = jnp.broadcast_to(head_mask, (num_layers, num_heads))
    return [head_mask[i][None, :, None, None] for i in range(num_layers)]


def cross_entropy(logits: Array, labels: Array, ignore_index: int = -100) -> Array:
    """Mean cross-entropy over entries whose label != ignore_index, as torch.nn.CrossEntropyLoss (NaN if none).

    logits: float (..., classes); labels: int (...). Computed in float32.
    """
    logits = jnp.asarray(logits, jnp.float32)
    labels = jnp.asarray(labels)
    logp = jax.nn.log_softmax(logits, axis=-1)
    valid = labels != ignore_index
    safe = jnp.where(valid, labels, 0).astype(jnp.int32)
    nll = -jnp.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
    return jnp.sum(jnp.where(valid, nll, 0.0)) / jnp.sum(valid)


def _bce_with_logits(logits: Array, labels: Array) -> Array:
    x = jnp.asarray(logits, jnp.float32)
    y = jnp.asarray(labels, jnp.float32)
    return jnp.mean(jnp.maximum(x, 0.0) - x * y + jnp.log1p(jnp.exp(-jnp.abs(x))))


# ============================================================================================ input checks


def _shape(x) -> Tuple[int, ...]:
    return tuple(np.shape(x))


def _min_max(x) -> Optional[Tuple[int, int]]:
    """Concrete (min, max) of an int array; None under tracing (only static shape checks run there)."""
    if x is None or _is_tracer(x):
        return None
    array = np.asarray(x)
    if array.size == 0:
        return None
    return int(array.min()), int(array.max())


def _past_length(past) -> Any:
    if past is None:
        return 0
    if isinstance(past, BertKVCache):
        return past.index
    return past[0][0].shape[2]


def validate_inputs(
    config: BertConfig,
    input_ids=None,
    attention_mask=None,
    token_type_ids=None,
    position_ids=None,
    head_mask=None,
    inputs_embeds=None,
    encoder_hidden_states=None,
    past_key_values=None,
) -> None:
    """Every bert_core input check, run eagerly before any computation (value checks only on concrete arrays)."""
    validation.check_exclusive_inputs(input_ids is not None, inputs_embeds is not None)
    if input_ids is not None:
        shape = _shape(input_ids)
        validation.check_rank("input_ids", shape, 2, "batch, seq_len")
        ref_name = "input_ids"
        bounds = _min_max(input_ids)
        if bounds is not None:
            validation.check_token_ids(bounds[0], bounds[1], config.vocab_size)
    else:
        validation.check_rank("inputs_embeds", _shape(inputs_embeds), 3, "batch, seq_len, hidden_size")
        shape = _shape(inputs_embeds)[:2]
        ref_name = "inputs_embeds[..., 0]"
    batch, seq_len = shape
    validation.check_decoder_inputs(config, encoder_hidden_states is not None, past_key_values is not None)
    fixed = isinstance(past_key_values, BertKVCache)
    past_len = _past_length(past_key_values)
    if not _is_tracer(past_len):
        validation.check_sequence_length(seq_len, int(past_len), config.max_position_embeddings)
    if token_type_ids is not None:
        validation.check_same_shape("token_type_ids", _shape(token_type_ids), ref_name, shape)
        bounds = _min_max(token_type_ids)
        if bounds is not None:
            validation.check_token_type_ids(bounds[0], bounds[1], config.type_vocab_size)
    if position_ids is not None:
        bounds = _min_max(position_ids)
        if bounds is not None:
            validation.check_position_ids(bounds[0], bounds[1], config.max_position_embeddings)
    if attention_mask is not None:
        key_len = past_key_values.max_length if fixed else seq_len + int(past_len)
        mask_shape = _shape(attention_mask)
        if len(mask_shape) == 2 and key_len == seq_len:
            validation.check_same_shape("attention_mask", mask_shape, ref_name, shape)
        validation.check_attention_mask(mask_shape, batch, key_len)
    if head_mask is not None:
        validation.check_head_mask(_shape(head_mask), config.num_hidden_layers, config.num_attention_heads)


# ============================================================================================ public models


class BertPreTrainedModel(nnx.Module):
    """Shared construction, weight I/O and checkpoints of every public class.

    Constructor: ``Class(config, *, dtype=jnp.float32, param_dtype=jnp.float32, rngs=None, seed=0)``. Weights start
    from ``bert_core.init.init_weights(config, head_name, seed)`` (identical across backends for a seed); ``rngs``
    (default ``nnx.Rngs(seed)``) only drives dropout when called with ``deterministic=False``.
    """

    head_name = "BertModel"

    def _init_from(
        self, config: BertConfig, add_pooling_layer: Optional[bool], dtype, param_dtype, seed: int, initialize: bool
    ) -> None:
        if not isinstance(config, BertConfig):
            raise TypeError(f"config must be a bert_core BertConfig, got {type(config).__name__}")
        self.config = config
        self.add_pooling_layer = head_has_pooler(self.head_name, add_pooling_layer)
        self.dtype = dtype
        self.param_dtype = param_dtype
        if initialize:
            self.load_canonical_weights(
                init_weights(config, self.head_name, seed, add_pooling_layer=self.add_pooling_layer)
            )

    # ---------------------------------------------------------------- weights
    def _weight_table(self):
        return stored_weights(self.config, self.head_name, self.add_pooling_layer)

    def _variable(self, path: Sequence[str]) -> nnx.Variable:
        node: Any = self
        for part in path:
            node = node[int(part)] if part.isdigit() else getattr(node, part)
        return node

    def load_canonical_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Set every stored tensor from canonical (PyTorch-layout) numpy arrays, named as in the checkpoint.

        Raises:
            ValueError: names missing, unknown, or with the wrong shape (all listed).
        """
        table = self._weight_table()
        missing = [n for n in table if n not in weights]
        unknown = [n for n in weights if n not in table and n != TIED_DECODER]
        bad = [
            (n, _shape(weights[n]), table[n].shape)
            for n in table
            if n in weights and _shape(weights[n]) != table[n].shape
        ]
        if missing or unknown or bad:
            raise ValueError(
                f"cannot load weights into {self.head_name}: missing {missing}, unexpected {unknown}, "
                f"wrong shape (name, got, expected) {bad}"
            )
        for name, spec in table.items():
            path, _ = backend_path(spec, "flax")
            array = to_backend_array(np.asarray(weights[name], dtype=np.float32), spec, "flax")
            self._variable(path).value = jnp.asarray(array, dtype=self.param_dtype)

    def canonical_weights(self) -> "OrderedDict[str, np.ndarray]":
        """Every stored tensor as float32 numpy in PyTorch layout, keyed by canonical name (tied decoder excluded)."""
        out: "OrderedDict[str, np.ndarray]" = OrderedDict()
        for name, spec in self._weight_table().items():
            path, _ = backend_path(spec, "flax")
            value = np.asarray(jnp.asarray(self._variable(path).value, jnp.float32))
            out[name] = from_backend_array(value, spec, "flax").astype(np.float32)
        return out

    # ---------------------------------------------------------------- checkpoints
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: Union[str, os.PathLike],
        *,
        config: Optional[BertConfig] = None,
        revision: Optional[str] = None,
        cache_dir=None,
        token=None,
        local_files_only: bool = False,
        ignore_mismatched_sizes: bool = False,
        output_loading_info: bool = False,
        seed: int = 0,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: Optional[nnx.Rngs] = None,
        **config_overrides: Any,
    ):
        """Load a checkpoint (directory or hub id; safetensors, pytorch_model.bin, tf_model.h5 or flax_model.msgpack).

        Weights the checkpoint lacks (e.g. a new classifier) are initialised with ``seed`` as bert_core does.
        Returns the model, or (model, loading info dict) with ``output_loading_info=True``.
        """
        extra = {}
        if cls is BertModel and "add_pooling_layer" in config_overrides:
            extra["add_pooling_layer"] = config_overrides.pop("add_pooling_layer")
        config, weights, info = core_checkpoint.load_head_weights(
            name_or_path,
            cls.head_name,
            config=config,
            ignore_mismatched_sizes=ignore_mismatched_sizes,
            revision=revision,
            cache_dir=cache_dir,
            token=token,
            local_files_only=local_files_only,
            add_pooling_layer=extra.get("add_pooling_layer"),
            **config_overrides,
        )
        model = cls(config, dtype=dtype, param_dtype=param_dtype, rngs=rngs, seed=seed, _initialize=False, **extra)
        model.load_canonical_weights(
            complete_weights(weights, config, cls.head_name, seed, add_pooling_layer=model.add_pooling_layer)
        )
        return (model, info.as_dict()) if output_loading_info else model

    def save_pretrained(self, save_directory: Union[str, os.PathLike], max_shard_size: Union[int, str] = "5GB"):
        """Write config.json + model.safetensors (canonical names, PyTorch layout), loadable by HF's BertFor*."""
        return core_checkpoint.save_pretrained(
            save_directory,
            self.config,
            self.canonical_weights(),
            architecture=self.head_name,
            max_shard_size=max_shard_size,
        )

    def _flags(self, output_attentions, output_hidden_states, return_dict):
        c = self.config
        return (
            c.output_attentions if output_attentions is None else bool(output_attentions),
            c.output_hidden_states if output_hidden_states is None else bool(output_hidden_states),
            c.use_return_dict if return_dict is None else bool(return_dict),
        )


def _finish(output, return_dict: bool):
    return output if return_dict else output.to_tuple()


class BertModel(BertPreTrainedModel):
    """The BERT encoder (or decoder when ``config.is_decoder``): embeddings, encoder, optional pooler."""

    head_name = "BertModel"

    def __init__(
        self,
        config: BertConfig,
        *,
        add_pooling_layer: bool = True,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: Optional[nnx.Rngs] = None,
        seed: int = 0,
        _initialize: bool = True,
    ):
        rngs = nnx.Rngs(seed) if rngs is None else rngs
        kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.embeddings = BertEmbeddings(config, **kw)
        self.encoder = BertEncoder(config, **kw)
        self.pooler = BertPooler(config, **kw) if add_pooling_layer else None
        self._init_from(config, add_pooling_layer, dtype, param_dtype, seed, _initialize)

    def init_cache(self, batch_size: int, max_length: int) -> BertKVCache:
        """An empty fixed-size cache for decoding up to ``max_length`` tokens (prompt included), jit friendly."""
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
        deterministic: bool = True,
    ):
        """Run BERT.

        Args:
            input_ids: int (b, s), ids < vocab_size; or inputs_embeds: float (b, s, h).
            attention_mask: 1 = attend, 0 = padding: (b, past + s) (with a fixed cache (b, max_length)), (b, s, k)
                or (b, 1|n, s, k). token_type_ids / position_ids: int (b, s).
            head_mask: (n,) or (layers, n), multiplies attention probabilities.
            encoder_hidden_states: float (b, enc_s, h) for cross-attention; encoder_attention_mask: (b, enc_s).
            past_key_values: a legacy tuple per layer of (k, v[, cross_k, cross_v]) (b, n, past, d), or a
                :class:`BertKVCache` from :meth:`init_cache`; returned updated when ``use_cache``.
            use_cache: decoders only (default config.use_cache). deterministic: False enables dropout.

        Returns:
            BaseModelOutputWithPoolingAndCrossAttentions (a tuple of its non-None fields if ``return_dict=False``).
        """
        validate_inputs(
            self.config,
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            head_mask,
            inputs_embeds,
            encoder_hidden_states,
            past_key_values,
        )
        output_attentions, output_hidden_states, return_dict = self._flags(
            output_attentions, output_hidden_states, return_dict
        )
        c = self.config
        use_cache = (c.use_cache if use_cache is None else bool(use_cache)) if c.is_decoder else False
        use_cache = use_cache or past_key_values is not None
        fixed = isinstance(past_key_values, BertKVCache)
        if input_ids is not None:
            input_ids = jnp.asarray(input_ids)
            batch, seq_len = input_ids.shape
        else:
            inputs_embeds = jnp.asarray(inputs_embeds)
            batch, seq_len = inputs_embeds.shape[:2]
        past_len = _past_length(past_key_values)
        if position_ids is None:
            position_ids = jnp.broadcast_to(jnp.arange(seq_len, dtype=jnp.int32) + past_len, (batch, seq_len))
        if token_type_ids is None:
            token_type_ids = jnp.zeros((batch, seq_len), jnp.int32)
        hidden = self.embeddings(
            input_ids,
            jnp.asarray(token_type_ids),
            jnp.asarray(position_ids),
            inputs_embeds,
            deterministic=deterministic,
        )
        if attention_mask is None:
            key_len = past_key_values.max_length if fixed else seq_len + past_len
            attention_mask = jnp.ones((batch, key_len), self.dtype)
        bias = _extended_attention_bias(c, attention_mask, batch, seq_len, past_len, fixed, self.dtype)
        encoder_bias = None
        if encoder_hidden_states is not None:
            encoder_hidden_states = jnp.asarray(encoder_hidden_states)
            if encoder_attention_mask is None:
                encoder_attention_mask = jnp.ones(encoder_hidden_states.shape[:2], self.dtype)
            encoder_bias = _invert_encoder_mask(encoder_attention_mask, self.dtype)
        layers_past = past_key_values.layers if fixed else past_key_values
        sequence_output, all_hidden, all_self, all_cross, presents = self.encoder(
            hidden,
            bias,
            _head_masks(head_mask, c.num_hidden_layers, c.num_attention_heads, self.dtype),
            encoder_hidden_states,
            encoder_bias,
            layers_past,
            past_key_values.index if fixed else None,
            use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            deterministic=deterministic,
        )
        pooled = self.pooler(sequence_output) if self.pooler is not None else None
        cache = None
        if use_cache:
            cache = BertKVCache(presents, past_key_values.index + seq_len) if fixed else presents
        out = BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence_output,
            pooler_output=pooled,
            hidden_states=all_hidden,
            past_key_values=cache,
            attentions=all_self,
            cross_attentions=all_cross if (output_attentions and all_cross) else None,
        )
        return _finish(out, return_dict)


class _HeadBase(BertPreTrainedModel):
    """A head on ``bert`` (a BertModel with the pooler HF gives this head)."""

    def __init__(
        self,
        config: BertConfig,
        *,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        rngs: Optional[nnx.Rngs] = None,
        seed: int = 0,
        _initialize: bool = True,
    ):
        rngs = nnx.Rngs(seed) if rngs is None else rngs
        self.bert = BertModel(
            config,
            add_pooling_layer=head_has_pooler(self.head_name),
            dtype=dtype,
            param_dtype=param_dtype,
            rngs=rngs,
            seed=seed,
            _initialize=False,
        )
        self._build_head(config, dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs))
        self._init_from(config, None, dtype, param_dtype, seed, _initialize)

    def _build_head(self, config: BertConfig, kw: dict) -> None:
        raise NotImplementedError

    def _bert(
        self,
        input_ids,
        attention_mask,
        token_type_ids,
        position_ids,
        head_mask,
        inputs_embeds,
        output_attentions,
        output_hidden_states,
        deterministic,
        **extra,
    ):
        return self.bert(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            head_mask,
            inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            deterministic=deterministic,
            **extra,
        )

    def _word_embeddings(self) -> Array:
        return self.bert.embeddings.word_embeddings.embedding[...]


class BertForPreTraining(_HeadBase):
    """MLM + next-sentence heads. loss (with both ``labels`` (b, s) and ``next_sentence_label`` (b,)) = MLM + NSP."""

    head_name = "BertForPreTraining"

    def _build_head(self, config, kw):
        self.cls = BertPreTrainingHeads(config, **kw)

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
        deterministic: bool = True,
    ):
        """Returns BertForPreTrainingOutput: prediction_logits (b, s, vocab), seq_relationship_logits (b, 2)."""
        output_attentions, output_hidden_states, return_dict = self._flags(
            output_attentions, output_hidden_states, return_dict
        )
        out = self._bert(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            head_mask,
            inputs_embeds,
            output_attentions,
            output_hidden_states,
            deterministic,
        )
        prediction = self.cls.predictions(out.last_hidden_state, self._word_embeddings())
        relationship = self.cls.seq_relationship(out.pooler_output)
        loss = None
        if labels is not None and next_sentence_label is not None:
            loss = cross_entropy(prediction, labels) + cross_entropy(
                relationship, jnp.reshape(next_sentence_label, (-1,))
            )
        return _finish(
            BertForPreTrainingOutput(
                loss=loss,
                prediction_logits=prediction,
                seq_relationship_logits=relationship,
                hidden_states=out.hidden_states,
                attentions=out.attentions,
            ),
            return_dict,
        )


class BertLMHeadModel(_HeadBase):
    """Causal language model (config.is_decoder=True): next-token logits, KV cache, greedy :meth:`generate`."""

    head_name = "BertLMHeadModel"

    def _build_head(self, config, kw):
        self.cls = BertOnlyMLMHead(config, **kw)

    def init_cache(self, batch_size: int, max_length: int) -> BertKVCache:
        """Empty fixed-size cache (see :meth:`BertModel.init_cache`)."""
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
        deterministic: bool = True,
    ):
        """Returns CausalLMOutputWithCrossAttentions: logits (b, s, vocab); loss compares logits[:, :-1] with
        labels[:, 1:] (-100 ignored); past_key_values as given (legacy tuple or BertKVCache) when caching."""
        output_attentions, output_hidden_states, return_dict = self._flags(
            output_attentions, output_hidden_states, return_dict
        )
        if labels is not None:
            use_cache = False  # as HF: a training call builds no cache
        out = self._bert(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            head_mask,
            inputs_embeds,
            output_attentions,
            output_hidden_states,
            deterministic,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            past_key_values=past_key_values,
            use_cache=use_cache,
        )
        logits = self.cls.predictions(out.last_hidden_state, self._word_embeddings())
        loss = None
        if labels is not None:
            loss = cross_entropy(logits[:, :-1], jnp.asarray(labels)[:, 1:])
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
        max_new_tokens: int = 20,
        eos_token_id: Optional[int] = None,
        pad_token_id: Optional[int] = None,
    ) -> Array:
        """Greedy decoding under ``jit`` with a fixed-size cache.

        input_ids: int (b, s) prompt (no padding). Returns int32 (b, s + max_new_tokens); after a sequence emits
        ``eos_token_id`` the rest of it is ``pad_token_id`` (default config.pad_token_id), as HF pads finished rows.
        """
        if not self.config.is_decoder:
            raise ValueError("generate needs config.is_decoder=True")
        validate_inputs(self.config, input_ids=input_ids)
        batch, seq_len = _shape(input_ids)
        validation.check_sequence_length(seq_len + max_new_tokens, 0, self.config.max_position_embeddings)
        pad = self.config.pad_token_id if pad_token_id is None else pad_token_id
        graphdef, state = nnx.split(self)
        return _greedy_generate(
            graphdef,
            state,
            jnp.asarray(input_ids, jnp.int32),
            int(max_new_tokens),
            -1 if eos_token_id is None else int(eos_token_id),
            int(pad or 0),
        )


@functools.partial(jax.jit, static_argnums=(0, 3, 4, 5))
def _greedy_generate(graphdef, state, input_ids, max_new_tokens, eos_token_id, pad_token_id):
    model = nnx.merge(graphdef, state)
    batch, seq_len = input_ids.shape
    out = model(input_ids, past_key_values=model.init_cache(batch, seq_len + max_new_tokens), use_cache=True)
    first = jnp.argmax(out.logits[:, -1], axis=-1).astype(jnp.int32)

    def step(i, carry):
        tokens, token, done, cache = carry
        token = jnp.where(done, pad_token_id, token)
        tokens = tokens.at[:, i].set(token)
        done = done | (token == eos_token_id)
        # the last iteration's forward is wasted, which keeps the loop body uniform
        step_out = model(token[:, None], past_key_values=cache, use_cache=True)
        return tokens, jnp.argmax(step_out.logits[:, -1], axis=-1).astype(jnp.int32), done, step_out.past_key_values

    tokens = jnp.zeros((batch, max_new_tokens), jnp.int32)
    carry = (tokens, first, jnp.zeros((batch,), bool), out.past_key_values)
    tokens = jax.lax.fori_loop(0, max_new_tokens, step, carry)[0]
    return jnp.concatenate([input_ids, tokens], axis=1)


class BertForMaskedLM(_HeadBase):
    """Masked language model: logits (b, s, vocab); loss = cross-entropy over labels != -100."""

    head_name = "BertForMaskedLM"

    def _build_head(self, config, kw):
        self.cls = BertOnlyMLMHead(config, **kw)

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
        deterministic: bool = True,
    ):
        """Returns MaskedLMOutput."""
        output_attentions, output_hidden_states, return_dict = self._flags(
            output_attentions, output_hidden_states, return_dict
        )
        out = self._bert(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            head_mask,
            inputs_embeds,
            output_attentions,
            output_hidden_states,
            deterministic,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            use_cache=False,
        )
        logits = self.cls.predictions(out.last_hidden_state, self._word_embeddings())
        loss = cross_entropy(logits, labels) if labels is not None else None
        return _finish(
            MaskedLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions),
            return_dict,
        )


class BertForNextSentencePrediction(_HeadBase):
    """Next-sentence head on the pooled output: logits (b, 2); ``labels`` (b,) (alias ``next_sentence_label``)."""

    head_name = "BertForNextSentencePrediction"

    def _build_head(self, config, kw):
        self.cls = BertOnlyNSPHead(config, **kw)

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
        deterministic: bool = True,
        next_sentence_label=None,
    ):
        """Returns NextSentencePredictorOutput."""
        if labels is None:
            labels = next_sentence_label  # HF's deprecated spelling
        output_attentions, output_hidden_states, return_dict = self._flags(
            output_attentions, output_hidden_states, return_dict
        )
        out = self._bert(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            head_mask,
            inputs_embeds,
            output_attentions,
            output_hidden_states,
            deterministic,
        )
        logits = self.cls.seq_relationship(out.pooler_output)
        loss = cross_entropy(logits, jnp.reshape(labels, (-1,))) if labels is not None else None
        return _finish(
            NextSentencePredictorOutput(
                loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
            ),
            return_dict,
        )


class BertForSequenceClassification(_HeadBase):
    """Classifier on the pooled output: logits (b, num_labels).

    Loss by ``bert_core.validation.resolve_problem_type``: regression (MSE; labels float (b,)), single-label
    (cross-entropy; labels int (b,)) or multi-label (BCE with logits; labels float (b, num_labels)).
    """

    head_name = "BertForSequenceClassification"

    def _build_head(self, config, kw):
        self.dropout = nnx.Dropout(config.classifier_dropout_prob, rngs=kw["rngs"])
        self.classifier = _Linear(
            config.hidden_size, config.num_labels, dtype=kw["dtype"], param_dtype=kw["param_dtype"], rngs=kw["rngs"]
        )

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
        deterministic: bool = True,
    ):
        """Returns SequenceClassifierOutput."""
        output_attentions, output_hidden_states, return_dict = self._flags(
            output_attentions, output_hidden_states, return_dict
        )
        out = self._bert(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            head_mask,
            inputs_embeds,
            output_attentions,
            output_hidden_states,
            deterministic,
        )
        logits = self.classifier(self.dropout(out.pooler_output, deterministic=deterministic))
        loss = None
        if labels is not None:
            labels = jnp.asarray(labels)
            problem = validation.resolve_problem_type(self.config, jnp.issubdtype(labels.dtype, jnp.integer))
            if problem == "regression":
                x = jnp.asarray(logits, jnp.float32)
                y = labels.astype(jnp.float32)
                if self.config.num_labels == 1:
                    x, y = jnp.squeeze(x), jnp.squeeze(y)
                loss = jnp.mean((x - y) ** 2)
            elif problem == "single_label_classification":
                loss = cross_entropy(logits.reshape(-1, self.config.num_labels), labels.reshape(-1))
            else:
                loss = _bce_with_logits(logits, labels)
        return _finish(
            SequenceClassifierOutput(
                loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
            ),
            return_dict,
        )


class BertForMultipleChoice(_HeadBase):
    """Scores each of the choices: inputs (b, c, s) are flattened to (b*c, s); logits (b, c); labels int (b,)."""

    head_name = "BertForMultipleChoice"

    def _build_head(self, config, kw):
        self.dropout = nnx.Dropout(config.classifier_dropout_prob, rngs=kw["rngs"])
        self.classifier = _Linear(
            config.hidden_size, 1, dtype=kw["dtype"], param_dtype=kw["param_dtype"], rngs=kw["rngs"]
        )

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
        deterministic: bool = True,
    ):
        """Returns MultipleChoiceModelOutput."""
        output_attentions, output_hidden_states, return_dict = self._flags(
            output_attentions, output_hidden_states, return_dict
        )
        for name, value in (
            ("input_ids", input_ids),
            ("attention_mask", attention_mask),
            ("token_type_ids", token_type_ids),
            ("position_ids", position_ids),
        ):
            validation.check_multiple_choice_shape(name, None if value is None else _shape(value))
        validation.check_multiple_choice_shape(
            "inputs_embeds", None if inputs_embeds is None else _shape(inputs_embeds), 4
        )
        num_choices = _shape(input_ids)[1] if input_ids is not None else _shape(inputs_embeds)[1]

        def flat(x):
            return None if x is None else jnp.reshape(jnp.asarray(x), (-1, x.shape[-1]))

        embeds = (
            None
            if inputs_embeds is None
            else jnp.reshape(jnp.asarray(inputs_embeds), (-1,) + _shape(inputs_embeds)[-2:])
        )
        out = self._bert(
            flat(input_ids),
            flat(attention_mask),
            flat(token_type_ids),
            flat(position_ids),
            head_mask,
            embeds,
            output_attentions,
            output_hidden_states,
            deterministic,
        )
        logits = self.classifier(self.dropout(out.pooler_output, deterministic=deterministic)).reshape(-1, num_choices)
        loss = cross_entropy(logits, jnp.reshape(labels, (-1,))) if labels is not None else None
        return _finish(
            MultipleChoiceModelOutput(
                loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
            ),
            return_dict,
        )


class BertForTokenClassification(_HeadBase):
    """Per-token classifier: logits (b, s, num_labels); labels int (b, s), -100 ignored."""

    head_name = "BertForTokenClassification"

    def _build_head(self, config, kw):
        self.dropout = nnx.Dropout(config.classifier_dropout_prob, rngs=kw["rngs"])
        self.classifier = _Linear(
            config.hidden_size, config.num_labels, dtype=kw["dtype"], param_dtype=kw["param_dtype"], rngs=kw["rngs"]
        )

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
        deterministic: bool = True,
    ):
        """Returns TokenClassifierOutput."""
        output_attentions, output_hidden_states, return_dict = self._flags(
            output_attentions, output_hidden_states, return_dict
        )
        out = self._bert(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            head_mask,
            inputs_embeds,
            output_attentions,
            output_hidden_states,
            deterministic,
        )
        logits = self.classifier(self.dropout(out.last_hidden_state, deterministic=deterministic))
        loss = None
        if labels is not None:
            loss = cross_entropy(logits.reshape(-1, self.config.num_labels), jnp.reshape(labels, (-1,)))
        return _finish(
            TokenClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions),
            return_dict,
        )


class BertForQuestionAnswering(_HeadBase):
    """Span extraction: start_logits, end_logits (b, s). Positions int (b,) are clamped to [0, s]; s is ignored."""

    head_name = "BertForQuestionAnswering"

    def _build_head(self, config, kw):
        validation.check_qa_num_labels(config)
        self.qa_outputs = _Linear(
            config.hidden_size, config.num_labels, dtype=kw["dtype"], param_dtype=kw["param_dtype"], rngs=kw["rngs"]
        )

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
        deterministic: bool = True,
    ):
        """Returns QuestionAnsweringModelOutput; loss = (start CE + end CE) / 2 when both positions are given."""
        output_attentions, output_hidden_states, return_dict = self._flags(
            output_attentions, output_hidden_states, return_dict
        )
        out = self._bert(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            head_mask,
            inputs_embeds,
            output_attentions,
            output_hidden_states,
            deterministic,
        )
        logits = self.qa_outputs(out.last_hidden_state)
        start_logits, end_logits = logits[..., 0], logits[..., 1]
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored = start_logits.shape[1]

            def positions(p):
                p = jnp.asarray(p)
                p = p.squeeze(-1) if p.ndim > 1 else p
                return jnp.clip(p, 0, ignored)

            loss = (
                cross_entropy(start_logits, positions(start_positions), ignore_index=ignored)
                + cross_entropy(end_logits, positions(end_positions), ignore_index=ignored)
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


ALL_CLASSES = (
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


def canonical_grads(
    model: BertPreTrainedModel, inputs: Mapping[str, Any]
) -> Tuple[float, "OrderedDict[str, np.ndarray]"]:
    """Loss and its gradient per canonical weight name (float32 numpy, PyTorch layout), dropout off.

    ``inputs`` holds the forward keyword arguments, labels included. The tied decoder's gradient is part of
    ``word_embeddings`` (one shared parameter).
    """
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss_fn(p):
        return nnx.merge(graphdef, p, rest)(**inputs, deterministic=True, return_dict=True).loss

    loss, grads = jax.value_and_grad(loss_fn)(params)
    return float(loss), nnx.merge(graphdef, grads, rest).canonical_weights()
