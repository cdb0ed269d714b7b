"""BERT in Keras 3 on the TensorFlow backend, numerically equal to HF transformers 4.57's PyTorch ``BertFor*``.

Read top to bottom: backend selection, activations and losses, then the layer ladder named like the checkpoint
(``embeddings`` -> ``encoder.layer.{i}.attention.self`` ... -> ``pooler``), the heads (``cls.predictions``,
``classifier``, ``qa_outputs``) and finally the nine public ``keras.Model`` classes.

Weights are mapped mechanically: for every entry of ``bert_core.weights.stored_weights(config, head)``, the attribute
path of ``bert_core.weights.backend_path(spec, "tf")`` (a ``getattr`` walk, numeric parts indexing ``layer``)
reaches the ``keras.Variable``; linear kernels are stored transposed (Keras ``(in, out)``), everything else as is.
"""

from __future__ import annotations

import math
import os
import sys
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional, Tuple

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
from bert_core.checkpoint import load_head_weights  # noqa: E402
from bert_core.checkpoint import save_pretrained as _save_pretrained  # noqa: E402
from bert_core.config import BertConfig  # noqa: E402
from bert_core.init import complete_weights, init_weights  # noqa: E402
from bert_core.outputs import (  # noqa: E402
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
from bert_core.weights import backend_path, from_backend_array, head_has_pooler, stored_weights, to_backend_array  # noqa: E402

_SERIALIZABLE = "bert_tf"
_RELATIVE = ("relative_key", "relative_key_query")


# ------------------------------------------------------------------------------------------------ activations

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


# ------------------------------------------------------------------------------------------------ losses (PyTorch semantics)


def cross_entropy(logits: tf.Tensor, labels: tf.Tensor, ignore_index: Any = -100) -> tf.Tensor:
    """Mean cross-entropy over the labels that are not ``ignore_index`` (NaN when all are ignored, as PyTorch).

    logits: float (N, C); labels: int (N,). Returns a float32 scalar.
    """
    labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
    valid = tf.not_equal(labels, tf.cast(ignore_index, tf.int32))
    # sparse CE rejects out-of-range labels on CPU: feed a harmless 0 where the label is ignored
    per_token = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.where(valid, labels, 0), logits=logits)
    per_token = tf.where(valid, per_token, 0.0)
    return tf.reduce_sum(per_token) / tf.reduce_sum(tf.cast(valid, per_token.dtype))


def _mse(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.square(a - tf.cast(b, a.dtype)))


def _bce_with_logits(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(labels, logits.dtype), logits=logits))


# ------------------------------------------------------------------------------------------------ small helpers


def _dense(units: int, name: str, use_bias: bool = True) -> keras.layers.Dense:
    # zeros: every variable is overwritten from bert_core's seeded init right after building
    return keras.layers.Dense(units, use_bias=use_bias, kernel_initializer="zeros", name=name)


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


def _layer_norm(config: BertConfig, name: str = "LayerNorm") -> keras.layers.LayerNormalization:
    return keras.layers.LayerNormalization(epsilon=config.layer_norm_eps, name=name)


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


def _static_shape(x: tf.Tensor) -> Tuple[Optional[int], ...]:
    return tuple(x.shape.as_list())


def _extended_mask(mask: tf.Tensor) -> tf.Tensor:
    """1/0 keep-mask -> additive mask: 0 where kept, float32 min where masked (HF's ``(1 - mask) * finfo.min``)."""
    return (1.0 - tf.cast(mask, tf.float32)) * tf.float32.min


# ================================================================================================ the layer ladder


@keras.saving.register_keras_serializable(package=_SERIALIZABLE)
class BertEmbeddings(keras.layers.Layer):
    """Word + token-type (+ absolute position) embeddings, LayerNorm, dropout. Output float32 (batch, seq, hidden)."""

    def __init__(self, config: BertConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        h = config.hidden_size
        self.word_embeddings = keras.layers.Embedding(
            config.vocab_size, h, embeddings_initializer="zeros", name="word_embeddings"
        )
        self.position_embeddings = keras.layers.Embedding(
            config.max_position_embeddings, h, embeddings_initializer="zeros", name="position_embeddings"
        )
        self.token_type_embeddings = keras.layers.Embedding(
            config.type_vocab_size, h, embeddings_initializer="zeros", name="token_type_embeddings"
        )
        self.LayerNorm = _layer_norm(config)
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob, name="dropout")

    def build(self, input_shape: Any = None) -> None:
        for emb in (self.word_embeddings, self.position_embeddings, self.token_type_embeddings):
            emb.build(None)
        self.LayerNorm.build((None, None, self.config.hidden_size))
        self.built = True

    def call(
        self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None, past_length=0, training=False
    ):
        """input_ids / token_type_ids / position_ids: int (batch, seq); inputs_embeds: float (batch, seq, hidden)."""
        if inputs_embeds is None:
            inputs_embeds = tf.gather(self.word_embeddings.embeddings, input_ids)
        batch, seq = _shape_list(inputs_embeds)[:2]
        if token_type_ids is None:
            token_type_ids = tf.zeros((batch, seq), tf.int32)
        embeddings = inputs_embeds + tf.gather(self.token_type_embeddings.embeddings, token_type_ids)
        if self.config.position_embedding_type == "absolute":
            if position_ids is None:
                position_ids = tf.range(past_length, past_length + seq)[None, :]
            embeddings = embeddings + tf.gather(self.position_embeddings.embeddings, position_ids)
        embeddings = self.LayerNorm(embeddings)
        return self.dropout(embeddings, training=training)


