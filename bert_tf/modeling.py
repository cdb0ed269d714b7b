"""BERT in Keras 3 on the TensorFlow backend, numerically equal to HF transformers 4.57 ``modeling_bert``.

Read top to bottom: backend selection, activations, input checks, masks and losses, then the layer ladder named like
the checkpoint (``embeddings``, ``encoder.layer.{i}.attention.self.query`` ...), then ``BertModel``, the shared model
machinery (weights in and out through ``bert_core``, Keras training and serving), and the eight heads. Every weight
name, shape, initial value, output class and input check comes from ``bert_core``; this file only computes.

Weights are mapped mechanically: for every entry of ``bert_core.weights.stored_weights(config, head)``, the attribute
path of ``bert_core.weights.backend_path(spec, "tf")`` (a ``getattr`` walk, numeric parts indexing ``layer``)
reaches the ``keras.Variable``; linear kernels are stored transposed (Keras ``(in, out)``), everything else as is.

Shapes below: B batch, S new sequence length, P cached (past) length, K = P + S key length, E encoder length,
H hidden size, N heads, D head size (H / N), V vocab size, C choices.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import os
import sys
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np

# Keras 3 picks its backend once, at import: select TensorFlow unless the process already chose another one.
_BACKEND_HELP = (
    "bert_tf needs Keras 3 on the TensorFlow backend; set the environment variable KERAS_BACKEND=tensorflow "
    "before keras is first imported (or import bert_tf before keras)"
)


class _NoJax:
    """Import-time guard: TensorFlow's TFLite helpers try ``from jax import jit`` (inside try/except ImportError).
    bert_tf must not load jax, so that optional import is refused while keras/tensorflow load."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "jax" or name.startswith("jax."):
            raise ImportError("jax is not imported by bert_tf")
        return None


_guard = None if "jax" in sys.modules else _NoJax()
if _guard is not None:
    sys.meta_path.insert(0, _guard)
try:
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != "tensorflow":
            raise ImportError(
                f"keras was already imported with the {keras.backend.backend()!r} backend. {_BACKEND_HELP}"
            )
    else:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        if os.environ["KERAS_BACKEND"] != "tensorflow":
            raise ImportError(f"KERAS_BACKEND={os.environ['KERAS_BACKEND']!r} is selected. {_BACKEND_HELP}")
        import keras

        if keras.backend.backend() != "tensorflow":  # e.g. a ~/.keras/keras.json that overrides the default
            raise ImportError(f"keras selected the {keras.backend.backend()!r} backend. {_BACKEND_HELP}")
    import tensorflow as tf
finally:
    if _guard is not None:
        sys.meta_path.remove(_guard)

from bert_core import validation  # noqa: E402
from bert_core.checkpoint import aligned_copy, load_head_weights, release_pages  # noqa: E402
from bert_core.checkpoint import save_pretrained as _save_checkpoint  # noqa: E402
from bert_core.config import BertConfig  # noqa: E402
from bert_core.init import complete_weights, init_weights  # noqa: E402
from bert_core.outputs import (  # noqa: E402
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
)
from bert_core.weights import (  # noqa: E402
    backend_path,
    check_weights_match,
    from_backend_array,
    stored_weights,
    to_backend_array,
)

_RELATIVE = ("relative_key", "relative_key_query")


def _register(cls):
    """Every class is registered so that ``keras.models.load_model`` finds it in a ``.keras`` file."""
    return keras.saving.register_keras_serializable(package="bert_tf")(cls)


def _dense(units: int, name: str, use_bias: bool = True) -> keras.layers.Dense:
    # zeros: every variable is overwritten from bert_core's seeded init (or a checkpoint) right after building
    return keras.layers.Dense(units, use_bias=use_bias, kernel_initializer="zeros", name=name)


def _layer_norm(config: BertConfig) -> keras.layers.LayerNormalization:
    return keras.layers.LayerNormalization(epsilon=config.layer_norm_eps, name="LayerNorm")


def _linear(dense: keras.layers.Dense, x: tf.Tensor) -> tf.Tensor:
    """``dense(x)`` for a 2-D ``x`` (rows, in) -> (rows, out) as a plain MatMul + BiasAdd on the layer's variables.

    Same math as calling the Keras layer, but the graph is ``MatMul -> BiasAdd`` with nothing in between, which
    grappler's remapper fuses (together with a following exact GELU or residual ``AddV2``) into one oneDNN kernel;
    Keras 3's Dense on 3-D inputs puts reshapes between MatMul and the bias add, so nothing fuses."""
    if getattr(dense, "quantization_mode", None) or getattr(dense, "lora_enabled", False):
        return dense(x)
    dtype = dense.compute_dtype
    y = tf.matmul(tf.cast(x, dtype), tf.cast(dense.kernel, dtype))
    if dense.bias is not None:
        y = tf.nn.bias_add(y, tf.cast(dense.bias, dtype))
    return y


def _rows(x: tf.Tensor) -> tf.Tensor:
    """(..., features) -> (rows, features); reshapes are free and grappler folds consecutive ones."""
    return tf.reshape(x, (-1, _shape_list(x)[-1]))


def _unrows(y: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """(rows, out) -> like's leading dims + (out,)."""
    return tf.reshape(y, _shape_list(like)[:-1] + [_shape_list(y)[-1]])


def _dense_nd(dense: keras.layers.Dense, x: tf.Tensor) -> tf.Tensor:
    """``dense(x)`` for any rank >= 2, through the fusable 2-D form."""
    return _unrows(_linear(dense, _rows(x)), x)


def _shape_list(x: tf.Tensor) -> list:
    """Static dims where known, dynamic scalars elsewhere (works eagerly, in tf.function and under XLA)."""
    static = x.shape.as_list()
    dynamic = tf.shape(x)
    return [dynamic[i] if s is None else s for i, s in enumerate(static)]


def _to_tensor(x: Any, dtype: Optional[tf.DType] = None) -> Optional[tf.Tensor]:
    if x is None:
        return None
    t = tf.convert_to_tensor(x)
    if dtype is not None and t.dtype != dtype:
        t = tf.cast(t, dtype)
    return t


# -------------------------------------------------------------------------------------------------------- activations

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)


def _gelu_erf(x: tf.Tensor) -> tf.Tensor:
    # exact (erf) GELU. Written as ``x * (1/sqrt 2)`` (not ``x / sqrt 2``, which differs only by float rounding) so that
    # TensorFlow's grappler remapper recognises the pattern and fuses MatMul + BiasAdd + GELU into one oneDNN kernel.
    return 0.5 * x * (1.0 + tf.math.erf(x * _INV_SQRT_2))


def _gelu_tanh(x: tf.Tensor) -> tf.Tensor:
    return 0.5 * x * (1.0 + tf.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * tf.pow(x, 3.0))))


ACT2FN = {
    "gelu": _gelu_erf,
    "gelu_python": _gelu_erf,
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu_fast": lambda x: 0.5 * x * (1.0 + tf.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x))),
    "quick_gelu": lambda x: x * tf.sigmoid(1.702 * x),
    "relu": tf.nn.relu,
    "silu": tf.nn.silu,
    "swish": tf.nn.silu,
    "tanh": tf.tanh,
    "mish": lambda x: x * tf.tanh(tf.math.softplus(x)),
}


# ------------------------------------------------------------------------------------------------------- input checks


def _array_info(x: Any, values: bool) -> Optional[validation.ArrayInfo]:
    """Shape (None for dims unknown while tracing), dtype kind, and the min/max of an integer ``x`` when ``values``
    and the tensor is concrete (eager, non-empty). None for an input not given."""
    if x is None:
        return None
    if not isinstance(x, (tf.Tensor, tf.Variable, keras.Variable, np.ndarray)):
        x = np.asarray(x)  # nested Python lists
    dtype = tf.as_dtype(x.dtype)
    if dtype.is_floating:
        kind = "f"
    elif dtype.is_complex:
        kind = "c"
    elif dtype.is_bool:
        kind = "b"
    elif dtype.is_integer:
        kind = "u" if dtype.is_unsigned else "i"
    else:
        kind = ""
    shape = tuple(x.shape.as_list()) if isinstance(x, tf.Tensor) else tuple(x.shape)
    low = high = None
    if values and kind in ("i", "u") and tf.executing_eagerly() and int(tf.size(x)) > 0:
        low, high = int(tf.reduce_min(x)), int(tf.reduce_max(x))
    return validation.ArrayInfo(shape, kind, low, high)


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
    """``bert_core.validation.check_inputs`` on these inputs (id ranges only when executing eagerly)."""
    with _as_raised():
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
            has_cache=past_key_values is not None,
            past_length=0 if past_key_values is None else _array_info(past_key_values[0][0], False).shape[2],
        )


def _check_labels(config: BertConfig, head: str, name: str, labels: Any, logits: tf.Tensor) -> None:
    """``bert_core.validation.check_labels`` on one label tensor of a head whose logits are (B, S, ...) or (B, C);
    values (class ids in range) only when executing eagerly."""
    if labels is None:
        return
    info = _array_info(labels, values=False)
    values = np.asarray(labels) if tf.executing_eagerly() else None
    batch, second = logits.shape.as_list()[:2]
    with _as_raised():
        validation.check_labels(
            config, head, name, info.shape, info.kind, values, batch=batch, seq_len=second, num_choices=second
        )


@contextlib.contextmanager
def _as_raised():
    """bert_core's errors already name the argument, value and range: mark them so that Keras does not re-raise
    them wrapped in its "Exception encountered when calling ..." dump of every call argument (Keras skips the
    wrapping for an exception carrying ``_keras_call_info_injected``); the message stays the same in all backends."""
    try:
        yield
    except (ValueError, TypeError) as err:
        err._keras_call_info_injected = True
        raise


# --------------------------------------------------------------------------------------------------- masks and losses


def _extended_attention_mask(config: BertConfig, attention_mask, seq_len, past_length, dtype: tf.DType) -> tf.Tensor:
    """1/0 mask (B, K) or (B, S, K) or (B, 1|N, S, K) -> additive (B, 1, 1|S, K) in ``dtype``: 0 keep, dtype.min drop.

    A decoder's rank-2 mask is combined with the causal mask: query i sits at absolute position P + i and sees keys
    0..P+i."""
    # expand_dims, not ``mask[:, None, None, :]``: the new-axis StridedSlice has no TFLite builtin kernel
    mask = tf.cast(attention_mask, dtype)
    if mask.shape.rank == 3:
        mask = tf.expand_dims(mask, 1)
    elif mask.shape.rank == 2:
        mask = tf.expand_dims(tf.expand_dims(mask, 1), 1)  # (B, 1, 1, K)
        if config.is_decoder:
            key_len = _shape_list(mask)[3]
            causal = tf.expand_dims(tf.range(key_len), 0) <= tf.expand_dims(tf.range(seq_len) + past_length, 1)
            mask = tf.cast(causal, dtype) * mask  # (S, K) * (B, 1, 1, K)
    return (1.0 - mask) * dtype.min


def _encoder_attention_mask(mask, dtype: tf.DType) -> tf.Tensor:
    """1/0 encoder mask (B, E) or (B, S, E) (or 4-D) -> additive (B, 1, 1|S, E) in ``dtype``."""
    mask = tf.cast(mask, dtype)
    if mask.shape.rank == 3:
        mask = mask[:, None, :, :]
    elif mask.shape.rank == 2:
        mask = mask[:, None, None, :]
    return (1.0 - mask) * dtype.min


def _head_mask(head_mask, num_layers: int, dtype: tf.DType) -> Optional[tf.Tensor]:
    """(N,) or (L, N) with 1 keep / 0 drop -> (L, 1, N, 1, 1) multiplying each layer's probabilities; None stays."""
    if head_mask is None:
        return None
    head_mask = tf.cast(head_mask, dtype)
    if head_mask.shape.rank == 1:
        head_mask = tf.tile(head_mask[None, :], (num_layers, 1))
    return head_mask[:, None, :, None, None]


def _cross_entropy(logits: tf.Tensor, labels: Any, ignore_index: Any = -100) -> tf.Tensor:
    """Mean cross-entropy (float32) over the labels that are not ``ignore_index`` (NaN when all are, as PyTorch).

    logits: float (..., classes), reshaped to (-1, classes); labels: int (...)."""
    logits = tf.reshape(tf.cast(logits, tf.float32), (-1, _shape_list(logits)[-1]))
    labels = tf.reshape(tf.cast(labels, tf.int32), [-1])
    valid = tf.not_equal(labels, tf.cast(ignore_index, tf.int32))
    # sparse CE rejects out-of-range labels on CPU: feed a harmless 0 where the label is ignored
    per_token = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.where(valid, labels, 0), logits=logits)
    per_token = tf.where(valid, per_token, 0.0)
    return tf.reduce_sum(per_token) / tf.reduce_sum(tf.cast(valid, per_token.dtype))


def _mse(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.square(a - tf.cast(b, a.dtype)))


def _bce_with_logits(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(labels, logits.dtype), logits=logits))


# --------------------------------------------------------------------------------------------------------- the ladder


@_register
class BertEmbeddings(keras.layers.Layer):
    """word + token type (+ absolute position) embeddings, then LayerNorm and dropout -> float (B, S, H)."""

    def __init__(self, config: BertConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.word_embeddings = keras.layers.Embedding(
            config.vocab_size, config.hidden_size, embeddings_initializer="zeros", name="word_embeddings"
        )
        self.position_embeddings = keras.layers.Embedding(
            config.max_position_embeddings,
            config.hidden_size,
            embeddings_initializer="zeros",
            name="position_embeddings",
        )
        self.token_type_embeddings = keras.layers.Embedding(
            config.type_vocab_size, config.hidden_size, embeddings_initializer="zeros", name="token_type_embeddings"
        )
        self.LayerNorm = _layer_norm(config)
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob, name="dropout")
        self.position_embedding_type = config.position_embedding_type

    def build(self, input_shape: Any = None) -> None:
        for embedding in (self.word_embeddings, self.position_embeddings, self.token_type_embeddings):
            embedding.build(None)
        self.LayerNorm.build((None, None, self.config.hidden_size))

    def call(
        self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None, past_length=0, training=False
    ):
        """input_ids int (B, S) or inputs_embeds float (B, S, H); position_ids default to P..P+S-1."""
        if inputs_embeds is None:
            inputs_embeds = tf.gather(self.word_embeddings.embeddings, input_ids)
        batch, seq = _shape_list(inputs_embeds)[:2]
        if token_type_ids is None:
            token_type_ids = tf.zeros((batch, seq), tf.int32)
        embeddings = inputs_embeds + tf.gather(self.token_type_embeddings.embeddings, token_type_ids)
        if self.position_embedding_type == "absolute":
            if position_ids is None:
                position_ids = tf.range(past_length, past_length + seq)[None, :]
            embeddings = embeddings + tf.gather(self.position_embeddings.embeddings, position_ids)
        return self.dropout(self.LayerNorm(embeddings), training=training)