@keras.saving.register_keras_serializable(package=_SERIALIZABLE)
class BertSelfAttention(keras.layers.Layer):
    """Multi-head scaled dot-product attention with optional relative-position scores and a key/value cache."""

    def __init__(self, config: BertConfig, position_embedding_type: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.position_embedding_type = position_embedding_type or config.position_embedding_type
        self.query = _dense(config.hidden_size, "query")
        self.key = _dense(config.hidden_size, "key")
        self.value = _dense(config.hidden_size, "value")
        if self.position_embedding_type in _RELATIVE:
            self.distance_embedding = keras.layers.Embedding(
                2 * config.max_position_embeddings - 1,
                self.head_dim,
                embeddings_initializer="zeros",
                name="distance_embedding",
            )
        self.dropout = keras.layers.Dropout(config.attention_probs_dropout_prob, name="dropout")

    def build(self, input_shape: Any = None) -> None:
        for proj in (self.query, self.key, self.value):
            proj.build((None, None, self.config.hidden_size))
        if self.position_embedding_type in _RELATIVE:
            self.distance_embedding.build(None)
        self.built = True

    def _split_heads(self, x: tf.Tensor) -> tf.Tensor:
        # (batch, seq, hidden) -> (batch, heads, seq, head_dim)
        batch, seq = _shape_list(x)[:2]
        return tf.transpose(tf.reshape(x, (batch, seq, self.num_heads, self.head_dim)), (0, 2, 1, 3))

    def call(
        self,
        hidden_states,
        attention_mask=None,
        head_mask=None,
        encoder_hidden_states=None,
        past_key_value=None,
        cache_active=False,
        training=False,
    ):
        """Returns (context (batch, seq, hidden), probs (batch, heads, seq, key_len), (key, value) for the cache)."""
        query = self._split_heads(_dense_nd(self.query, hidden_states))
        if encoder_hidden_states is not None:
            if past_key_value is not None:  # cross keys/values depend only on the encoder: reuse them
                key, value = past_key_value
            else:
                key = self._split_heads(_dense_nd(self.key, encoder_hidden_states))
                value = self._split_heads(_dense_nd(self.value, encoder_hidden_states))
        else:
            key = self._split_heads(_dense_nd(self.key, hidden_states))
            value = self._split_heads(_dense_nd(self.value, hidden_states))
            if past_key_value is not None:
                key = tf.concat([tf.cast(past_key_value[0], key.dtype), key], axis=2)
                value = tf.concat([tf.cast(past_key_value[1], value.dtype), value], axis=2)

        scores = tf.matmul(query, key, transpose_b=True)
        if self.position_embedding_type in _RELATIVE:
            q_len, k_len = _shape_list(query)[2], _shape_list(key)[2]
            if cache_active:
                # HF (with a cache) places every query at the last key position, however many queries there are
                left = tf.fill((q_len, 1), k_len - 1)
            else:
                left = tf.range(q_len)[:, None]
            distance = left - tf.range(k_len)[None, :]
            positional = tf.gather(
                self.distance_embedding.embeddings, distance + self.config.max_position_embeddings - 1
            )
            positional = tf.cast(positional, query.dtype)
            scores = scores + tf.einsum("bhld,lrd->bhlr", query, positional)
            if self.position_embedding_type == "relative_key_query":
                scores = scores + tf.einsum("bhrd,lrd->bhlr", key, positional)
        scores = scores / math.sqrt(self.head_dim)
        if attention_mask is not None:
            scores = scores + attention_mask
        probs = tf.nn.softmax(scores, axis=-1)
        probs = self.dropout(probs, training=training)
        if head_mask is not None:
            probs = probs * head_mask
        context = tf.matmul(probs, value)
        batch, _, seq, _ = _shape_list(context)
        context = tf.reshape(tf.transpose(context, (0, 2, 1, 3)), (batch, seq, self.num_heads * self.head_dim))
        return context, probs, (key, value)


@keras.saving.register_keras_serializable(package=_SERIALIZABLE)
class BertSelfOutput(keras.layers.Layer):
    """dense -> dropout -> LayerNorm(x + residual). float32 (batch, seq, hidden)."""

    def __init__(self, config: BertConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.dense = _dense(config.hidden_size, "dense")
        self.LayerNorm = _layer_norm(config)
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob, name="dropout")

    def build(self, input_shape: Any = None) -> None:
        self.dense.build((None, None, self.config.hidden_size))
        self.LayerNorm.build((None, None, self.config.hidden_size))
        self.built = True

    def call(self, hidden_states, residual, training=False):
        # 2-D MatMul + BiasAdd (+ dropout, identity at inference) + residual: one fused oneDNN kernel at inference
        hidden_states = self.dropout(_linear(self.dense, _rows(hidden_states)), training=training)
        return self.LayerNorm(_unrows(hidden_states + _rows(residual), residual))


@keras.saving.register_keras_serializable(package=_SERIALIZABLE)
class BertAttention(keras.layers.Layer):
    """``self`` (BertSelfAttention) + ``output`` (BertSelfOutput), named as the checkpoint names them."""

    def __init__(self, config: BertConfig, position_embedding_type: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.self = BertSelfAttention(config, position_embedding_type, name="self")
        # Keras layers already have a read-only ``output`` property (symbolic graphs only); shadowed below.
        self._output_layer = BertSelfOutput(config, name="output")

    @property
    def output(self) -> BertSelfOutput:  # type: ignore[override]
        return self._output_layer

    def build(self, input_shape: Any = None) -> None:
        self.self.build()
        self._output_layer.build()
        self.built = True

    def call(
        self,
        hidden_states,
        attention_mask=None,
        head_mask=None,
        encoder_hidden_states=None,
        past_key_value=None,
        cache_active=False,
        training=False,
    ):
        context, probs, present = self.self(
            hidden_states,
            attention_mask=attention_mask,
            head_mask=head_mask,
            encoder_hidden_states=encoder_hidden_states,
            past_key_value=past_key_value,
            cache_active=cache_active,
            training=training,
        )
        return self._output_layer(context, hidden_states, training=training), probs, present


@keras.saving.register_keras_serializable(package=_SERIALIZABLE)
class BertIntermediate(keras.layers.Layer):
    """dense -> activation (config.hidden_act). float32 (batch, seq, intermediate_size)."""

    def __init__(self, config: BertConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.dense = _dense(config.intermediate_size, "dense")
        self.act = ACT2FN[config.hidden_act]

    def build(self, input_shape: Any = None) -> None:
        self.dense.build((None, None, self.config.hidden_size))
        self.built = True

    def call(self, hidden_states):
        # activation applied to the 2-D MatMul + BiasAdd so that an exact GELU fuses into the oneDNN matmul
        return _unrows(self.act(_linear(self.dense, _rows(hidden_states))), hidden_states)


@keras.saving.register_keras_serializable(package=_SERIALIZABLE)
class BertOutput(keras.layers.Layer):
    """dense (intermediate -> hidden) -> dropout -> LayerNorm(x + residual)."""

    def __init__(self, config: BertConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.dense = _dense(config.hidden_size, "dense")
        self.LayerNorm = _layer_norm(config)
        self.dropout = keras.layers.Dropout(config.hidden_dropout_prob, name="dropout")

    def build(self, input_shape: Any = None) -> None:
        self.dense.build((None, None, self.config.intermediate_size))
        self.LayerNorm.build((None, None, self.config.hidden_size))
        self.built = True

    def call(self, hidden_states, residual, training=False):
        # 2-D MatMul + BiasAdd (+ dropout, identity at inference) + residual: one fused oneDNN kernel at inference
        hidden_states = self.dropout(_linear(self.dense, _rows(hidden_states)), training=training)
        return self.LayerNorm(_unrows(hidden_states + _rows(residual), residual))


@keras.saving.register_keras_serializable(package=_SERIALIZABLE)
class BertLayer(keras.layers.Layer):
    """Self-attention, optional cross-attention (decoders), then the feed-forward block (optionally chunked)."""

    def __init__(self, config: BertConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.attention = BertAttention(config, name="attention")
        if config.add_cross_attention:
            if not config.is_decoder:
                raise ValueError(
                    "config.add_cross_attention=True needs config.is_decoder=True (cross-attention is for decoders)"
                )
            # HF builds cross-attention with absolute positions whatever the config says
            self.crossattention = BertAttention(config, position_embedding_type="absolute", name="crossattention")
        self.intermediate = BertIntermediate(config, name="intermediate")
        self._output_layer = BertOutput(config, name="output")

    @property
    def output(self) -> BertOutput:  # type: ignore[override]
        return self._output_layer

    def build(self, input_shape: Any = None) -> None:
        self.attention.build()
        if self.config.add_cross_attention:
            self.crossattention.build()
        self.intermediate.build()
        self._output_layer.build()
        self.built = True

    def _feed_forward(self, hidden_states, training):
        return self._output_layer(self.intermediate(hidden_states), hidden_states, training=training)

    def call(
        self,
        hidden_states,
        attention_mask=None,
        head_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        past_key_value=None,
        cache_active=False,
        training=False,
    ):
        """Returns (hidden (batch, seq, hidden), self probs, cross probs or None, present key/values tuple)."""
        self_past = None if past_key_value is None else tuple(past_key_value[:2])
        hidden, self_probs, present = self.attention(
            hidden_states,
            attention_mask=attention_mask,
            head_mask=head_mask,
            past_key_value=self_past,
            cache_active=cache_active,
            training=training,
        )
        cross_probs = None
        if self.config.is_decoder and encoder_hidden_states is not None:
            if not self.config.add_cross_attention:
                raise ValueError("encoder_hidden_states were given but config.add_cross_attention is False")
            cross_past = None if past_key_value is None or len(past_key_value) < 4 else tuple(past_key_value[2:4])
            hidden, cross_probs, cross_present = self.crossattention(
                hidden,
                attention_mask=encoder_attention_mask,
                head_mask=head_mask,
                encoder_hidden_states=encoder_hidden_states,
                past_key_value=cross_past,
                training=training,
            )
            present = present + cross_present
        chunk = self.config.chunk_size_feed_forward
        seq = hidden.shape[1]
        if chunk and seq is not None and seq % chunk == 0 and seq > chunk:
            # same result as one pass; bounds peak memory of the intermediate activations
            pieces = tf.split(hidden, seq // chunk, axis=1)
            hidden = tf.concat([self._feed_forward(p, training) for p in pieces], axis=1)
        else:
            hidden = self._feed_forward(hidden, training)
        return hidden, self_probs, cross_probs, present


@keras.saving.register_keras_serializable(package=_SERIALIZABLE)
class BertEncoder(keras.layers.Layer):
    """``layer[i]`` for i < num_hidden_layers, applied in order."""

    def __init__(self, config: BertConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.layer = [BertLayer(config, name=f"layer.{i}") for i in range(config.num_hidden_layers)]

    def build(self, input_shape: Any = None) -> None:
        for layer in self.layer:
            layer.build()
        self.built = True

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
    ):
        all_hidden = (hidden_states,) if output_hidden_states else None
        all_attn = () if output_attentions else None
        all_cross = () if output_attentions and self.config.add_cross_attention else None
        presents = () if use_cache else None
        for i, layer in enumerate(self.layer):
            hidden_states, probs, cross_probs, present = layer(
                hidden_states,
                attention_mask=attention_mask,
                head_mask=None if head_mask is None else head_mask[i],
                encoder_hidden_states=encoder_hidden_states,
                encoder_attention_mask=encoder_attention_mask,
                past_key_value=None if past_key_values is None else past_key_values[i],
                cache_active=cache_active,
                training=training,
            )
            if output_hidden_states:
                all_hidden += (hidden_states,)
            if output_attentions:
                all_attn += (probs,)
                if all_cross is not None and cross_probs is not None:
                    all_cross += (cross_probs,)
            if use_cache:
                presents += (present,)
        return hidden_states, presents, all_hidden, all_attn, all_cross or None


@keras.saving.register_keras_serializable(package=_SERIALIZABLE)
class BertPooler(keras.layers.Layer):
    """tanh(dense(hidden[:, 0])): float32 (batch, hidden)."""

    def __init__(self, config: BertConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.dense = _dense(config.hidden_size, "dense")

    def build(self, input_shape: Any = None) -> None:
        self.dense.build((None, self.config.hidden_size))
        self.built = True

    def call(self, hidden_states):
        return tf.tanh(self.dense(hidden_states[:, 0]))


@keras.saving.register_keras_serializable(package=_SERIALIZABLE)
class BertMainLayer(keras.layers.Layer):
    """The backbone: ``embeddings``, ``encoder``, optional ``pooler``. Heads hold it as ``bert``."""

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.add_pooling_layer = add_pooling_layer
        self.embeddings = BertEmbeddings(config, name="embeddings")
        self.encoder = BertEncoder(config, name="encoder")
        self.pooler = BertPooler(config, name="pooler") if add_pooling_layer else None

    def build(self, input_shape: Any = None) -> None:
        self.embeddings.build()
        self.encoder.build()
        if self.pooler is not None:
            self.pooler.build()
        self.built = True

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
        training=False,
    ):
        """Returns BaseModelOutputWithPoolingAndCrossAttentions (all fields tensors or tuples of tensors)."""
        config = self.config
        output_attentions = config.output_attentions if output_attentions is None else bool(output_attentions)
        output_hidden_states = (
            config.output_hidden_states if output_hidden_states is None else bool(output_hidden_states)
        )
        use_cache = bool(config.use_cache if use_cache is None else use_cache) and config.is_decoder
        input_ids = _to_tensor(input_ids, tf.int32)
        inputs_embeds = _to_tensor(inputs_embeds, tf.float32)
        attention_mask = _to_tensor(attention_mask, tf.float32)
        token_type_ids = _to_tensor(token_type_ids, tf.int32)
        position_ids = _to_tensor(position_ids, tf.int32)
        head_mask = _to_tensor(head_mask, tf.float32)
        encoder_hidden_states = _to_tensor(encoder_hidden_states, tf.float32)
        encoder_attention_mask = _to_tensor(encoder_attention_mask, tf.float32)
        if past_key_values is not None:
            past_key_values = tuple(tuple(_to_tensor(t, tf.float32) for t in layer) for layer in past_key_values)
        check_inputs(
            config,
            input_ids,
            inputs_embeds,
            attention_mask,
            token_type_ids,
            position_ids,
            head_mask,
            encoder_hidden_states,
            past_key_values,
        )

        shape_src = input_ids if input_ids is not None else inputs_embeds
        batch, seq = _shape_list(shape_src)[:2]
        past_length = 0 if past_key_values is None else _shape_list(past_key_values[0][0])[2]
        # HF creates a cache on the first decoder call with use_cache, which changes relative-position queries
        cache_active = config.is_decoder and (use_cache or past_key_values is not None)

        embedding_output = self.embeddings(
            input_ids=input_ids,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            past_length=past_length,
            training=training,
        )

        if attention_mask is None:
            attention_mask = tf.ones((batch, past_length + seq), tf.float32)
        if attention_mask.shape.rank == 2:
            if config.is_decoder:
                causal = tf.cast(tf.range(seq)[None, :] <= tf.range(seq)[:, None], tf.float32)  # (seq, seq)
                causal = tf.concat([tf.ones((seq, past_length), tf.float32), causal], axis=-1)
                keep = causal[None, None, :, :] * attention_mask[:, None, None, :]
            else:
                keep = attention_mask[:, None, None, :]
        elif attention_mask.shape.rank == 3:
            keep = attention_mask[:, None, :, :]
        else:
            keep = attention_mask
        extended_mask = _extended_mask(keep)

        encoder_extended_mask = None
        if config.is_decoder and encoder_hidden_states is not None:
            if encoder_attention_mask is None:
                encoder_attention_mask = tf.ones(_shape_list(encoder_hidden_states)[:2], tf.float32)
            if encoder_attention_mask.shape.rank == 3:
                encoder_extended_mask = _extended_mask(encoder_attention_mask[:, None, :, :])
            else:
                encoder_extended_mask = _extended_mask(encoder_attention_mask[:, None, None, :])

        if head_mask is not None:
            if head_mask.shape.rank == 1:
                head_mask = tf.tile(head_mask[None, :], (config.num_hidden_layers, 1))
            head_mask = head_mask[:, None, :, None, None]  # (layers, 1, heads, 1, 1) broadcast over probs

        sequence_output, presents, all_hidden, all_attn, all_cross = self.encoder(
            embedding_output,
            attention_mask=extended_mask,
            head_mask=head_mask,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_extended_mask,
            past_key_values=past_key_values,
            use_cache=use_cache,
            cache_active=cache_active,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            training=training,
        )
        pooled = self.pooler(sequence_output) if self.pooler is not None else None
        return BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence_output,
            pooler_output=pooled,
            past_key_values=presents,
            hidden_states=all_hidden,
            attentions=all_attn,
            cross_attentions=all_cross,
        )


def check_inputs(
    config,
    input_ids,
    inputs_embeds,
    attention_mask,
    token_type_ids,
    position_ids,
    head_mask,
    encoder_hidden_states,
    past_key_values,
) -> None:
    """bert_core's checks: static shapes always; id ranges only on concrete (eager) tensors."""
    validation.check_exclusive_inputs(input_ids is not None, inputs_embeds is not None)
    validation.check_decoder_inputs(config, encoder_hidden_states is not None, past_key_values is not None)
    ref_name, ref = ("input_ids", input_ids) if input_ids is not None else ("inputs_embeds", inputs_embeds)
    ref_shape = _static_shape(ref)
    if input_ids is not None:
        validation.check_rank("input_ids", ref_shape, 2, "batch, seq_len")
    else:
        validation.check_rank("inputs_embeds", ref_shape, 3, "batch, seq_len, hidden")
    in_shape = ref_shape[:2]
    static = all(d is not None for d in in_shape)
    # None: the cache length is only known at run time (inside a trace)
    past_length = 0 if past_key_values is None else past_key_values[0][0].shape[2]
    if token_type_ids is not None and static and None not in _static_shape(token_type_ids):
        validation.check_same_shape("token_type_ids", _static_shape(token_type_ids), ref_name, in_shape)
    if attention_mask is not None:
        mask_shape = _static_shape(attention_mask)
        if len(mask_shape) not in (2, 3, 4):
            validation.check_attention_mask(mask_shape, in_shape[0], in_shape[1])
        if len(mask_shape) == 2 and static and past_length is not None and None not in mask_shape:
            validation.check_attention_mask(mask_shape, in_shape[0], in_shape[1] + past_length)
    if head_mask is not None:
        validation.check_head_mask(_static_shape(head_mask), config.num_hidden_layers, config.num_attention_heads)
    if in_shape[1] is not None and past_length is not None:
        validation.check_sequence_length(in_shape[1], past_length, config.max_position_embeddings)
    if not tf.executing_eagerly():
        return  # inside a trace values are unknown; only the static checks above apply
    if input_ids is not None and int(tf.size(input_ids)) > 0:
        validation.check_token_ids(int(tf.reduce_min(input_ids)), int(tf.reduce_max(input_ids)), config.vocab_size)
    if token_type_ids is not None and int(tf.size(token_type_ids)) > 0:
        validation.check_token_type_ids(
            int(tf.reduce_min(token_type_ids)), int(tf.reduce_max(token_type_ids)), config.type_vocab_size
        )
    if position_ids is not None and int(tf.size(position_ids)) > 0:
        validation.check_position_ids(
            int(tf.reduce_min(position_ids)), int(tf.reduce_max(position_ids)), config.max_position_embeddings
        )


# ================================================================================================ heads


@keras.saving.register_keras_serializable(package=_SERIALIZABLE)
class BertPredictionHeadTransform(keras.layers.Layer):
    """dense -> activation -> LayerNorm."""

    def __init__(self, config: BertConfig, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.dense = _dense(config.hidden_size, "dense")
        self.act = ACT2FN[config.hidden_act]
        self.LayerNorm = _layer_norm(config)

    def build(self, input_shape: Any = None) -> None:
        self.dense.build((None, None, self.config.hidden_size))
        self.LayerNorm.build((None, None, self.config.hidden_size))
        self.built = True

    def call(self, hidden_states):
        return self.LayerNorm(self.act(self.dense(hidden_states)))


@keras.saving.register_keras_serializable(package=_SERIALIZABLE)
class BertLMPredictionHead(keras.layers.Layer):
    """``transform``, then ``decoder`` (the word embeddings, transposed, when tied) plus ``bias``: (batch, seq, vocab)."""

    def __init__(self, config: BertConfig, word_embeddings: keras.layers.Embedding, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.transform = BertPredictionHeadTransform(config, name="transform")
        if config.tie_word_embeddings:
            self._tied_embeddings = word_embeddings  # tracked by the backbone; the decoder reads the same variable
        else:
            self.decoder = _dense(config.vocab_size, "decoder", use_bias=False)

    def build(self, input_shape: Any = None) -> None:
        self.transform.build()
        if not self.config.tie_word_embeddings:
            self.decoder.build((None, None, self.config.hidden_size))
        self.bias = self.add_weight(shape=(self.config.vocab_size,), initializer="zeros", name="bias")
        self.built = True

    def call(self, hidden_states):
        hidden_states = self.transform(hidden_states)
        if self.config.tie_word_embeddings:
            logits = tf.matmul(hidden_states, self._tied_embeddings.embeddings, transpose_b=True)
        else:
            logits = self.decoder(hidden_states)
        return logits + self.bias


@keras.saving.register_keras_serializable(package=_SERIALIZABLE)
class BertHeads(keras.layers.Layer):
    """``cls``: ``predictions`` (MLM) and/or ``seq_relationship`` (next-sentence logits, 2 classes)."""

    def __init__(
        self, config: BertConfig, word_embeddings=None, mlm: bool = True, nsp: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.config = config
        self.has_mlm, self.has_nsp = mlm, nsp
        if mlm:
            self.predictions = BertLMPredictionHead(config, word_embeddings, name="predictions")
        if nsp:
            self.seq_relationship = _dense(2, "seq_relationship")

    def build(self, input_shape: Any = None) -> None:
        if self.has_mlm:
            self.predictions.build()
        if self.has_nsp:
            self.seq_relationship.build((None, self.config.hidden_size))
        self.built = True


# ================================================================================================ public models

_BASE_ARGS = (
    "input_ids",
    "attention_mask",
    "token_type_ids",
    "position_ids",
    "head_mask",
    "inputs_embeds",
    "encoder_hidden_states",
    "encoder_attention_mask",
    "past_key_values",
    "use_cache",
    "output_attentions",
    "output_hidden_states",
    "return_dict",
)


class BertPreTrainedModel(keras.Model):
    """Shared machinery: construction from a config, weights by canonical name, HF-TF-style inputs, fit/evaluate.

    Args:
        config: a ``bert_core.BertConfig``.
        seed: seed of ``bert_core.init.init_weights`` (all backends start from the same weights for a seed).
        add_pooling_layer: keep the pooler (default: as HF's class does).
    """

    head_name = "BertModel"
    label_names: Tuple[str, ...] = ("labels",)

    @property
    def _list_order(self) -> Tuple[str, ...]:
        """Order of inputs given as one list, as in transformers' TFBertFor*.call: only the bare model and the
        LM head list the decoder arguments."""
        if self.head_name in ("BertModel", "BertLMHeadModel"):
            return _BASE_ARGS + self.label_names
        return _BASE_ARGS[:6] + ("output_attentions", "output_hidden_states", "return_dict") + self.label_names

    def __init__(
        self,
        config: BertConfig,
        *,
        seed: int = 0,
        add_pooling_layer: Optional[bool] = None,
        _initialize: bool = True,
        **kwargs: Any,
    ) -> None:
        if isinstance(config, dict):
            config = BertConfig.from_dict(config)
        kwargs.setdefault("name", self.head_name)
        super().__init__(**kwargs)
        self.config = config
        self.add_pooling_layer = head_has_pooler(self.head_name, add_pooling_layer)
        self.seed = seed
        self._make_layers()
        self._build_all()
        if _initialize:
            self.load_canonical_weights(
                init_weights(config, self.head_name, seed, add_pooling_layer=self.add_pooling_layer)
            )

    # ---- construction
    def _make_layers(self) -> None:
        self.bert = BertMainLayer(self.config, self.add_pooling_layer, name="bert")

    def _build_all(self) -> None:
        for layer in self._layers:
            if hasattr(layer, "build") and not layer.built:
                layer.build()
        self.built = True

    def build(self, input_shape: Any = None) -> None:  # everything is built at construction
        self.built = True

    def get_config(self) -> Dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "seed": self.seed,
            "add_pooling_layer": self.add_pooling_layer,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config: Dict[str, Any]):
        config = dict(config)
        bert_config = BertConfig.from_dict(config.pop("config"))
        # the .keras loader restores the variables right after; skip the numpy init
        return cls(bert_config, _initialize=False, **config)

    # ---- weights by canonical name
    def _specs(self):
        return stored_weights(self.config, self.head_name, self.add_pooling_layer)

    def _variable(self, spec) -> keras.Variable:
        path, _ = backend_path(spec, "tf")
        obj: Any = self
        for part in path:
            obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
        return obj

    def canonical_variables(self) -> "OrderedDict[str, keras.Variable]":
        """Every stored tensor's Keras variable, by canonical (PyTorch state-dict) name."""
        return OrderedDict((name, self._variable(spec)) for name, spec in self._specs().items())

    def load_canonical_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Set every stored tensor from canonical PyTorch-layout arrays (exactly the names of ``stored_weights``).

        Raises:
            ValueError: names missing, unexpected, or of the wrong shape (all listed).
        """
        specs = self._specs()
        missing = [n for n in specs if n not in weights]
        unexpected = [n for n in weights if n not in specs]
        bad = [
            f"{n}: got {tuple(np.shape(weights[n]))}, expected {specs[n].shape}"
            for n in specs
            if n in weights and tuple(np.shape(weights[n])) != specs[n].shape
        ]
        if missing or unexpected or bad:
            raise ValueError(
                f"cannot load weights into {self.head_name}: missing {missing}, unexpected {unexpected}, "
                f"wrong shapes {bad}"
            )
        for name, spec in specs.items():
            array = to_backend_array(np.asarray(weights[name], dtype=np.float32), spec, "tf")
            self._variable(spec).assign(array)

    def canonical_weights(self) -> "OrderedDict[str, np.ndarray]":
        """float32 numpy arrays in PyTorch layout, keyed like ``stored_weights(config, head_name)``."""
        return OrderedDict(
            (name, from_backend_array(np.asarray(self._variable(spec).numpy(), np.float32), spec, "tf"))
            for name, spec in self._specs().items()
        )

    # ---- checkpoints
    @classmethod
    def from_pretrained(
        cls,
        name_or_path,
        *,
        config: Optional[BertConfig] = None,
        revision=None,
        cache_dir=None,
        token=None,
        local_files_only: bool = False,
        ignore_mismatched_sizes: bool = False,
        output_loading_info: bool = False,
        seed: int = 0,
        add_pooling_layer: Optional[bool] = None,
        **config_overrides: Any,
    ):
        """Load a HF-format checkpoint (safetensors / bin / h5 / msgpack); missing head weights get seeded init.

        Returns the model, or ``(model, loading_info_dict)`` with ``output_loading_info=True``.
        """
        pool = head_has_pooler(cls.head_name, add_pooling_layer)
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
        weights = complete_weights(weights, config, cls.head_name, seed, add_pooling_layer=pool)
        model = cls(config, seed=seed, add_pooling_layer=pool, _initialize=False)
        model.load_canonical_weights(weights)
        return (model, info.as_dict()) if output_loading_info else model

    def save_pretrained(self, save_directory, max_shard_size="5GB"):
        """Write ``config.json`` + canonical safetensors that HF's ``BertFor*`` and every backend load."""
        return _save_pretrained(
            save_directory,
            self.config,
            self.canonical_weights(),
            architecture=self.head_name,
            max_shard_size=max_shard_size,
        )

    # ---- HF-TF-style call: keywords, one tensor, a list in the documented order, or a dict
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
        labels=None,
        next_sentence_label=None,
        start_positions=None,
        end_positions=None,
        training=False,
    ):
        """Run the model. Arguments as HF's ``BertFor*.forward`` (numpy or tf tensors); ``input_ids`` may also be a
        dict of inputs or a list in this order. ``training`` turns dropout on. Labels a head does not take raise.

        Returns the head's ``bert_core.outputs`` class, or its ``to_tuple()`` when ``return_dict=False``.
        """
        given = dict(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            head_mask=head_mask,
            inputs_embeds=inputs_embeds,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            past_key_values=past_key_values,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=return_dict,
            labels=labels,
            next_sentence_label=next_sentence_label,
            start_positions=start_positions,
            end_positions=end_positions,
        )
        v = self._unpack(given)
        output = self._forward(v, training)
        return_dict = v.get("return_dict")
        return output if return_dict is None or return_dict else output.to_tuple()

    def _unpack(self, given: Dict[str, Any]) -> Dict[str, Any]:
        names = _BASE_ARGS + self.label_names
        first = given["input_ids"]
        packed: Dict[str, Any] = {}
        if isinstance(first, Mapping):
            packed = dict(first)
        elif (
            isinstance(first, (list, tuple))
            and first
            and all(x is None or isinstance(x, (tf.Tensor, np.ndarray, keras.Variable)) for x in first)
        ):
            if len(first) > len(self._list_order):
                raise TypeError(
                    f"{type(self).__name__} takes at most {len(self._list_order)} list inputs "
                    f"({list(self._list_order)}), got {len(first)}"
                )
            packed = dict(zip(self._list_order, first))
        if packed:
            given = dict(given, input_ids=None)
            for name, value in packed.items():
                if name not in names:
                    raise TypeError(
                        f"{type(self).__name__} got unexpected input {name!r}; expected some of {list(names)}"
                    )
                if given.get(name) is not None and value is not None:
                    raise TypeError(f"{type(self).__name__} got {name!r} twice (in the packed inputs and as a keyword)")
                if value is not None:
                    given[name] = value
        for name in ("labels", "next_sentence_label", "start_positions", "end_positions"):
            if given.get(name) is not None and name not in self.label_names:
                raise TypeError(f"{type(self).__name__} takes no {name!r}; its labels are {list(self.label_names)}")
        return given

    def _backbone(self, v: Dict[str, Any], training: bool, **override: Any):
        args = {k: v.get(k) for k in _BASE_ARGS if k != "return_dict"}
        args.update(override)
        return self.bert(**args, training=training)

    # ---- Keras training: the head's own loss when compile() got none
    def _labels_into_inputs(self, x: Any, y: Any) -> Dict[str, Any]:
        inputs = dict(x) if isinstance(x, Mapping) else {"input_ids": x}
        if isinstance(y, Mapping):
            inputs.update(y)
        elif y is not None:
            inputs[self.label_names[0]] = y
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
        self._loss_tracker.update_state(loss)
        grads = tape.gradient(loss, self.trainable_weights)
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

    # ---- serving
    def serving_function(self, jit_compile: bool = False):
        """A ``tf.function`` over (input_ids, attention_mask, token_type_ids) int32 (batch, seq), any batch/length,
        returning a dict of the head's output tensors (no loss)."""
        spec = tf.TensorSpec((None, None), tf.int32)
        if self.head_name == "BertForMultipleChoice":
            spec = tf.TensorSpec((None, None, None), tf.int32)

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
        fn = self.serving_function()
        archive.add_endpoint("serve", fn)
        archive.write_out(os.fspath(path), verbose=False)


# ------------------------------------------------------------------------------------------------ the nine classes


def _register(cls):
    return keras.saving.register_keras_serializable(package=_SERIALIZABLE)(cls)


@_register
class BertModel(BertPreTrainedModel):
    """The bare backbone. call(...) -> BaseModelOutputWithPoolingAndCrossAttentions:
    last_hidden_state float32 (batch, seq, hidden); pooler_output (batch, hidden) (None without pooler);
    past_key_values (decoder + use_cache); hidden_states / attentions / cross_attentions tuples when asked for.
    Names have no ``bert.`` prefix, as in the checkpoint of a bare BertModel."""

    head_name = "BertModel"
    label_names = ()

    def _make_layers(self) -> None:
        self.embeddings = BertEmbeddings(self.config, name="embeddings")
        self.encoder = BertEncoder(self.config, name="encoder")
        self.pooler = BertPooler(self.config, name="pooler") if self.add_pooling_layer else None

    def _build_all(self) -> None:
        self.embeddings.build()
        self.encoder.build()
        if self.pooler is not None:
            self.pooler.build()
        self.built = True

    def _forward(self, v: Dict[str, Any], training: bool):
        # the bare model owns embeddings/encoder/pooler directly (no ``bert.`` prefix); reuse the backbone forward
        return BertMainLayer.call(self, **{k: v.get(k) for k in _BASE_ARGS if k != "return_dict"}, training=training)


@_register
class BertForPreTraining(BertPreTrainedModel):
    """MLM + NSP heads. Returns BertForPreTrainingOutput: prediction_logits (batch, seq, vocab),
    seq_relationship_logits (batch, 2); loss (scalar) = MLM CE + NSP CE when both labels are given."""

    head_name = "BertForPreTraining"
    label_names = ("labels", "next_sentence_label")

    def _make_layers(self) -> None:
        super()._make_layers()
        self.cls = BertHeads(self.config, self.bert.embeddings.word_embeddings, mlm=True, nsp=True, name="cls")

    def _forward(self, v: Dict[str, Any], training: bool):
        out = self._backbone(v, training)
        prediction_logits = self.cls.predictions(out.last_hidden_state)
        nsp_logits = self.cls.seq_relationship(out.pooler_output)
        loss = None
        if v.get("labels") is not None and v.get("next_sentence_label") is not None:
            loss = cross_entropy(
                tf.reshape(prediction_logits, (-1, self.config.vocab_size)), v["labels"]
            ) + cross_entropy(tf.reshape(nsp_logits, (-1, 2)), v["next_sentence_label"])
        return BertForPreTrainingOutput(
            loss=loss,
            prediction_logits=prediction_logits,
            seq_relationship_logits=nsp_logits,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )


@_register
class BertLMHeadModel(BertPreTrainedModel):
    """Causal LM (config.is_decoder=True). Returns CausalLMOutputWithCrossAttentions: logits (batch, seq, vocab),
    loss = CE(logits[:, :-1], labels[:, 1:]) ignoring -100; past_key_values per layer (k, v[, cross_k, cross_v]),
    each float32 (batch, heads, seq, head_dim)."""

    head_name = "BertLMHeadModel"

    def _make_layers(self) -> None:
        super()._make_layers()
        self.cls = BertHeads(self.config, self.bert.embeddings.word_embeddings, mlm=True, nsp=False, name="cls")

    def _forward(self, v: Dict[str, Any], training: bool):
        labels = v.get("labels")
        out = self._backbone(v, training, **({"use_cache": False} if labels is not None else {}))
        logits = self.cls.predictions(out.last_hidden_state)
        loss = None
        if labels is not None:
            labels = _to_tensor(labels, tf.int32)
            shifted = logits[:, :-1, :]
            loss = cross_entropy(tf.reshape(shifted, (-1, self.config.vocab_size)), labels[:, 1:])
        return CausalLMOutputWithCrossAttentions(
            loss=loss,
            logits=logits,
            past_key_values=out.past_key_values,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
            cross_attentions=out.cross_attentions,
        )

    def generate(
        self,
        input_ids,
        max_new_tokens: int = 20,
        eos_token_id: Optional[int] = None,
        attention_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
    ):
        """Greedy decoding with the key/value cache. input_ids int (batch, seq) -> int32 (batch, seq + new).

        Rows that produced ``eos_token_id`` keep emitting it (pad_token_id if set differently is not used)."""
        ids = _to_tensor(input_ids, tf.int32)
        mask = tf.ones_like(ids, tf.float32) if attention_mask is None else _to_tensor(attention_mask, tf.float32)
        past = None
        step_ids = ids
        done = tf.zeros((ids.shape[0],), tf.bool)
        for _ in range(max_new_tokens):
            out = self(
                input_ids=step_ids,
                attention_mask=mask,
                past_key_values=past,
                use_cache=True,
                encoder_hidden_states=encoder_hidden_states,
                encoder_attention_mask=encoder_attention_mask,
            )
            next_ids = tf.argmax(out.logits[:, -1, :], axis=-1, output_type=tf.int32)
            if eos_token_id is not None:
                next_ids = tf.where(done, eos_token_id, next_ids)
                done = done | tf.equal(next_ids, eos_token_id)
            ids = tf.concat([ids, next_ids[:, None]], axis=1)
            mask = tf.concat([mask, tf.ones((ids.shape[0], 1), tf.float32)], axis=1)
            past, step_ids = out.past_key_values, next_ids[:, None]
            if eos_token_id is not None and bool(tf.reduce_all(done)):
                break
        return ids


@_register
class BertForMaskedLM(BertPreTrainedModel):
    """MLM head. Returns MaskedLMOutput: logits float32 (batch, seq, vocab); loss = CE over labels != -100."""

    head_name = "BertForMaskedLM"

    def _make_layers(self) -> None:
        super()._make_layers()
        self.cls = BertHeads(self.config, self.bert.embeddings.word_embeddings, mlm=True, nsp=False, name="cls")

    def _forward(self, v: Dict[str, Any], training: bool):
        out = self._backbone(v, training)
        logits = self.cls.predictions(out.last_hidden_state)
        loss = None
        if v.get("labels") is not None:
            loss = cross_entropy(tf.reshape(logits, (-1, self.config.vocab_size)), v["labels"])
        return MaskedLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions)


@_register
class BertForNextSentencePrediction(BertPreTrainedModel):
    """NSP head. Returns NextSentencePredictorOutput: logits float32 (batch, 2); loss = CE(next_sentence_label)."""

    head_name = "BertForNextSentencePrediction"
    # HF 4.57 takes ``labels`` and still accepts the older ``next_sentence_label``
    label_names = ("labels", "next_sentence_label")

    def _make_layers(self) -> None:
        super()._make_layers()
        self.cls = BertHeads(self.config, None, mlm=False, nsp=True, name="cls")

    def _forward(self, v: Dict[str, Any], training: bool):
        out = self._backbone(v, training)
        logits = self.cls.seq_relationship(out.pooler_output)
        loss = None
        labels = v.get("labels") if v.get("labels") is not None else v.get("next_sentence_label")
        if labels is not None:
            loss = cross_entropy(logits, labels)
        return NextSentencePredictorOutput(
            loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
        )


class _ClassifierModel(BertPreTrainedModel):
    _classifier_attr = "classifier"

    def _make_layers(self) -> None:
        super()._make_layers()
        self.dropout = keras.layers.Dropout(self.config.classifier_dropout_prob, name="dropout")
        units = 1 if self.head_name == "BertForMultipleChoice" else self.config.num_labels
        setattr(self, self._classifier_attr, _dense(units, self._classifier_attr))

    def _build_all(self) -> None:
        self.bert.build()
        getattr(self, self._classifier_attr).build((None, self.config.hidden_size))
        if hasattr(self, "cls"):
            self.cls.build()
        self.built = True


@_register
class BertForSequenceClassification(_ClassifierModel):
    """Pooled output -> dropout -> classifier. logits float32 (batch, num_labels). Loss by problem type:
    regression (MSE), single_label_classification (CE, -100 ignored), multi_label_classification (BCE with logits)."""

    head_name = "BertForSequenceClassification"

    def _forward(self, v: Dict[str, Any], training: bool):
        out = self._backbone(v, training)
        logits = self.classifier(self.dropout(out.pooler_output, training=training))
        loss = None
        labels = v.get("labels")
        if labels is not None:
            labels = _to_tensor(labels)
            problem = validation.resolve_problem_type(self.config, labels.dtype.is_integer)
            if problem == "regression":
                if self.config.num_labels == 1:
                    loss = _mse(tf.reshape(logits, [-1]), tf.reshape(labels, [-1]))
                else:
                    loss = _mse(logits, labels)
            elif problem == "single_label_classification":
                loss = cross_entropy(tf.reshape(logits, (-1, self.config.num_labels)), labels)
            else:
                loss = _bce_with_logits(logits, labels)
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
        )


@_register
class BertForMultipleChoice(_ClassifierModel):
    """Inputs (batch, num_choices, seq) are flattened to (batch * num_choices, seq); logits float32
    (batch, num_choices); loss = CE(labels (batch,))."""

    head_name = "BertForMultipleChoice"

    def _forward(self, v: Dict[str, Any], training: bool):
        ids, embeds = _to_tensor(v.get("input_ids"), tf.int32), _to_tensor(v.get("inputs_embeds"), tf.float32)
        ref = ids if ids is not None else embeds
        if ref is None:
            validation.check_exclusive_inputs(False, False)
        validation.check_multiple_choice_shape(
            "input_ids" if ids is not None else "inputs_embeds", _static_shape(ref), 3 if ids is not None else 4
        )
        num_choices = _shape_list(ref)[1]
        flat = {}
        for name in ("input_ids", "attention_mask", "token_type_ids", "position_ids"):
            t = _to_tensor(v.get(name))
            if t is not None and name != "input_ids" and ids is not None and None not in _static_shape(t):
                validation.check_same_shape(name, _static_shape(t), "input_ids", _static_shape(ids))
            flat[name] = None if t is None else tf.reshape(t, (-1, _shape_list(t)[-1]))
        flat["inputs_embeds"] = (
            None if embeds is None else tf.reshape(embeds, (-1, _shape_list(embeds)[2], _shape_list(embeds)[3]))
        )
        out = self._backbone(v, training, **flat)
        logits = self.classifier(self.dropout(out.pooler_output, training=training))
        reshaped = tf.reshape(logits, (-1, num_choices))
        loss = None
        if v.get("labels") is not None:
            loss = cross_entropy(reshaped, v["labels"])
        return MultipleChoiceModelOutput(
            loss=loss, logits=reshaped, hidden_states=out.hidden_states, attentions=out.attentions
        )


@_register
class BertForTokenClassification(_ClassifierModel):
    """Sequence output -> dropout -> classifier: logits float32 (batch, seq, num_labels); loss = CE, -100 ignored."""

    head_name = "BertForTokenClassification"

    def _forward(self, v: Dict[str, Any], training: bool):
        out = self._backbone(v, training)
        logits = self.classifier(self.dropout(out.last_hidden_state, training=training))
        loss = None
        if v.get("labels") is not None:
            loss = cross_entropy(tf.reshape(logits, (-1, self.config.num_labels)), v["labels"])
        return TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
        )


@_register
class BertForQuestionAnswering(_ClassifierModel):
    """Span head ``qa_outputs``: start_logits / end_logits float32 (batch, seq). Loss = (CE(start) + CE(end)) / 2
    with positions clamped to [0, seq] and position seq ignored (as HF PyTorch)."""

    head_name = "BertForQuestionAnswering"
    label_names = ("start_positions", "end_positions")
    _classifier_attr = "qa_outputs"

    def _make_layers(self) -> None:
        validation.check_qa_num_labels(self.config)
        BertPreTrainedModel._make_layers(self)
        self.qa_outputs = _dense(self.config.num_labels, "qa_outputs")

    def _forward(self, v: Dict[str, Any], training: bool):
        out = self._backbone(v, training)
        logits = self.qa_outputs(out.last_hidden_state)
        start_logits, end_logits = logits[..., 0], logits[..., 1]
        loss = None
        if v.get("start_positions") is not None and v.get("end_positions") is not None:
            seq = _shape_list(start_logits)[1]
            losses = []
            for positions, lg in ((v["start_positions"], start_logits), (v["end_positions"], end_logits)):
                positions = tf.clip_by_value(tf.reshape(_to_tensor(positions, tf.int32), [-1]), 0, seq)
                losses.append(cross_entropy(lg, positions, ignore_index=seq))
            loss = (losses[0] + losses[1]) / 2.0
        return QuestionAnsweringModelOutput(
            loss=loss,
            start_logits=start_logits,
            end_logits=end_logits,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )


HEAD_CLASSES = {
    cls.head_name: cls
    for cls in (
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
}


# ------------------------------------------------------------------------------------------------ conformance hook


def canonical_grads(model: BertPreTrainedModel, inputs: Dict[str, Any]) -> Tuple[float, "OrderedDict[str, np.ndarray]"]:
    """(loss, gradients by canonical name in PyTorch layout) for ``inputs`` holding the labels (training=False).

    With a tied decoder the MLM gradient lands in ``word_embeddings`` (one shared variable), as in PyTorch.
    """
    variables = model.canonical_variables()
    specs = model._specs()
    with tf.GradientTape() as tape:
        output = model(**inputs, training=False)
        loss = output["loss"]
    grads = tape.gradient(loss, list(variables.values()))
    result: "OrderedDict[str, np.ndarray]" = OrderedDict()
    for (name, var), grad in zip(variables.items(), grads):
        g = (
            np.zeros(var.shape, np.float32)
            if grad is None
            else np.asarray(tf.convert_to_tensor(grad).numpy(), np.float32)
        )
        result[name] = from_backend_array(g, specs[name], "tf")
    return float(loss.numpy()), result