@_register
class BertSelfAttention(keras.layers.Layer):
    """Multi-head scaled dot-product attention with optional relative positions and a key/value cache."""

    def __init__(self, config: BertConfig, position_embedding_type: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.head_dim
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.query = _dense(self.all_head_size, "query")
        self.key = _dense(self.all_head_size, "key")
        self.value = _dense(self.all_head_size, "value")
        self.dropout = keras.layers.Dropout(config.attention_probs_dropout_prob, name="dropout")
        self.position_embedding_type = position_embedding_type or config.position_embedding_type
        self.max_position_embeddings = config.max_position_embeddings
        if self.position_embedding_type in _RELATIVE:
            self.distance_embedding = keras.layers.Embedding(
                2 * config.max_position_embeddings - 1,
                self.attention_head_size,
                embeddings_initializer="zeros",
                name="distance_embedding",
            )

    def build(self, input_shape: Any = None) -> None:
        for dense in (self.query, self.key, self.value):
            dense.build((None, self.config.hidden_size))
        if self.position_embedding_type in _RELATIVE:
            self.distance_embedding.build(None)

    def _heads(self, x: tf.Tensor) -> tf.Tensor:
        # (B, L, N*D) -> (B, N, L, D)
        batch, length = _shape_list(x)[:2]
        x = tf.reshape(x, (batch, length, self.num_attention_heads, self.attention_head_size))
        return tf.transpose(x, (0, 2, 1, 3))

    def call(
        self,
        hidden_states,
        attention_mask=None,
        head_mask=None,
        encoder_hidden_states=None,
        past_key_value=None,
        cache_active=False,
        output_attentions=False,
        training=False,
    ):
        """hidden_states float (B, S, H); attention_mask additive float broadcastable to (B, N, S, K).

        For cross-attention ``past_key_value`` holds the encoder keys/values, reused instead of recomputed.

        Returns:
            (context float (B, S, H), probs float (B, N, S, K) or None, (keys, values) each (B, N, K, D)).
        """
        query = self._heads(_dense_nd(self.query, hidden_states))
        is_cross = encoder_hidden_states is not None
        if is_cross and past_key_value is not None:
            key, value = past_key_value
        else:
            source = encoder_hidden_states if is_cross else hidden_states
            key, value = self._heads(_dense_nd(self.key, source)), self._heads(_dense_nd(self.value, source))
            if past_key_value is not None:
                key = tf.concat([tf.cast(past_key_value[0], key.dtype), key], axis=2)
                value = tf.concat([tf.cast(past_key_value[1], value.dtype), value], axis=2)

        scores = tf.matmul(query, key, transpose_b=True)
        if self.position_embedding_type in _RELATIVE:
            q_len, k_len = _shape_list(query)[2], _shape_list(key)[2]
            if cache_active:
                # HF 4.57 places every query at the last key position whenever a cache object exists.
                left = tf.fill((q_len, 1), k_len - 1)
            else:
                left = tf.range(q_len)[:, None]
            right = tf.range(k_len)[None, :]
            distance = tf.gather(self.distance_embedding.embeddings, left - right + self.max_position_embeddings - 1)
            distance = tf.cast(distance, query.dtype)
            scores = scores + tf.einsum("bhld,lrd->bhlr", query, distance)
            if self.position_embedding_type == "relative_key_query":
                scores = scores + tf.einsum("bhrd,lrd->bhlr", key, distance)
        scores = scores / math.sqrt(self.attention_head_size)
        if attention_mask is not None:
            scores = scores + attention_mask
        probs = self.dropout(tf.nn.softmax(scores, axis=-1), training=training)
        if head_mask is not None:
            probs = probs * head_mask
        context = tf.matmul(probs, value)
        batch, _, seq, _ = _shape_list(context)
        context = tf.reshape(tf.transpose(context, (0, 2, 1, 3)), (batch, seq, self.all_head_size))
        return context, (probs if output_attentions else None), (key, value)


@_register
class BertSelfOutput(keras.layers.Layer):
    """dense + dropout + residual LayerNorm after attention: float (B, S, H) -> (B, S, H)."""

    def __init__(self, config: BertConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.dense = _dense(config.hidden_size, "dense")
        self.LayerNorm = _layer_norm(config)
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob, name="dropout")

    def build(self, input_shape: Any = None) -> None:
        self.dense.build((None, self.config.hidden_size))
        self.LayerNorm.build((None, None, self.config.hidden_size))

    def call(self, hidden_states, input_tensor, training=False):
        # 2-D MatMul + BiasAdd (+ dropout, identity at inference) + residual: one fused oneDNN kernel at inference
        hidden_states = self.dropout(_linear(self.dense, _rows(hidden_states)), training=training)
        return self.LayerNorm(_unrows(hidden_states + _rows(input_tensor), input_tensor))


@_register
class BertAttention(keras.layers.Layer):
    """Self- or cross-attention block: ``self`` (projections) and ``output`` (dense + LayerNorm)."""

    def __init__(self, config: BertConfig, position_embedding_type: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.self = BertSelfAttention(config, position_embedding_type, name="self")
        # Keras layers already have a read-only ``output`` property (symbolic graphs only); shadowed below.
        self._output_layer = BertSelfOutput(config, name="output")

    @property
    def output(self) -> BertSelfOutput:  # type: ignore[override]
        return self._output_layer

    def build(self, input_shape: Any = None) -> None:
        self.self.build()
        self.output.build()

    def call(
        self,
        hidden_states,
        attention_mask=None,
        head_mask=None,
        encoder_hidden_states=None,
        past_key_value=None,
        cache_active=False,
        output_attentions=False,
        training=False,
    ):
        context, probs, present = self.self(
            hidden_states,
            attention_mask,
            head_mask,
            encoder_hidden_states,
            past_key_value,
            cache_active=cache_active,
            output_attentions=output_attentions,
            training=training,
        )
        return self.output(context, hidden_states, training=training), probs, present


@_register
class BertIntermediate(keras.layers.Layer):
    """dense H -> intermediate_size, then config.hidden_act."""

    def __init__(self, config: BertConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.dense = _dense(config.intermediate_size, "dense")
        self.intermediate_act_fn = ACT2FN[config.hidden_act]

    def build(self, input_shape: Any = None) -> None:
        self.dense.build((None, self.config.hidden_size))

    def call(self, hidden_states):
        # activation applied to the 2-D MatMul + BiasAdd so that an exact GELU fuses into the oneDNN matmul
        return _unrows(self.intermediate_act_fn(_linear(self.dense, _rows(hidden_states))), hidden_states)


@_register
class BertOutput(keras.layers.Layer):
    """dense intermediate_size -> H, dropout, residual LayerNorm."""

    def __init__(self, config: BertConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.dense = _dense(config.hidden_size, "dense")
        self.LayerNorm = _layer_norm(config)
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob, name="dropout")

    def build(self, input_shape: Any = None) -> None:
        self.dense.build((None, self.config.intermediate_size))
        self.LayerNorm.build((None, None, self.config.hidden_size))

    def call(self, hidden_states, input_tensor, training=False):
        # 2-D MatMul + BiasAdd (+ dropout, identity at inference) + residual: one fused oneDNN kernel at inference
        hidden_states = self.dropout(_linear(self.dense, _rows(hidden_states)), training=training)
        return self.LayerNorm(_unrows(hidden_states + _rows(input_tensor), input_tensor))


@_register
class BertLayer(keras.layers.Layer):
    """attention (+ crossattention in decoders with add_cross_attention) + feed-forward, optionally chunked."""

    def __init__(self, config: BertConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chunk_size_feed_forward = config.chunk_size_feed_forward
        self.attention = BertAttention(config, name="attention")
        if config.add_cross_attention:
            if not config.is_decoder:
                raise ValueError("add_cross_attention=True needs is_decoder=True (cross-attention is for decoders)")
            self.crossattention = BertAttention(config, position_embedding_type="absolute", name="crossattention")
        self.intermediate = BertIntermediate(config, name="intermediate")
        self._output_layer = BertOutput(config, name="output")

    @property
    def output(self) -> BertOutput:  # type: ignore[override]
        return self._output_layer

    def build(self, input_shape: Any = None) -> None:
        self.attention.build()
        if hasattr(self, "crossattention"):
            self.crossattention.build()
        self.intermediate.build()
        self.output.build()

    def call(
        self,
        hidden_states,
        attention_mask=None,
        head_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        past_key_value=None,
        cache_active=False,
        output_attentions=False,
        training=False,
    ):
        """Returns (hidden float (B, S, H), self probs or None, cross probs or None, present cache entry)."""
        attention_output, self_probs, present = self.attention(
            hidden_states,
            attention_mask,
            head_mask,
            None,
            None if past_key_value is None else tuple(past_key_value[:2]),
            cache_active=cache_active,
            output_attentions=output_attentions,
            training=training,
        )
        cross_probs = None
        if encoder_hidden_states is not None:
            cross_past = tuple(past_key_value[2:]) if past_key_value is not None and len(past_key_value) == 4 else None
            attention_output, cross_probs, cross_present = self.crossattention(
                attention_output,
                encoder_attention_mask,
                head_mask,
                encoder_hidden_states,
                cross_past,
                cache_active=cache_active,
                output_attentions=output_attentions,
                training=training,
            )
            present = present + cross_present
        chunk = self.chunk_size_feed_forward
        seq_len = attention_output.shape[1]
        if chunk and chunk > 0 and seq_len is not None and seq_len > chunk:
            # Position-wise feed-forward: chunks along the sequence give the same result with less peak memory
            # (static lengths only, so the split sizes are known when tracing).
            sizes = [chunk] * (seq_len // chunk) + ([seq_len % chunk] if seq_len % chunk else [])
            pieces = [self._feed_forward(part, training) for part in tf.split(attention_output, sizes, axis=1)]
            layer_output = tf.concat(pieces, axis=1)
        else:
            layer_output = self._feed_forward(attention_output, training)
        return layer_output, self_probs, cross_probs, present

    def _feed_forward(self, attention_output: tf.Tensor, training: bool) -> tf.Tensor:
        return self.output(self.intermediate(attention_output), attention_output, training=training)


@_register
class BertEncoder(keras.layers.Layer):
    """The stack ``layer[0..L-1]``, applied in order."""

    def __init__(self, config: BertConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.layer = [BertLayer(config, name=f"layer.{i}") for i in range(config.num_hidden_layers)]

    def build(self, input_shape: Any = None) -> None:
        for layer in self.layer:
            layer.build()

    def call(
        self,
        hidden_states,
        attention_mask=None,
        head_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        past_key_values=None,
        use_cache=False,
        cache_active=False,
        output_attentions=False,
        output_hidden_states=False,
        training=False,
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        all_hidden = () if output_hidden_states else None
        all_self = () if output_attentions else None
        all_cross = () if output_attentions and self.config.add_cross_attention else None
        presents = () if use_cache else None
        for i, layer in enumerate(self.layer):
            if output_hidden_states:
                all_hidden = all_hidden + (hidden_states,)
            hidden_states, self_probs, cross_probs, present = layer(
                hidden_states,
                attention_mask,
                None if head_mask is None else head_mask[i],
                encoder_hidden_states,
                encoder_attention_mask,
                None if past_key_values is None else past_key_values[i],
                cache_active=cache_active,
                output_attentions=output_attentions,
                training=training,
            )
            if use_cache:
                presents = presents + (present,)
            if output_attentions:
                all_self = all_self + (self_probs,)
                if all_cross is not None and cross_probs is not None:
                    all_cross = all_cross + (cross_probs,)
        if output_hidden_states:
            all_hidden = all_hidden + (hidden_states,)
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states,
            past_key_values=presents,
            hidden_states=all_hidden,
            attentions=all_self,
            cross_attentions=all_cross or None,
        )


@_register
class BertPooler(keras.layers.Layer):
    """tanh(dense(first token)): float (B, S, H) -> (B, H)."""

    def __init__(self, config: BertConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.dense = _dense(config.hidden_size, "dense")

    def build(self, input_shape: Any = None) -> None:
        self.dense.build((None, self.config.hidden_size))

    def call(self, hidden_states):
        return tf.tanh(self.dense(hidden_states[:, 0]))


@_register
class BertPredictionHeadTransform(keras.layers.Layer):
    """dense, config.hidden_act, LayerNorm: float (B, S, H) -> (B, S, H)."""

    def __init__(self, config: BertConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.dense = _dense(config.hidden_size, "dense")
        self.transform_act_fn = ACT2FN[config.hidden_act]
        self.LayerNorm = _layer_norm(config)

    def build(self, input_shape: Any = None) -> None:
        self.dense.build((None, self.config.hidden_size))
        self.LayerNorm.build((None, None, self.config.hidden_size))

    def call(self, hidden_states):
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


@_register
class BertLMPredictionHead(keras.layers.Layer):
    """transform, then ``decoder`` (the word-embedding variable, transposed, when tied) + ``bias``: -> (B, S, V)."""

    def __init__(self, config: BertConfig, word_embeddings: keras.layers.Embedding, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.transform = BertPredictionHeadTransform(config, name="transform")
        if config.tie_word_embeddings:
            # the backbone's layer, also tracked here: the decoder reads the same variable (one weight, one gradient)
            self._tied_embeddings = word_embeddings
        else:
            self.decoder = _dense(config.vocab_size, "decoder", use_bias=False)

    def build(self, input_shape: Any = None) -> None:
        self.transform.build()
        if not self.config.tie_word_embeddings:
            self.decoder.build((None, self.config.hidden_size))
        self.bias = self.add_weight(shape=(self.config.vocab_size,), initializer="zeros", name="bias")

    def call(self, hidden_states):
        hidden_states = self.transform(hidden_states)
        if self.config.tie_word_embeddings:
            logits = tf.matmul(hidden_states, self._tied_embeddings.embeddings, transpose_b=True)
        else:
            logits = self.decoder(hidden_states)
        return logits + self.bias


@_register
class BertOnlyMLMHead(keras.layers.Layer):
    def __init__(self, config: BertConfig, word_embeddings: keras.layers.Embedding, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.predictions = BertLMPredictionHead(config, word_embeddings, name="predictions")

    def build(self, input_shape: Any = None) -> None:
        self.predictions.build()

    def call(self, sequence_output):
        return self.predictions(sequence_output)


@_register
class BertOnlyNSPHead(keras.layers.Layer):
    def __init__(self, config: BertConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.seq_relationship = _dense(2, "seq_relationship")

    def build(self, input_shape: Any = None) -> None:
        self.seq_relationship.build((None, self.config.hidden_size))

    def call(self, pooled_output):
        return self.seq_relationship(pooled_output)


@_register
class BertPreTrainingHeads(keras.layers.Layer):
    def __init__(self, config: BertConfig, word_embeddings: keras.layers.Embedding, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.predictions = BertLMPredictionHead(config, word_embeddings, name="predictions")
        self.seq_relationship = _dense(2, "seq_relationship")

    def build(self, input_shape: Any = None) -> None:
        self.predictions.build()
        self.seq_relationship.build((None, self.config.hidden_size))

    def call(self, sequence_output, pooled_output):
        return self.predictions(sequence_output), self.seq_relationship(pooled_output)


# ------------------------------------------------------------------------------------------------------------- caches

# A layer's cache entry ``past_key_value`` is HF's legacy tuple: (self_k, self_v) or (self_k, self_v, cross_k,
# cross_v), each float (B, N, P|E, D); the model's ``past_key_values`` is one entry per layer. ``cache_active``
# (a cache is in use) is the one flag that travels down the ladder.


def _past_length(past_key_values) -> Any:
    """P: tokens already cached (a Python int when static, a scalar tensor while tracing a dynamic length)."""
    return 0 if past_key_values is None else _shape_list(past_key_values[0][0])[2]


# ------------------------------------------------------------------------------------------------------------- models

_CALL_ARGUMENTS: Dict[type, Tuple[str, ...]] = {}


@_register
def _initial_value(array: np.ndarray, spec, shape, dtype) -> tf.Tensor:
    """A deferred variable's initial value: the canonical ``array`` in TF layout, as a tensor of ``dtype``; the
    checkpoint's mapped pages are dropped once the values are copied out.

    The values are copied once, into an aligned host buffer (``bert_core.checkpoint.aligned_copy``, transposing
    kernels) that TF takes through DLPack without a copy and the variable then keeps as its memory; ``tf.constant``
    copies its input again (a defensive numpy copy, and TF copies a buffer that is not 64-byte aligned once more).
    """
    host = aligned_copy(np.asarray(array, np.float32), transpose=backend_path(spec, "tf")[1])
    value = tf.cast(tf.experimental.dlpack.from_dlpack(host.__dlpack__()), dtype)
    release_pages(array)
    return value


class BertPreTrainedModel(keras.Model):
    """Weights in/out through ``bert_core`` (canonical names, PyTorch layout), save/load, HF-TF-style inputs, Keras
    ``fit`` / ``evaluate`` / ``predict`` with the head's own loss, and SavedModel serving.

    Subclasses set ``head_name``, build their layers in ``__init__`` and then call :meth:`_post_init`. Variables are
    created by :meth:`build`, under the model's name scope, so each variable's path is the model name followed by the
    checkpoint name (``BertForMaskedLM/bert/encoder/layer.0/attention/self/query/kernel``).
    """

    head_name = "BertModel"
    _add_pooling_layer: Optional[bool] = None  # None: the head's default (bert_core.weights.head_has_pooler)
    _serving_input_rank = 2  # (B, S) ids; multiple choice serves (B, C, S)
    # No Keras default SavedModel signature: Keras would trace ``self(inputs)`` with one float tensor shaped like the
    # build argument, which is not how these models are called. ``serving_function`` gives the real one.
    _default_save_signature = None

    def __init__(self, config: BertConfig, **kwargs: Any) -> None:
        if not isinstance(config, BertConfig):
            raise TypeError(f"config must be a bert_core BertConfig, got {type(config).__name__}")
        kwargs.setdefault("name", self.head_name)
        super().__init__(**kwargs)
        self.config = config

    def _post_init(self, seed: Optional[int]) -> None:
        if seed is not None:
            self.load_canonical_weights(
                init_weights(self.config, self.head_name, seed, add_pooling_layer=self._add_pooling_layer)
            )

    def build(self, input_shape: Any = None) -> None:
        # Every direct child is a ladder layer (which knows its shapes), a dropout, or a dense on the hidden size.
        for layer in self.layers:
            if not layer.built:
                layer.build((None, self.config.hidden_size))

    # -------------------------------------------------------------- Keras serialisation (.keras files)
    def get_config(self) -> Dict[str, Any]:
        return {"config": self.config.to_dict(), "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config: Dict[str, Any]):
        config = dict(config)
        # the .keras loader builds the model and restores every variable right after: no seeded init
        return cls(BertConfig.from_dict(config.pop("config")), seed=None, **config)

    # -------------------------------------------------------------- canonical weights
    def _weight_table(self):
        return stored_weights(self.config, self.head_name, self._add_pooling_layer)

    def canonical_variables(self) -> "OrderedDict[str, keras.Variable]":
        """Every stored tensor's Keras variable, by canonical (PyTorch state-dict) name: a ``getattr`` walk along
        ``backend_path(spec, "tf")`` (numeric parts index the ``layer`` list)."""
        if not self.built:
            self.build()
        variables: "OrderedDict[str, keras.Variable]" = OrderedDict()
        for name, spec in self._weight_table().items():
            obj: Any = self
            for part in backend_path(spec, "tf")[0]:
                obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
            variables[name] = obj
        return variables

    def load_canonical_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Set every stored tensor from canonical PyTorch-layout arrays (names of ``bert_core.weights.stored_weights``).

        Raises:
            ValueError: names missing or unexpected, or arrays of the wrong shape (``check_weights_match``).
        """
        table = self._weight_table()
        check_weights_match(table, weights, self.head_name)
        for name, variable in self.canonical_variables().items():
            array = np.asarray(weights[name], dtype=np.float32)
            variable.assign(to_backend_array(array, table[name], "tf"))
            release_pages(array)  # copied into the variable: the checkpoint's mapped pages can go

    def _defer_canonical_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Inside a ``keras.StatelessScope``: make the canonical arrays the initial values of the still uninitialised
        variables (Keras calls ``variable._initializer(shape, dtype)`` as the scope closes); else a plain load."""
        table = self._weight_table()
        check_weights_match(table, weights, self.head_name)
        for name, variable in self.canonical_variables().items():
            if getattr(variable, "_initializer", None) is None:  # already initialised (no deferral): copy in
                variable.assign(to_backend_array(np.asarray(weights[name], np.float32), table[name], "tf"))
                continue
            variable._initializer = functools.partial(_initial_value, weights[name], table[name])

    def canonical_weights(self) -> "OrderedDict[str, np.ndarray]":
        """Every stored tensor as float32 numpy, PyTorch layout, keyed like ``stored_weights`` (tied decoder left out)."""
        table = self._weight_table()
        return OrderedDict(
            (name, from_backend_array(np.asarray(variable.numpy(), np.float32), table[name], "tf"))
            for name, variable in self.canonical_variables().items()
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
        **config_overrides: Any,
    ):
        """Load a local directory or hub id (safetensors / .bin / .h5 / .msgpack) into this head.

        Head weights the checkpoint lacks are initialised from ``seed`` (``bert_core.init``). ``config_overrides``
        (``num_labels=``, ``id2label=``, ``problem_type=``, ``is_decoder=`` ...) update the loaded config.
        ``add_pooling_layer`` applies to ``BertModel`` only.

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
        weights = complete_weights(weights, config, cls.head_name, seed, pool)
        # Built in a stateless scope, the variables wait uninitialised (Keras' deferred initialisation); each takes
        # its loaded array as its initial value when the scope closes: no zero fill and no assign over it.
        with keras.StatelessScope():
            model = cls(config, **init_kwargs, seed=None)
            model._defer_canonical_weights(weights)
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

    # -------------------------------------------------------------- calling
    def _flags(self, output_attentions, output_hidden_states, return_dict) -> Tuple[bool, bool, bool]:
        """The three output switches, each defaulting to the config's (``BertConfig.output_flags``)."""
        return self.config.output_flags(output_attentions, output_hidden_states, return_dict)

    def __call__(self, *args: Any, **kwargs: Any):
        return super().__call__(**self._unpack_inputs(args, kwargs))

    def _unpack_inputs(self, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Dict[str, Any]:
        """HF-TF idiom: the first argument may be a dict / ``BatchEncoding`` (any Mapping) of inputs, or a list of
        arrays in ``call``'s parameter order; other positional arguments bind to ``call``'s parameters in order.
        Everything reaches Keras as keywords (Keras takes only tensors positionally)."""
        names = _CALL_ARGUMENTS.get(type(self))
        if names is None:
            names = _CALL_ARGUMENTS[type(self)] = tuple(inspect.signature(self.call).parameters)
        first = args[0] if args else None
        if isinstance(first, Mapping):
            packed = dict(first)
        elif (
            isinstance(first, (list, tuple))
            and first
            and all(x is None or isinstance(x, (tf.Tensor, np.ndarray, keras.Variable)) for x in first)
        ):
            if len(first) > len(names) - 1:
                raise TypeError(f"{type(self).__name__} takes at most {len(names) - 1} list inputs, got {len(first)}")
            packed = dict(zip(names, first))
        else:
            if len(args) > len(names):
                raise TypeError(f"{type(self).__name__} takes at most {len(names)} positional inputs, got {len(args)}")
            packed = dict(zip(names, args))
            args = ()
        if len(args) > 1:
            raise TypeError(f"{type(self).__name__}: pass further inputs as keywords after a packed first argument")
        for name, value in packed.items():
            if name not in names:
                raise TypeError(f"{type(self).__name__} got an unexpected input {name!r}; expected some of {names}")
            if kwargs.get(name) is not None and value is not None:
                raise TypeError(f"{type(self).__name__} got {name!r} twice (in the packed inputs and as a keyword)")
        return {**{k: v for k, v in packed.items() if v is not None}, **kwargs}

    # -------------------------------------------------------------- Keras training: the head's own loss
    @staticmethod
    def _labels_into_inputs(x: Any, y: Any) -> Dict[str, Any]:
        inputs = dict(x) if isinstance(x, Mapping) else {"input_ids": x}
        if isinstance(y, Mapping):
            inputs.update(y)
        elif y is not None:
            inputs["labels"] = y
        return inputs

    @staticmethod
    def _prediction(output):
        for key in ("logits", "prediction_logits", "start_logits", "last_hidden_state"):
            if key in output:
                return output[key]
        return output.to_tuple()[-1]

    def train_step(self, data):
        if self._compile_loss is not None:
            return super().train_step(data)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            output = self(self._labels_into_inputs(x, y), training=True)
            loss = output["loss"]
            if self.losses:
                loss = loss + tf.add_n([tf.reduce_sum(extra) for extra in self.losses])
            # as Keras' own train_step: the optimizer may scale the loss (loss scaling, gradient accumulation)
            scaled = self.optimizer.scale_loss(loss)
        self._loss_tracker.update_state(loss)
        grads = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        return self.compute_metrics(x, y, self._prediction(output), sample_weight=sample_weight)

    def test_step(self, data):
        if self._compile_loss is not None:
            return super().test_step(data)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        output = self(self._labels_into_inputs(x, y), training=False)
        self._loss_tracker.update_state(output["loss"])
        return self.compute_metrics(x, y, self._prediction(output), sample_weight=sample_weight)

    def predict_step(self, data):
        # keras.tree does not flatten ModelOutput subclasses: hand predict() a plain dict of its tensors
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        output = self(x, training=False)
        return {k: v for k, v in output.items() if isinstance(v, tf.Tensor)}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # only reached with a compiled loss: y_pred is the output mapping, the loss wants the logits
        if isinstance(y_pred, Mapping):
            y_pred = self._prediction(y_pred)
        return super().compute_loss(x, y, y_pred, sample_weight, training=training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y_pred, Mapping):
            y_pred = self._prediction(y_pred)
        return super().compute_metrics(x, y, y_pred, sample_weight)

    # -------------------------------------------------------------- serving
    def serving_function(self, jit_compile: bool = False):
        """A ``tf.function`` over (input_ids, attention_mask, token_type_ids) int32 (B, S) ((B, C, S) for multiple
        choice), any batch and length, returning a dict of the head's output tensors (no loss)."""
        spec = tf.TensorSpec((None,) * self._serving_input_rank, tf.int32)

        @tf.function(input_signature=[spec, spec, spec], jit_compile=jit_compile)
        def serve(input_ids, attention_mask, token_type_ids):
            output = self(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, training=False
            )
            return {k: v for k, v in output.items() if isinstance(v, tf.Tensor)}

        return serve

    def export_serving(self, path) -> None:
        """Write a SavedModel with a ``serving_default`` signature (variable batch and length)."""
        archive = keras.export.ExportArchive()
        archive.track(self)
        archive.add_endpoint("serve", self.serving_function())
        archive.write_out(os.fspath(path), verbose=False)


def _finish(output, return_dict: bool):
    return output if return_dict else output.to_tuple()


@_register
class BertModel(BertPreTrainedModel):
    """The bare encoder (or decoder, with ``config.is_decoder``): embeddings, encoder, optional pooler.

    Args:
        config: a ``bert_core`` BertConfig.
        add_pooling_layer: build ``pooler`` (tanh(dense(first token))).
        seed: initial weights from ``bert_core.init.init_weights(config, "BertModel", seed)``; None skips them
            (weights are loaded right after).
        **kwargs: Keras ``Model`` arguments (``name``, ``trainable``, ``dtype``).
    """

    head_name = "BertModel"
    _add_pooling_layer = True

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True, *, seed: Optional[int] = 0, **kwargs):
        super().__init__(config, **kwargs)
        self._add_pooling_layer = bool(add_pooling_layer)
        self.embeddings = BertEmbeddings(config, name="embeddings")
        self.encoder = BertEncoder(config, name="encoder")
        self.pooler = BertPooler(config, name="pooler") if add_pooling_layer else None
        self._post_init(seed)

    @classmethod
    def _init_kwargs(cls, add_pooling_layer: Optional[bool]) -> Dict[str, Any]:
        return {"add_pooling_layer": True if add_pooling_layer is None else bool(add_pooling_layer)}

    def get_config(self) -> Dict[str, Any]:
        return dict(super().get_config(), add_pooling_layer=self._add_pooling_layer)

    def call(
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
        use_cache=None,
        output_attentions=None,
        output_hidden_states=None,
        return_dict=None,
        training=False,
    ):
        """Encode (or decode) a batch.

        Args:
            input_ids: int (B, S) token ids in [0, vocab_size); or inputs_embeds: float (B, S, H).
            attention_mask: 1 keep / 0 pad, (B, P + S) (or (B, S, K) / 4-D); default all ones.
            token_type_ids: int (B, S) segment ids; default zeros. position_ids: int (B or 1, S); default P..P+S-1.
            head_mask: float (N,) or (L, N), 1 keep / 0 drop a head.
            encoder_hidden_states: float (B, E, H) for cross-attention; encoder_attention_mask: (B, E), 1 keep.
            past_key_values: tuple per layer of (self_k, self_v[, cross_k, cross_v]), each float (B, N, P|E, D).
            use_cache: decoders only (default config.use_cache); return the updated cache.
            output_attentions / output_hidden_states / return_dict: default from config.
            training: dropout on.

        Returns:
            BaseModelOutputWithPoolingAndCrossAttentions (or its ``to_tuple()`` when return_dict is False).
        """
        config = self.config
        output_attentions, output_hidden_states, return_dict = self._flags(
            output_attentions, output_hidden_states, return_dict
        )
        use_cache = bool(config.use_cache if use_cache is None else use_cache) and config.is_decoder
        # before any cast: float ids are refused, not truncated
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
        input_ids = _to_tensor(input_ids, tf.int32)
        token_type_ids = _to_tensor(token_type_ids, tf.int32)
        position_ids = _to_tensor(position_ids, tf.int32)
        inputs_embeds = _to_tensor(inputs_embeds, tf.float32)
        encoder_hidden_states = _to_tensor(encoder_hidden_states, tf.float32)
        if past_key_values is not None:
            past_key_values = tuple(tuple(_to_tensor(t, tf.float32) for t in layer) for layer in past_key_values)
        past_length = _past_length(past_key_values)
        # HF 4.57 creates a cache on the first decoder call with use_cache, which changes relative-position queries
        cache_active = config.is_decoder and (use_cache or past_key_values is not None)

        embedding_output = self.embeddings(
            input_ids, token_type_ids, position_ids, inputs_embeds, past_length=past_length, training=training
        )
        batch, seq_len = _shape_list(embedding_output)[:2]
        dtype = tf.as_dtype(self.compute_dtype)
        if attention_mask is None:
            attention_mask = tf.ones((batch, past_length + seq_len), dtype)
        extended_mask = _extended_attention_mask(config, attention_mask, seq_len, past_length, dtype)
        encoder_mask = None
        if encoder_hidden_states is not None:
            if encoder_attention_mask is None:
                encoder_attention_mask = tf.ones(_shape_list(encoder_hidden_states)[:2], dtype)
            encoder_mask = _encoder_attention_mask(encoder_attention_mask, dtype)

        encoded = self.encoder(
            embedding_output,
            extended_mask,
            _head_mask(head_mask, config.num_hidden_layers, dtype),
            encoder_hidden_states,
            encoder_mask,
            past_key_values,
            use_cache=use_cache,
            cache_active=cache_active,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            training=training,
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


# -------------------------------------------------------------------------------------------------------------- heads


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
        training,
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
            training=training,
            **decoder_kwargs,
        )


@_register
class BertForPreTraining(_HeadModel):
    """MLM + NSP heads (``cls.predictions``, ``cls.seq_relationship``). loss = MLM CE + NSP CE when both labels given."""

    head_name = "BertForPreTraining"

    def __init__(self, config: BertConfig, *, seed: Optional[int] = 0, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.bert = BertModel(config, add_pooling_layer=True, seed=None, name="bert")
        self.cls = BertPreTrainingHeads(config, self.bert.embeddings.word_embeddings, name="cls")
        self._post_init(seed)

    def call(
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
        training=False,
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
            training,
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


@_register
class BertLMHeadModel(_HeadModel):
    """Causal LM head (needs ``config.is_decoder``): next-token logits, loss on labels shifted by one, generation."""

    head_name = "BertLMHeadModel"

    def __init__(self, config: BertConfig, *, seed: Optional[int] = 0, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.bert = BertModel(config, add_pooling_layer=False, seed=None, name="bert")
        self.cls = BertOnlyMLMHead(config, self.bert.embeddings.word_embeddings, name="cls")
        self._post_init(seed)

    def call(
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
        training=False,
    ):
        """labels: int (B, S); logits[:, t] is scored against labels[:, t+1] (-100 ignored). Giving labels turns
        the cache off, as in HF.

        Returns CausalLMOutputWithCrossAttentions: logits float (B, S, V), past_key_values when use_cache.
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
            training,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            past_key_values=past_key_values,
            use_cache=use_cache,
        )
        logits = self.cls(out.last_hidden_state)
        _check_labels(self.config, self.head_name, "labels", labels, logits)
        loss = None
        if labels is not None:
            loss = _cross_entropy(logits[:, :-1], _to_tensor(labels)[:, 1:])
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
    ) -> tf.Tensor:
        """Greedy or sampled continuation using the key/value cache (eager; each step is one model call).

        Args:
            input_ids: int (B, S) prompt, may be left-padded. attention_mask: (B, S) 1 token / 0 pad (default ones);
                position ids follow HF: cumsum(mask) - 1, pads at 1.
            do_sample: sample (temperature, then top_k, then top_p, as HF's processors) instead of argmax.
                seed: makes sampling reproducible (stateless random ops); None draws a fresh one.
            eos_token_id: a row that produced it is finished; its later tokens are pad_token_id (default
                config.pad_token_id). Decoding stops once every row is finished.
            encoder_hidden_states / encoder_attention_mask: cross-attention inputs, (B, E, H) / (B, E).

        Returns:
            int32 (B, S + T) with T <= max_new_tokens.
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
        if do_sample and seed is None:
            seed = int(np.random.default_rng().integers(2**31 - 1))
        input_ids = _to_tensor(input_ids, tf.int32)
        attention_mask = tf.ones_like(input_ids) if attention_mask is None else _to_tensor(attention_mask, tf.int32)
        position_ids = tf.where(attention_mask == 0, 1, tf.cumsum(attention_mask, axis=-1) - 1)
        extra = dict(encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=encoder_attention_mask)
        out = self(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=True,
            return_dict=True,
            **extra,
        )
        sequences = input_ids
        finished = tf.zeros((_shape_list(input_ids)[0],), tf.bool)
        for step in range(max_new_tokens):
            logits = tf.cast(out.logits[:, -1, :], tf.float32)
            if do_sample:
                logits = logits / temperature
                if top_k is not None and top_k < logits.shape[-1]:
                    kth = tf.math.top_k(logits, top_k).values[:, -1:]
                    logits = tf.where(logits < kth, -np.inf, logits)
                if top_p is not None and top_p < 1.0:
                    order = tf.argsort(logits, axis=-1, direction="ASCENDING", stable=True)
                    cumulative = tf.cumsum(tf.nn.softmax(tf.gather(logits, order, batch_dims=1)), axis=-1)
                    drop = cumulative <= 1.0 - top_p
                    drop = tf.concat([drop[:, :-1], tf.zeros_like(drop[:, -1:])], axis=-1)  # keep the most likely
                    drop = tf.gather(drop, tf.argsort(order, axis=-1), batch_dims=1)  # back to vocabulary order
                    logits = tf.where(drop, -np.inf, logits)
                step_seed = tf.constant([seed, step], tf.int64)
                next_token = tf.random.stateless_categorical(logits, 1, seed=step_seed, dtype=tf.int32)[:, 0]
            else:
                next_token = tf.argmax(logits, axis=-1, output_type=tf.int32)
            if eos_token_id is not None:
                next_token = tf.where(finished, pad, next_token)
                finished = finished | (next_token == eos_token_id)
            sequences = tf.concat([sequences, next_token[:, None]], axis=1)
            if step == max_new_tokens - 1 or (eos_token_id is not None and bool(tf.reduce_all(finished))):
                break
            attention_mask = tf.concat([attention_mask, tf.ones_like(attention_mask[:, :1])], axis=1)
            out = self(
                next_token[:, None],
                attention_mask=attention_mask,
                position_ids=tf.reduce_sum(attention_mask, axis=-1, keepdims=True) - 1,
                past_key_values=out.past_key_values,
                use_cache=True,
                return_dict=True,
                **extra,
            )
        return sequences


@_register
class BertForMaskedLM(_HeadModel):
    """Masked-token logits from ``cls.predictions``; loss = CE over labels != -100."""

    head_name = "BertForMaskedLM"

    def __init__(self, config: BertConfig, *, seed: Optional[int] = 0, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.bert = BertModel(config, add_pooling_layer=False, seed=None, name="bert")
        self.cls = BertOnlyMLMHead(config, self.bert.embeddings.word_embeddings, name="cls")
        self._post_init(seed)

    def call(
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
        training=False,
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
            training,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
        )
        logits = self.cls(out.last_hidden_state)
        _check_labels(self.config, self.head_name, "labels", labels, logits)
        loss = None if labels is None else _cross_entropy(logits, labels)
        return _finish(
            MaskedLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions),
            return_dict,
        )


@_register
class BertForNextSentencePrediction(_HeadModel):
    """Is sentence B the continuation of A? ``cls.seq_relationship`` on the pooled output."""

    head_name = "BertForNextSentencePrediction"

    def __init__(self, config: BertConfig, *, seed: Optional[int] = 0, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.bert = BertModel(config, add_pooling_layer=True, seed=None, name="bert")
        self.cls = BertOnlyNSPHead(config, name="cls")
        self._post_init(seed)

    def call(
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
        training=False,
    ):
        """labels (or next_sentence_label): int (B,), 0 = B follows A. Returns logits float (B, 2)."""
        output_attentions, output_hidden_states, return_dict = self._flags(
            output_attentions, output_hidden_states, return_dict
        )
        labels = next_sentence_label if labels is None else labels
        out = self._run_bert(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            head_mask,
            inputs_embeds,
            output_attentions,
            output_hidden_states,
            training,
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


@_register
class BertForSequenceClassification(_HeadModel):
    """``classifier`` on the dropped-out pooled output: regression, single- or multi-label classification."""

    head_name = "BertForSequenceClassification"

    def __init__(self, config: BertConfig, *, seed: Optional[int] = 0, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=True, seed=None, name="bert")
        self.dropout = keras.layers.Dropout(config.classifier_dropout_prob, name="dropout")
        self.classifier = _dense(config.num_labels, "classifier")
        self._post_init(seed)

    def call(
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
        training=False,
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
            training,
        )
        logits = self.classifier(self.dropout(out.pooler_output, training=training))
        _check_labels(self.config, self.head_name, "labels", labels, logits)
        loss = None
        if labels is not None:
            labels = _to_tensor(labels)
            problem = validation.resolve_problem_type(self.config, labels.dtype.is_integer)
            if problem == "regression":
                if self.num_labels == 1:
                    loss = _mse(tf.reshape(logits, [-1]), tf.reshape(labels, [-1]))
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


@_register
class BertForMultipleChoice(_HeadModel):
    """Scores each of C choices: inputs (B, C, S) are flattened to (B*C, S); logits come back as (B, C)."""

    head_name = "BertForMultipleChoice"
    _serving_input_rank = 3

    def __init__(self, config: BertConfig, *, seed: Optional[int] = 0, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.bert = BertModel(config, add_pooling_layer=True, seed=None, name="bert")
        self.dropout = keras.layers.Dropout(config.classifier_dropout_prob, name="dropout")
        self.classifier = _dense(1, "classifier")
        self._post_init(seed)

    def call(
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
        training=False,
    ):
        """input_ids / attention_mask / token_type_ids / position_ids: (B, C, S); inputs_embeds (B, C, S, H);
        labels: int (B,) index of the right choice. Returns MultipleChoiceModelOutput: logits float (B, C)."""
        output_attentions, output_hidden_states, return_dict = self._flags(
            output_attentions, output_hidden_states, return_dict
        )
        with _as_raised():
            validation.check_multiple_choice_inputs(
                *(
                    _array_info(t, False)
                    for t in (input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
                )
            )
        input_ids, inputs_embeds = _to_tensor(input_ids), _to_tensor(inputs_embeds)
        num_choices = _shape_list(input_ids if input_ids is not None else inputs_embeds)[1]

        def flat(t):
            t = _to_tensor(t)
            return None if t is None else tf.reshape(t, (-1, _shape_list(t)[-1]))

        embeds = None if inputs_embeds is None else tf.reshape(inputs_embeds, [-1] + _shape_list(inputs_embeds)[2:])
        out = self._run_bert(
            flat(input_ids),
            flat(attention_mask),
            flat(token_type_ids),
            flat(position_ids),
            head_mask,
            embeds,
            output_attentions,
            output_hidden_states,
            training,
        )
        logits = tf.reshape(self.classifier(self.dropout(out.pooler_output, training=training)), (-1, num_choices))
        _check_labels(self.config, self.head_name, "labels", labels, logits)
        loss = None if labels is None else _cross_entropy(logits, labels)
        return _finish(
            MultipleChoiceModelOutput(
                loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
            ),
            return_dict,
        )


@_register
class BertForTokenClassification(_HeadModel):
    """Per-token ``classifier`` (NER and the like): logits float (B, S, num_labels); loss CE, -100 ignored."""

    head_name = "BertForTokenClassification"

    def __init__(self, config: BertConfig, *, seed: Optional[int] = 0, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False, seed=None, name="bert")
        self.dropout = keras.layers.Dropout(config.classifier_dropout_prob, name="dropout")
        self.classifier = _dense(config.num_labels, "classifier")
        self._post_init(seed)

    def call(
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
        training=False,
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
            training,
        )
        logits = self.classifier(self.dropout(out.last_hidden_state, training=training))
        _check_labels(self.config, self.head_name, "labels", labels, logits)
        loss = None if labels is None else _cross_entropy(logits, labels)
        return _finish(
            TokenClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions),
            return_dict,
        )


@_register
class BertForQuestionAnswering(_HeadModel):
    """Extractive QA: ``qa_outputs`` gives span start/end logits, float (B, S) each."""

    head_name = "BertForQuestionAnswering"

    def __init__(self, config: BertConfig, *, seed: Optional[int] = 0, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        validation.check_qa_num_labels(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False, seed=None, name="bert")
        self.qa_outputs = _dense(config.num_labels, "qa_outputs")
        self._post_init(seed)

    def call(
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
        training=False,
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
            training,
        )
        logits = self.qa_outputs(out.last_hidden_state)
        start_logits, end_logits = logits[..., 0], logits[..., 1]
        _check_labels(self.config, self.head_name, "start_positions", start_positions, start_logits)
        _check_labels(self.config, self.head_name, "end_positions", end_positions, start_logits)
        loss = None
        if start_positions is not None and end_positions is not None:
            start_positions = tf.reshape(_to_tensor(start_positions, tf.int32), [-1])
            end_positions = tf.reshape(_to_tensor(end_positions, tf.int32), [-1])
            ignored = _shape_list(start_logits)[1]
            start_positions = tf.clip_by_value(start_positions, 0, ignored)
            end_positions = tf.clip_by_value(end_positions, 0, ignored)
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


def canonical_grads(model: BertPreTrainedModel, inputs: Dict[str, Any]) -> Tuple[float, "OrderedDict[str, np.ndarray]"]:
    """Loss and gradient of every stored tensor, by canonical name (PyTorch layout, float32 numpy).

    ``inputs`` are call keyword arguments including the labels; runs with ``training=False`` (no dropout). The tied
    decoder's gradient lands in ``word_embeddings`` (one shared variable), as in PyTorch.
    """
    variables = model.canonical_variables()
    table = model._weight_table()
    with tf.GradientTape() as tape:
        output = model(**inputs, return_dict=True, training=False)
        if output.loss is None:
            raise ValueError(f"{model.head_name} returned no loss: pass its labels in inputs")
        loss = output.loss
    grads = tape.gradient(loss, list(variables.values()))
    result: "OrderedDict[str, np.ndarray]" = OrderedDict()
    for (name, variable), grad in zip(variables.items(), grads):
        g = np.zeros(variable.shape, np.float32) if grad is None else np.asarray(tf.convert_to_tensor(grad), np.float32)
        result[name] = from_backend_array(g, table[name], "tf")
    return float(loss.numpy()), result
