"""BERT in PyTorch, numerically equal to HF transformers 4.57 ``modeling_bert``.

One program in three frameworks (``docs/ladder.md``): ``bert_tf/modeling.py`` and ``bert_flax/modeling.py`` are this
file transliterated. Read top to bottom: activations, input checks, masks and losses, the module ladder named like the
checkpoint (``embeddings``, ``encoder.layer.{i}.attention.self.query`` ...), the cache, then the models: the shared
machinery, ``BertModel`` and the eight heads. Every weight name, shape, initial value, output class and input check
comes from ``bert_core``; this file only computes.

Shapes: B batch, S new sequence length, P cached (past) length, K = P + S keys, E encoder length, H hidden size,
N heads, D head size (H / N), V vocab size, C choices.
"""

from __future__ import annotations

import inspect
import math
import os
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from bert_core import compiled, validation
from bert_core.checkpoint import load_head_weights
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
)
from bert_core.weights import backend_path, check_weights_match, head_has_pooler, stored_weights

# -------------------------------------------------------------------------------------------------------- activations


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    # HF's "gelu_new" (GPT-2 / original BERT TF code), written with pow as HF does so the rounding matches.
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def _gelu_fast(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))


def _gelu_python(x: torch.Tensor) -> torch.Tensor:
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


ACT2FN = {
    "gelu": F.gelu,
    "gelu_python": _gelu_python,
    "gelu_new": _gelu_tanh,
    "gelu_fast": _gelu_fast,
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
    "mish": F.mish,
}


# ------------------------------------------------------------------------------------- bfloat16 CPU inference kernels

# oneDNN's fused linear (the kernel inductor uses for CPU linears): bias, an exact-GELU or a residual add applied to the
# float32 accumulator in the GEMM's epilogue. In a bfloat16 forward ``nn.Linear`` is aten::addmm, which first copies
# the broadcast bias into its output and leaves GELU and the residual add as separate passes over bfloat16 memory.
_ONEDNN_LINEAR = getattr(torch.ops.mkldnn, "_linear_pointwise", None) if torch.backends.mkldnn.is_available() else None


def _fused_bf16_linear(x: torch.Tensor, layer: nn.Linear) -> bool:
    """True where ``layer(x)`` may run as a fused oneDNN bfloat16 linear: bfloat16 CPU tensors with autograd off
    (inference), outside torch.compile / export / TorchScript tracing (those see the plain ops). Float32 never does:
    its numbers stay the reference's."""
    return (
        _ONEDNN_LINEAR is not None
        and x.dtype == torch.bfloat16
        and layer.weight.dtype == torch.bfloat16
        and x.device.type == "cpu"
        and not torch.is_grad_enabled()
        and not torch.jit.is_tracing()
        and not _is_tracing()
    )


def _linear(layer: nn.Linear, x: torch.Tensor, gelu: bool = False) -> torch.Tensor:
    """``layer(x)``, or ``F.gelu(layer(x))`` with ``gelu``: float (..., in) -> (..., out). In the fused kernel the exact
    GELU is computed on the float32 sums before they are rounded to bfloat16."""
    if not _fused_bf16_linear(x, layer):
        return F.gelu(layer(x)) if gelu else layer(x)
    return _ONEDNN_LINEAR(
        x.contiguous(), layer.weight, layer.bias, "gelu" if gelu else "none", [], "none" if gelu else ""
    )


def _linear_add(layer: nn.Linear, x: torch.Tensor, residual: torch.Tensor, dropout: nn.Dropout) -> torch.Tensor:
    """``dropout(layer(x)) + residual``: float (B, S, in), (B, S, out) -> (B, S, out), the residual added in the GEMM's
    epilogue when dropout is off and the fused kernel applies."""
    if dropout.training and dropout.p > 0 or not _fused_bf16_linear(x, layer) or residual.dtype != x.dtype:
        return dropout(layer(x)) + residual
    return _ONEDNN_LINEAR.binary(x.contiguous(), residual.contiguous(), layer.weight, layer.bias, "add")


# ------------------------------------------------------------------------------------------------------- input checks


def _is_tracing() -> bool:
    """True under torch.compile / torch.export, where reading tensor values (``.item()``) is not allowed."""
    compiler = getattr(torch, "compiler", None)
    if compiler is None:
        return False
    is_exporting = getattr(compiler, "is_exporting", lambda: False)
    return bool(compiler.is_compiling() or is_exporting())


def _static(dim: Any) -> Optional[int]:
    # A dim torch.export / dynamic compile made symbolic is unknown to the checks (None), not a value to guard on.
    # Dynamo shows symbolic dims as plain ints, and a check that compares or formats one specialises the graph to
    # that shape: under dynamo every dim is unknown (a compiled model checks its inputs eagerly, in ``__call__``).
    if not isinstance(dim, int) or torch.compiler.is_dynamo_compiling():
        return None
    return dim


def _as_tensor(x: Any) -> Any:
    """A numpy array as a tensor (int arrays as int64, others as they are); anything else unchanged."""
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x)).long() if x.dtype.kind in "iu" else torch.from_numpy(x)
    return x


def _array_info(x: Optional[torch.Tensor], values: bool) -> Optional[validation.ArrayInfo]:
    """What ``bert_core.validation`` needs to know of ``x``: shape, dtype kind, and (when ``values`` and ``x`` holds
    integers) its min and max. None for a missing input."""
    if x is None:
        return None
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"inputs must be torch.Tensor (or numpy arrays), got {type(x).__name__}")
    dtype = x.dtype
    if dtype == torch.bool:
        kind = "b"
    elif dtype.is_complex:
        kind = "c"
    elif dtype.is_floating_point:
        kind = "f"
    else:
        kind = "i" if dtype.is_signed else "u"
    low = high = None
    if values and kind in "iu" and x.numel():
        low, high = (int(v) for v in torch.aminmax(x))
    return validation.ArrayInfo(tuple(_static(d) for d in x.shape), kind, low, high)


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
    """``bert_core.validation.check_inputs`` on these tensors. Id ranges are checked only when not tracing."""
    values = not _is_tracing()
    validation.check_inputs(
        config,
        input_ids=_array_info(input_ids, values),
        attention_mask=_array_info(attention_mask, False),
        token_type_ids=_array_info(token_type_ids, values),
        position_ids=_array_info(position_ids, values),
        head_mask=_array_info(head_mask, False),
        inputs_embeds=_array_info(inputs_embeds, False),
        encoder_hidden_states=_array_info(encoder_hidden_states, False),
        encoder_attention_mask=_array_info(encoder_attention_mask, False),
        has_cache=past_key_values is not None,
        past_length=_static(_past_length(past_key_values)),
    )


def _check_compiled_call(model: "BertPreTrainedModel", inputs: Mapping[str, Any]) -> None:
    """Every input check of the eager forward (shapes and values), made eagerly before a compiled call, whose graph
    makes none of them (``_static``). ``inputs``: the forward's arguments by name."""
    names = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds")
    args = model._encoder_inputs({name: inputs.get(name) for name in names})
    _check_inputs(
        model.config,
        args["input_ids"],
        args["attention_mask"],
        args["token_type_ids"],
        args["position_ids"],
        inputs.get("head_mask"),
        args["inputs_embeds"],
        inputs.get("encoder_hidden_states"),
        inputs.get("encoder_attention_mask"),
        inputs.get("past_key_values"),
    )


def _check_labels(
    config: BertConfig, head: str, name: str, labels: Optional[torch.Tensor], logits: torch.Tensor
) -> None:
    """``bert_core.validation.check_labels`` on one label tensor of a head whose logits are (B, S, ...) or (B, C);
    values (class ids in range) only when not tracing."""
    if labels is None:
        return
    info = _array_info(labels, values=False)
    values = None if _is_tracing() else labels.detach().cpu().numpy()
    batch, second = (_static(d) for d in logits.shape[:2])
    validation.check_labels(
        config, head, name, info.shape, info.kind, values, batch=batch, seq_len=second, num_choices=second
    )


# --------------------------------------------------------------------------------------------------- masks and losses


def _extended_attention_mask(
    config: BertConfig, attention_mask: torch.Tensor, seq_len: int, past_length: int, dtype: torch.dtype
) -> torch.Tensor:
    """1 keep / 0 drop mask (B, K), (B, S, K) or (B, 1|N, S, K) -> additive float (B, 1|N, 1|S, K): 0 where kept,
    ``finfo(dtype).min`` where dropped. A decoder's (B, K) mask is combined with the causal mask."""
    if attention_mask.dim() == 4:
        mask = attention_mask
    elif attention_mask.dim() == 3:
        mask = attention_mask[:, None, :, :]
    elif config.is_decoder:
        device = attention_mask.device
        # Query i sits at absolute position P + i and sees keys 0..P+i.
        query_position = torch.arange(seq_len, device=device)[:, None] + past_length
        causal = torch.arange(attention_mask.shape[1], device=device)[None, :] <= query_position
        mask = causal[None, None, :, :].to(attention_mask.dtype) * attention_mask[:, None, None, :]
    else:
        mask = attention_mask[:, None, None, :]
    return (1.0 - mask.to(dtype)) * torch.finfo(dtype).min


def _encoder_attention_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Cross-attention mask, 1 keep / 0 drop, (B, E), (B, S, E) or (B, 1|N, S, E) -> additive float (B, 1|N, 1|S, E)."""
    if mask.dim() == 2:
        mask = mask[:, None, None, :]
    elif mask.dim() == 3:
        mask = mask[:, None, :, :]
    return (1.0 - mask.to(dtype)) * torch.finfo(dtype).min


def _head_mask(head_mask: Optional[torch.Tensor], num_layers: int, dtype: torch.dtype) -> Optional[torch.Tensor]:
    """(N,) or (L, N), 1 keep / 0 drop -> (L, 1, N, 1, 1): row i multiplies layer i's probabilities (B, N, S, K)."""
    if head_mask is None:
        return None
    if head_mask.dim() == 1:
        head_mask = head_mask[None].expand(num_layers, -1)
    return head_mask[:, None, :, None, None].to(dtype)


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean cross entropy over the labels != ignore_index, in float32; logits (..., classes), labels (...)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=ignore_index)


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean squared error (HF's MSELoss); the caller applies HF's squeeze rule for one label."""
    return F.mse_loss(a, b)


def _bce_with_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean binary cross entropy on logits (HF's BCEWithLogitsLoss), labels float multi-hot of the logits' shape."""
    return F.binary_cross_entropy_with_logits(logits, labels)


def _sampling_logits(
    logits: torch.Tensor, temperature: float, top_k: Optional[int], top_p: Optional[float]
) -> torch.Tensor:
    """HF's sampling processors in HF's order: temperature, top-k, top-p; removed tokens get -inf. logits (B, V)."""
    if temperature != 1.0:
        logits = logits / temperature
    if top_k is not None:
        # keep every logit >= the k-th largest (ties with it included)
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        # ascending order: drop the least likely tokens while their cumulative probability is <= 1 - top_p,
        # always keeping the most likely one (the last)
        sorted_logits, order = torch.sort(logits, descending=False)
        drop_sorted = sorted_logits.softmax(dim=-1).cumsum(dim=-1) <= 1 - top_p
        drop_sorted[:, -1] = False
        logits = logits.masked_fill(drop_sorted.scatter(1, order, drop_sorted), float("-inf"))
    return logits


# --------------------------------------------------------------------------------------------------------- the ladder


class BertEmbeddings(nn.Module):
    """word + token type (+ absolute position) embeddings, then LayerNorm and dropout -> float (B, S, H)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.position_embedding_type = config.position_embedding_type

    def forward(
        self,
        input_ids: Optional[torch.Tensor] = None,
        token_type_ids: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.Tensor] = None,
        inputs_embeds: Optional[torch.Tensor] = None,
        past_length: int = 0,
    ) -> torch.Tensor:
        """input_ids int (B, S) or inputs_embeds float (B, S, H); token_type_ids default zeros; position_ids int
        (B or 1, S) default P..P+S-1 (used only with absolute positions)."""
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        batch, seq_len = inputs_embeds.shape[:2]
        device = inputs_embeds.device
        if token_type_ids is None:
            token_type_ids = torch.zeros((batch, seq_len), dtype=torch.long, device=device)
        embeddings = inputs_embeds + self.token_type_embeddings(token_type_ids)
        if self.position_embedding_type == "absolute":
            if position_ids is None:
                position_ids = torch.arange(past_length, past_length + seq_len, device=device)[None, :]
            embeddings = embeddings + self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(embeddings))


class BertSelfAttention(nn.Module):
    """Multi-head scaled dot-product attention with optional relative positions and a key/value cache.

    ``use_sdpa`` (default True) sends the computation through ``F.scaled_dot_product_attention`` whenever the
    probabilities are not needed (no ``output_attentions``, no ``head_mask``, absolute positions); the explicit path
    gives the same numbers up to float rounding.
    """

    def __init__(self, config: BertConfig, position_embedding_type: Optional[str] = None) -> None:
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.head_dim
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.query = nn.Linear(config.hidden_size, self.all_head_size)
        self.key = nn.Linear(config.hidden_size, self.all_head_size)
        self.value = nn.Linear(config.hidden_size, self.all_head_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.position_embedding_type = position_embedding_type or config.position_embedding_type
        self.max_position_embeddings = config.max_position_embeddings
        if self.position_embedding_type in ("relative_key", "relative_key_query"):
            self.distance_embedding = nn.Embedding(2 * config.max_position_embeddings - 1, self.attention_head_size)
        self.use_sdpa = True

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        # (B, L, N*D) -> (B, N, L, D); N comes from the module because prune_heads may shrink it.
        return x.view(x.shape[0], -1, self.num_attention_heads, self.attention_head_size).transpose(1, 2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        head_mask: Optional[torch.Tensor] = None,
        encoder_hidden_states: Optional[torch.Tensor] = None,
        past_key_value: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
        cache_active: bool = False,
        output_attentions: bool = False,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]:
        """hidden_states float (B, S, H); attention_mask additive float broadcastable to (B, N, S, K); head_mask
        (1, N, 1, 1) or None; encoder_hidden_states float (B, E, H) makes this cross-attention.

        past_key_value: (keys, values) each (B, N, P, D), extended with this step's; for cross-attention the encoder
        keys/values (B, N, E, D), reused instead of recomputed. cache_active: a cache is in use (relative positions
        then place every query at the last key, as HF 4.57 does).

        Returns:
            (context float (B, S, H), probs float (B, N, S, K) or None, present (keys, values) each (B, N, K, D)).
        """
        query = self._heads(_linear(self.query, hidden_states))  # (B, N, S, D)
        is_cross = encoder_hidden_states is not None
        if is_cross and past_key_value is not None:
            key, value = past_key_value
        else:
            source = encoder_hidden_states if is_cross else hidden_states
            key, value = (
                self._heads(_linear(self.key, source)),
                self._heads(_linear(self.value, source)),
            )  # (B, N, S|E, D)
            if past_key_value is not None:
                key = torch.cat([past_key_value[0], key], dim=2)  # (B, N, K, D)
                value = torch.cat([past_key_value[1], value], dim=2)
        relative = self.position_embedding_type in ("relative_key", "relative_key_query")

        if self.use_sdpa and not (output_attentions or head_mask is not None or relative):
            mask = attention_mask
            if mask is not None and mask.dtype != query.dtype:
                # The mask holds finfo(float32).min; clamp before narrowing so it stays finite in bf16/fp16.
                mask = mask.clamp(min=torch.finfo(query.dtype).min).to(query.dtype)
            context = F.scaled_dot_product_attention(
                query, key, value, attn_mask=mask, dropout_p=self.dropout.p if self.training else 0.0
            )
            probs = None
        else:
            scores = torch.matmul(query, key.transpose(-1, -2))  # (B, N, S, K)
            if relative:
                q_len, k_len = query.shape[2], key.shape[2]
                if cache_active:
                    # HF 4.57 places every query at the last key position whenever a cache object exists.
                    left = torch.full((1, 1), k_len - 1, dtype=torch.long, device=query.device)
                else:
                    left = torch.arange(q_len, dtype=torch.long, device=query.device)[:, None]
                right = torch.arange(k_len, dtype=torch.long, device=query.device)[None, :]
                distance = self.distance_embedding(left - right + self.max_position_embeddings - 1).to(query.dtype)
                scores = scores + torch.einsum("bhld,lrd->bhlr", query, distance)
                if self.position_embedding_type == "relative_key_query":
                    scores = scores + torch.einsum("bhrd,lrd->bhlr", key, distance)
            scores = scores / math.sqrt(self.attention_head_size)
            if attention_mask is not None:
                scores = scores + attention_mask
            probs = self.dropout(torch.softmax(scores, dim=-1))
            if head_mask is not None:
                probs = probs * head_mask
            context = torch.matmul(probs, value)  # (B, N, S, D)
        context = context.transpose(1, 2).reshape(hidden_states.shape[0], -1, self.all_head_size)  # (B, S, N*D)
        return context, (probs if output_attentions else None), (key, value)


class BertSelfOutput(nn.Module):
    """dense + dropout + residual LayerNorm after attention: float (B, S, H) -> (B, S, H)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(_linear_add(self.dense, hidden_states, input_tensor, self.dropout))


class BertAttention(nn.Module):
    """Self- or cross-attention block: ``self`` (projections) and ``output`` (dense + LayerNorm)."""

    def __init__(self, config: BertConfig, position_embedding_type: Optional[str] = None) -> None:
        super().__init__()
        self.self = BertSelfAttention(config, position_embedding_type)
        self.output = BertSelfOutput(config)
        self.pruned_heads: set = set()

    def prune_heads(self, heads: Sequence[int]) -> None:
        """Remove attention heads (indices as originally numbered); shrinks query/key/value and output.dense."""
        heads = set(heads) - self.pruned_heads
        if not heads:
            return
        size = self.self.attention_head_size
        # Map original head numbers to current positions, since earlier prunes shifted them.
        keep = torch.ones(self.self.num_attention_heads, size)
        for head in heads:
            head = head - sum(1 for h in self.pruned_heads if h < head)
            keep[head] = 0
        index = torch.arange(keep.numel())[keep.view(-1).eq(1)]
        self.self.query = _prune_linear(self.self.query, index, dim=0)
        self.self.key = _prune_linear(self.self.key, index, dim=0)
        self.self.value = _prune_linear(self.self.value, index, dim=0)
        self.output.dense = _prune_linear(self.output.dense, index, dim=1)
        self.self.num_attention_heads -= len(heads)
        self.self.all_head_size = self.self.num_attention_heads * size
        self.pruned_heads |= heads

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        head_mask: Optional[torch.Tensor] = None,
        encoder_hidden_states: Optional[torch.Tensor] = None,
        past_key_value: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
        cache_active: bool = False,
        output_attentions: bool = False,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]:
        """As :class:`BertSelfAttention`; returns (output float (B, S, H), probs or None, present)."""
        context, probs, present = self.self(
            hidden_states,
            attention_mask,
            head_mask,
            encoder_hidden_states,
            past_key_value,
            cache_active,
            output_attentions,
        )
        return self.output(context, hidden_states), probs, present


def _prune_linear(layer: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A copy of ``layer`` keeping only the output (dim 0) or input (dim 1) features in ``index``."""
    index = index.to(layer.weight.device)
    weight = layer.weight.index_select(dim, index).detach().clone()
    bias = layer.bias if dim == 1 else layer.bias[index]
    new = nn.Linear(weight.shape[1], weight.shape[0], device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        new.bias.copy_(bias.detach())
    return new


class BertIntermediate(nn.Module):
    """dense H -> intermediate_size, then config.hidden_act."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.intermediate_act_fn is F.gelu:  # "gelu": exact GELU, fused into the bfloat16 CPU kernel
            return _linear(self.dense, hidden_states, gelu=True)
        return self.intermediate_act_fn(_linear(self.dense, hidden_states))


class BertOutput(nn.Module):
    """dense intermediate_size -> H, dropout, residual LayerNorm."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(_linear_add(self.dense, hidden_states, input_tensor, self.dropout))


class BertLayer(nn.Module):
    """attention (+ crossattention in decoders with add_cross_attention) + feed-forward, optionally chunked."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.chunk_size_feed_forward = config.chunk_size_feed_forward
        self.attention = BertAttention(config)
        if config.add_cross_attention:
            if not config.is_decoder:
                raise ValueError("add_cross_attention=True needs is_decoder=True (cross-attention is for decoders)")
            self.crossattention = BertAttention(config, position_embedding_type="absolute")
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        head_mask: Optional[torch.Tensor] = None,
        encoder_hidden_states: Optional[torch.Tensor] = None,
        encoder_attention_mask: Optional[torch.Tensor] = None,
        past_key_value: Optional[LayerCache] = None,
        cache_active: bool = False,
        output_attentions: bool = False,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor], LayerCache]:
        """past_key_value: (self_k, self_v) or (self_k, self_v, cross_k, cross_v) (see "caches").

        Returns (hidden float (B, S, H), self probs or None, cross probs or None, present cache entry).
        """
        self_past = None if past_key_value is None else past_key_value[:2]
        attention_output, self_probs, present = self.attention(
            hidden_states, attention_mask, head_mask, None, self_past, cache_active, output_attentions
        )
        cross_probs = None
        if encoder_hidden_states is not None:
            cross_past = past_key_value[2:] if past_key_value is not None and len(past_key_value) == 4 else None
            attention_output, cross_probs, cross_present = self.crossattention(
                attention_output,
                encoder_attention_mask,
                head_mask,
                encoder_hidden_states,
                cross_past,
                cache_active,
                output_attentions,
            )
            present = present + cross_present
        chunk = self.chunk_size_feed_forward
        if chunk > 0:
            # Position-wise feed-forward: chunks along the sequence give the same result with less peak memory.
            pieces = [self._feed_forward(part) for part in attention_output.split(chunk, dim=1)]
            layer_output = torch.cat(pieces, dim=1)
        else:
            layer_output = self._feed_forward(attention_output)
        return layer_output, self_probs, cross_probs, present

    def _feed_forward(self, attention_output: torch.Tensor) -> torch.Tensor:
        return self.output(self.intermediate(attention_output), attention_output)


class BertEncoder(nn.Module):
    """The stack ``layer[0..L-1]``; gradient checkpointing recomputes each layer in backward when training."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.layer = nn.ModuleList([BertLayer(config) for _ in range(config.num_hidden_layers)])
        self.gradient_checkpointing = False

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        head_mask: Optional[torch.Tensor] = None,
        encoder_hidden_states: Optional[torch.Tensor] = None,
        encoder_attention_mask: Optional[torch.Tensor] = None,
        past_key_values: Optional[Sequence[LayerCache]] = None,
        use_cache: bool = False,
        cache_active: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        """hidden_states float (B, S, H); head_mask (L, 1, N, 1, 1) or None (``_head_mask``). The updated cache comes
        back as ``past_key_values`` when use_cache."""
        all_hidden = () if output_hidden_states else None
        all_self = () if output_attentions else None
        all_cross = () if output_attentions and self.config.add_cross_attention else None
        presents = () if use_cache else None
        for i, layer in enumerate(self.layer):
            if output_hidden_states:
                all_hidden = all_hidden + (hidden_states,)
            args = (
                hidden_states,
                attention_mask,
                None if head_mask is None else head_mask[i],
                encoder_hidden_states,
                encoder_attention_mask,
                None if past_key_values is None else past_key_values[i],
                cache_active,
                output_attentions,
            )
            if self.gradient_checkpointing and self.training:
                hidden_states, self_probs, cross_probs, present = torch.utils.checkpoint.checkpoint(
                    layer, *args, use_reentrant=False
                )
            else:
                hidden_states, self_probs, cross_probs, present = layer(*args)
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
            past_key_values=presents,
            hidden_states=all_hidden,
            attentions=all_self,
            cross_attentions=all_cross,
        )


class BertPooler(nn.Module):
    """tanh(dense(first token)): float (B, S, H) -> (B, H)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden_states[:, 0]))


class BertPredictionHeadTransform(nn.Module):
    """dense H -> H, config.hidden_act, LayerNorm."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = ACT2FN[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class BertLMPredictionHead(nn.Module):
    """transform, then ``decoder`` (weight tied to the word embeddings by the owning model) + ``bias``: -> (B, S, V)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        # One Parameter under two names, as in HF, so the decoder's fused addmm matches HF bit for bit.
        self.decoder.bias = self.bias

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(hidden_states))


class BertOnlyMLMHead(nn.Module):
    """``cls`` of the LM heads: ``predictions``."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.predictions = BertLMPredictionHead(config)

    def forward(self, sequence_output: torch.Tensor) -> torch.Tensor:
        return self.predictions(sequence_output)


class BertOnlyNSPHead(nn.Module):
    """``cls`` of next-sentence prediction: ``seq_relationship``, pooled (B, H) -> (B, 2)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.seq_relationship = nn.Linear(config.hidden_size, 2)

    def forward(self, pooled_output: torch.Tensor) -> torch.Tensor:
        return self.seq_relationship(pooled_output)


class BertPreTrainingHeads(nn.Module):
    """``cls`` of pre-training: ``predictions`` (B, S, V) and ``seq_relationship`` (B, 2)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.predictions = BertLMPredictionHead(config)
        self.seq_relationship = nn.Linear(config.hidden_size, 2)

    def forward(self, sequence_output: torch.Tensor, pooled_output: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.predictions(sequence_output), self.seq_relationship(pooled_output)


# ------------------------------------------------------------------------------------------------------------- caches
# HF's legacy tuples: ``past_key_values`` holds one entry per layer, ``past_key_value`` = (self_k, self_v) or, with
# cross-attention, (self_k, self_v, cross_k, cross_v), each float (B, N, P or E, D). A layer returns its ``present``
# entry (keys and values including this step's); ``cache_active`` is the one flag that travels down the ladder.

LayerCache = Tuple[torch.Tensor, ...]


def _past_length(past_key_values: Optional[Sequence[LayerCache]]) -> int:
    """P, the number of tokens already cached (0 without a cache)."""
    return 0 if past_key_values is None else past_key_values[0][0].shape[2]


# ------------------------------------------------------------------------------------------------------------- models


class _SkipInitialisers(torch.overrides.TorchFunctionMode):
    """Turns every ``torch.nn.init`` call into a no-op while a model is built on the meta device for loading: there is
    nothing to initialise there, and running them on meta tensors imports ``torch._dynamo`` (~3 s, once per process)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__module__", None) == "torch.nn.init":
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


class BertPreTrainedModel(nn.Module):
    """Shared machinery: construction, canonical weights in and out (``bert_core`` names, PyTorch layout),
    from_pretrained / save_pretrained, output flags, embeddings, tying, resizing, pruning, checkpointing.

    Subclasses set ``head_name`` (it keys the weight table), build their modules in ``__init__`` and end with
    :meth:`_post_init`.
    """

    head_name = "BertModel"
    _add_pooling_layer: Optional[bool] = None  # None: the head's default (bert_core.weights.head_has_pooler)

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(f"config must be a bert_core BertConfig, got {type(config).__name__}")
        self.config = config

    def __call__(self, *args: Any, **kwargs: Any):
        # numpy arrays (a BatchEncoding made with return_tensors="np", a collated batch) become tensors here, once
        args = tuple(_as_tensor(a) for a in args)
        kwargs = {k: _as_tensor(v) for k, v in kwargs.items()}
        if self._compiled_call_impl is not None and not _is_tracing():
            # Compiled (compile_for_inference / Module.compile): the graph checks nothing, so the inputs are
            # checked here, and a call with labels (whose values need checking too) runs eagerly.
            bound = inspect.signature(self.forward).bind_partial(*args, **kwargs).arguments
            _check_compiled_call(self, bound)
            if any(bound.get(name) is not None for name in compiled.LABEL_INPUTS):
                return self._call_impl(*args, **kwargs)
        return super().__call__(*args, **kwargs)

    def _encoder_inputs(self, args: Dict[str, Optional[torch.Tensor]]) -> Dict[str, Optional[torch.Tensor]]:
        """The forward's ``input_ids`` ... ``inputs_embeds`` (by name, in that order) as the backbone receives them
        (checked here before a compiled call); BertForMultipleChoice checks and flattens its choice axis."""
        return args

    def _post_init(self, seed: Optional[int]) -> None:
        """Tie the decoder, draw the initial weights from ``seed`` (``bert_core.init``; None: skip), select SDPA."""
        self.tie_weights()
        if seed is not None:
            self.load_canonical_weights(
                init_weights(self.config, self.head_name, seed, add_pooling_layer=self._add_pooling_layer)
            )
        self.set_attn_implementation("sdpa")

    def _flags(self, output_attentions, output_hidden_states, return_dict) -> Tuple[bool, bool, bool]:
        """The three output switches, each defaulting to the config's (``BertConfig.output_flags``)."""
        return self.config.output_flags(output_attentions, output_hidden_states, return_dict)

    # canonical weights

    def _weight_table(self):
        return stored_weights(self.config, self.head_name, self._add_pooling_layer)

    def _tensor(self, name: str) -> torch.Tensor:
        path, _ = backend_path(self._weight_table()[name], "torch")
        obj: Any = self
        for part in path:
            obj = getattr(obj, part)  # ModuleList children are registered under "0", "1", ...
        return obj

    def load_canonical_weights(self, weights: Mapping[str, np.ndarray], *, assign: bool = False) -> None:
        """Set every stored tensor from canonical PyTorch-layout arrays (names of ``bert_core.weights.stored_weights``).

        ``assign=True`` makes each array the parameter's own memory (``torch.from_numpy``: no copy when it is
        float32, writable and aligned, e.g. a checkpoint's memory map) instead of copying into the parameter; the
        arrays must then not be used elsewhere. ``from_pretrained`` uses it on a model built on the meta device.

        Raises:
            ValueError: missing or unexpected names, or arrays of the wrong shape (all listed).
        """
        table = self._weight_table()
        check_weights_match(table, weights, self.head_name)
        with torch.no_grad():
            for name, spec in table.items():
                path, _ = backend_path(spec, "torch")
                module = self.get_submodule(".".join(path[:-1]))
                target = getattr(module, path[-1])
                array = np.asarray(weights[name])
                if not assign:
                    target.copy_(torch.as_tensor(array, dtype=target.dtype))
                    continue
                shared = array.dtype == np.float32 and array.flags.writeable and array.flags.aligned
                value = (torch.from_numpy(array) if shared else torch.tensor(array)).to(target.dtype)
                setattr(module, path[-1], nn.Parameter(value, requires_grad=target.requires_grad))

    def canonical_weights(self) -> "OrderedDict[str, np.ndarray]":
        """Every stored tensor as float32 numpy, PyTorch layout, keyed like ``stored_weights`` (tied decoder left out)."""
        return OrderedDict(
            (name, self._tensor(name).detach().to("cpu", torch.float32).numpy().copy()) for name in self._weight_table()
        )

    # load / save

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
        torch_dtype: Optional[Union[str, torch.dtype]] = None,
        **config_overrides: Any,
    ):
        """Load a local directory or hub id (safetensors / .bin / .h5 / .msgpack) into this head, in eval mode.

        Head weights the checkpoint lacks are initialised from ``seed`` (``bert_core.init``). ``config_overrides``
        (``num_labels=``, ``id2label=``, ``problem_type=``, ``is_decoder=`` ...) update the loaded config.
        ``add_pooling_layer``: BertModel only (default True); a head's pooler is fixed.
        ``torch_dtype``: a torch dtype, its name ("bfloat16"), or "auto" (float32; checkpoints are read as float32).

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
        # Built on the meta device (torch's own random init would be thrown away), then every parameter is made the
        # loaded array itself: the checkpoint's memory map, as HF's loader does, so nothing is copied or touched.
        with torch.device("meta"), _SkipInitialisers():
            model = cls(config, seed=None, **init_kwargs)
        model.load_canonical_weights(complete_weights(weights, config, cls.head_name, seed, pool), assign=True)
        model.tie_weights()
        if torch_dtype is not None and torch_dtype != "auto":
            model.to(getattr(torch, torch_dtype) if isinstance(torch_dtype, str) else torch_dtype)
        model.eval()
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

    # embeddings, tying, resizing, pruning, attention implementation, checkpointing

    def _backbone(self) -> "BertModel":
        return self if isinstance(self, BertModel) else self.bert

    def get_input_embeddings(self) -> nn.Embedding:
        return self._backbone().embeddings.word_embeddings

    def set_input_embeddings(self, embeddings: nn.Embedding) -> None:
        self._backbone().embeddings.word_embeddings = embeddings
        self.tie_weights()

    def get_output_embeddings(self) -> Optional[nn.Linear]:
        cls_head = getattr(self, "cls", None)
        predictions = getattr(cls_head, "predictions", None)
        return None if predictions is None else predictions.decoder

    def tie_weights(self) -> None:
        """Make the MLM decoder weight the word-embedding Parameter itself (unless tie_word_embeddings is False)."""
        decoder = self.get_output_embeddings()
        if decoder is not None:
            # the decoder bias is always cls.predictions.bias (moves like to_empty() re-create Parameters)
            decoder.bias = self.cls.predictions.bias
            if self.config.tie_word_embeddings:
                decoder.weight = self.get_input_embeddings().weight

    def resize_token_embeddings(self, new_num_tokens: int, seed: int = 0) -> nn.Embedding:
        """Grow or shrink the vocabulary: word embeddings, (untied) decoder, decoder bias and config.vocab_size.

        Kept rows are copied; new rows are drawn from normal(0, initializer_range) (seeded), new bias entries are 0.
        """
        old = self.get_input_embeddings()
        old_n, dim = old.weight.shape
        if new_num_tokens == old_n:
            return old
        keep = min(old_n, new_num_tokens)
        gen = torch.Generator().manual_seed(seed)

        def grown(weight: torch.Tensor) -> torch.Tensor:
            fresh = torch.randn(new_num_tokens, dim, generator=gen) * self.config.initializer_range
            fresh = fresh.to(weight.dtype).to(weight.device)
            fresh[:keep] = weight.detach()[:keep]
            return fresh

        pad = (
            self.config.pad_token_id
            if self.config.pad_token_id is not None and self.config.pad_token_id < new_num_tokens
            else None
        )
        new = nn.Embedding(new_num_tokens, dim, padding_idx=pad, device=old.weight.device, dtype=old.weight.dtype)
        with torch.no_grad():
            new.weight.copy_(grown(old.weight))
        self._backbone().embeddings.word_embeddings = new
        decoder = self.get_output_embeddings()
        if decoder is not None:
            predictions = self.cls.predictions
            if not self.config.tie_word_embeddings:
                new_decoder = nn.Linear(
                    dim, new_num_tokens, bias=False, device=old.weight.device, dtype=old.weight.dtype
                )
                with torch.no_grad():
                    new_decoder.weight.copy_(grown(decoder.weight))
                predictions.decoder = new_decoder
            bias = torch.zeros(new_num_tokens, dtype=predictions.bias.dtype, device=predictions.bias.device)
            bias[:keep] = predictions.bias.detach()[:keep]
            predictions.bias = nn.Parameter(bias)
            predictions.decoder.bias = predictions.bias
            predictions.decoder.out_features = new_num_tokens
        self.config.vocab_size = new_num_tokens
        self.tie_weights()
        return new

    def prune_heads(self, heads_to_prune: Mapping[int, Sequence[int]]) -> None:
        """Remove self-attention heads: ``{layer: [head, ...]}``. Recorded in ``config.pruned_heads``."""
        backbone = self._backbone()
        pruned = dict(getattr(self.config, "pruned_heads", None) or {})
        for layer, heads in heads_to_prune.items():
            backbone.encoder.layer[int(layer)].attention.prune_heads(heads)
            pruned[int(layer)] = sorted(set(pruned.get(int(layer), [])) | set(heads))
        self.config.pruned_heads = pruned

    def gradient_checkpointing_enable(self) -> None:
        """Recompute each layer in backward (torch.utils.checkpoint, use_reentrant=False); only while training."""
        self._backbone().encoder.gradient_checkpointing = True

    def gradient_checkpointing_disable(self) -> None:
        self._backbone().encoder.gradient_checkpointing = False

    def set_attn_implementation(self, name: str) -> None:
        """ "sdpa" (default: F.scaled_dot_product_attention where possible) or "eager" (explicit softmax always)."""
        if name not in ("sdpa", "eager"):
            raise ValueError(f"attention implementation must be 'sdpa' or 'eager', got {name!r}")
        for module in self.modules():
            if isinstance(module, BertSelfAttention):
                module.use_sdpa = name == "sdpa"

    @property
    def dtype(self) -> torch.dtype:
        return self.get_input_embeddings().weight.dtype

    @property
    def device(self) -> torch.device:
        return self.get_input_embeddings().weight.device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _finish(output, return_dict: bool):
    """The output dataclass, or its ``to_tuple()`` (None fields left out) when return_dict is False."""
    return output if return_dict else output.to_tuple()


class BertModel(BertPreTrainedModel):
    """The bare encoder (or decoder, with ``config.is_decoder``): embeddings, encoder, optional pooler.

    Args:
        config: a ``bert_core`` BertConfig.
        add_pooling_layer: build ``pooler`` (tanh(dense(first token))).
        seed: initial weights from ``bert_core.init.init_weights(config, "BertModel", seed)``; None keeps
            PyTorch's default initialisation (used when weights are loaded right after).
    """

    head_name = "BertModel"

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True, *, seed: Optional[int] = 0) -> None:
        super().__init__(config)
        self._add_pooling_layer = bool(add_pooling_layer)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self._post_init(seed)

    @classmethod
    def _init_kwargs(cls, add_pooling_layer: Optional[bool]) -> Dict[str, Any]:
        return {"add_pooling_layer": True if add_pooling_layer is None else bool(add_pooling_layer)}

    def forward(
        self,
        input_ids: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        token_type_ids: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.Tensor] = None,
        head_mask: Optional[torch.Tensor] = None,
        inputs_embeds: Optional[torch.Tensor] = None,
        encoder_hidden_states: Optional[torch.Tensor] = None,
        encoder_attention_mask: Optional[torch.Tensor] = None,
        past_key_values: Optional[Sequence[LayerCache]] = None,
        use_cache: Optional[bool] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
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

        Returns:
            BaseModelOutputWithPoolingAndCrossAttentions (or its ``to_tuple()`` when return_dict is False).
        """
        config = self.config
        output_attentions, output_hidden_states, return_dict = self._flags(
            output_attentions, output_hidden_states, return_dict
        )
        use_cache = (config.use_cache if use_cache is None else use_cache) if config.is_decoder else False
        if self.encoder.gradient_checkpointing and self.training:
            use_cache = False  # the cache would be rebuilt in backward; HF drops it too
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
        past_length = _past_length(past_key_values)
        cache_active = config.is_decoder and (use_cache or past_key_values is not None)

        embedding_output = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds, past_length)
        batch, seq_len = embedding_output.shape[:2]
        # Without padding an encoder needs no mask at all: SDPA then takes its unmasked (faster) kernel, as in HF.
        # Checking the values needs a host sync, so traced graphs (compile/export) always keep the mask.
        no_padding = attention_mask is None or (
            attention_mask.dim() == 2 and not _is_tracing() and bool(attention_mask.all())
        )
        if no_padding and not config.is_decoder:
            extended_mask = None
        else:
            if attention_mask is None:
                attention_mask = torch.ones((batch, past_length + seq_len), device=embedding_output.device)
            extended_mask = _extended_attention_mask(config, attention_mask, seq_len, past_length, self.dtype)
        encoder_mask = None
        if encoder_hidden_states is not None and encoder_attention_mask is not None:
            encoder_mask = _encoder_attention_mask(encoder_attention_mask, self.dtype)

        encoded = self.encoder(
            embedding_output,
            extended_mask,
            _head_mask(head_mask, config.num_hidden_layers, self.dtype),
            encoder_hidden_states,
            encoder_mask,
            past_key_values,
            use_cache,
            cache_active,
            output_attentions,
            output_hidden_states,
        )
        sequence_output = encoded.last_hidden_state
        pooled_output = self.pooler(sequence_output) if self.pooler is not None else None
        output = BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=sequence_output,
            pooler_output=pooled_output,
            hidden_states=encoded.hidden_states,
            past_key_values=encoded.past_key_values,
            attentions=encoded.attentions,
            cross_attentions=encoded.cross_attentions,
        )
        return _finish(output, return_dict)


class _HeadModel(BertPreTrainedModel):
    """A head on ``bert`` (a BertModel with the pooler the weight table gives this head)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=head_has_pooler(self.head_name), seed=None)

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
        **decoder_kwargs,
    ) -> BaseModelOutputWithPoolingAndCrossAttentions:
        """The backbone on the common arguments (+ the decoder ones), always as a dict."""
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
            **decoder_kwargs,
        )


class BertForPreTraining(_HeadModel):
    """MLM + NSP heads (``cls.predictions``, ``cls.seq_relationship``). loss = MLM CE + NSP CE when both labels given."""

    head_name = "BertForPreTraining"

    def __init__(self, config: BertConfig, *, seed: Optional[int] = 0) -> None:
        super().__init__(config)
        self.cls = BertPreTrainingHeads(config)
        self._post_init(seed)

    def forward(
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
        )
        prediction_scores, seq_relationship_score = self.cls(out.last_hidden_state, out.pooler_output)
        _check_labels(self.config, self.head_name, "labels", labels, prediction_scores)
        _check_labels(self.config, self.head_name, "next_sentence_label", next_sentence_label, prediction_scores)
        loss = None
        if labels is not None and next_sentence_label is not None:
            loss = _cross_entropy(prediction_scores, labels) + _cross_entropy(
                seq_relationship_score, next_sentence_label
            )
        output = BertForPreTrainingOutput(
            loss=loss,
            prediction_logits=prediction_scores,
            seq_relationship_logits=seq_relationship_score,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )
        return _finish(output, return_dict)


class BertLMHeadModel(_HeadModel):
    """Causal LM head (needs ``config.is_decoder``): next-token logits, loss on labels shifted by one, generation."""

    head_name = "BertLMHeadModel"

    def __init__(self, config: BertConfig, *, seed: Optional[int] = 0) -> None:
        super().__init__(config)
        self.cls = BertOnlyMLMHead(config)
        self._post_init(seed)

    def forward(
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
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            past_key_values=past_key_values,
            use_cache=use_cache,
        )
        logits = self.cls(out.last_hidden_state)
        _check_labels(self.config, self.head_name, "labels", labels, logits)
        loss = None if labels is None else _cross_entropy(logits[:, :-1], labels[:, 1:])
        output = CausalLMOutputWithCrossAttentions(
            loss=loss,
            logits=logits,
            past_key_values=out.past_key_values,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
            cross_attentions=out.cross_attentions,
        )
        return _finish(output, return_dict)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        max_new_tokens: int = 20,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
        top_p: Optional[float] = None,
        eos_token_id: Optional[int] = None,
        pad_token_id: Optional[int] = None,
        seed: Optional[int] = None,
        encoder_hidden_states: Optional[torch.Tensor] = None,
        encoder_attention_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Greedy or sampled continuation with the key/value cache, as HF ``generate`` (``docs/ladder.md``).

        Args:
            input_ids: int (B, S) prompts, left-padded when their lengths differ.
            attention_mask: (B, S) 1 token / 0 pad; default ones.
            max_new_tokens: at most this many tokens are appended.
            do_sample: sample (after temperature, then top_k, then top_p, as HF's processors) instead of argmax.
            seed: makes sampling reproducible (a ``torch.Generator`` seeded with it); None draws a fresh seed.
            eos_token_id: a row that produced it is finished; its later tokens are pad_token_id (default
                config.pad_token_id). Decoding stops once every row is finished.
            encoder_hidden_states / encoder_attention_mask: float (B, E, H) / (B, E), attended by every step.

        Returns:
            int (B, S + T), the prompts followed by T <= max_new_tokens generated tokens.
        """
        validation.check_generate_args(
            self.config,
            _array_info(input_ids, values=True),
            _array_info(attention_mask, values=False),
            max_new_tokens,
            do_sample,
            temperature,
            top_k,
            top_p,
            eos_token_id,
            pad_token_id,
        )
        pad = self.config.pad_token_id if pad_token_id is None else pad_token_id
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        generator = None
        if do_sample:
            generator = torch.Generator(device=input_ids.device)
            if seed is None:
                generator.seed()
            else:
                generator.manual_seed(seed)
        cross = dict(encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=encoder_attention_mask)
        # HF's positions for padded prompts: count the real tokens (cumsum - 1); pads get 1 (their output is masked).
        position_ids = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
        out = self(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=True,
            return_dict=True,
            **cross,
        )
        sequences = input_ids
        finished = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for step in range(max_new_tokens):
            logits = out.logits[:, -1, :].float()  # (B, V)
            if do_sample:
                probs = torch.softmax(_sampling_logits(logits, temperature, top_k, top_p), dim=-1)
                next_token = torch.multinomial(probs, 1, generator=generator)[:, 0]
            else:
                next_token = logits.argmax(dim=-1)
            if eos_token_id is not None:
                next_token = torch.where(finished, torch.full_like(next_token, pad), next_token)
                finished = finished | (next_token == eos_token_id)
            sequences = torch.cat([sequences, next_token[:, None]], dim=1)
            if step == max_new_tokens - 1 or (eos_token_id is not None and bool(finished.all())):
                break
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((attention_mask.shape[0], 1))], 1)
            # As HF: the new token's position is cumsum(mask) - 1 at the last column, i.e. the tokens before it.
            position_ids = attention_mask.long().sum(-1, keepdim=True) - 1
            out = self(
                next_token[:, None],
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=out.past_key_values,
                use_cache=True,
                return_dict=True,
                **cross,
            )
        return sequences


class BertForMaskedLM(_HeadModel):
    """Masked-token logits from ``cls.predictions``; loss = CE over labels != -100."""

    head_name = "BertForMaskedLM"

    def __init__(self, config: BertConfig, *, seed: Optional[int] = 0) -> None:
        super().__init__(config)
        self.cls = BertOnlyMLMHead(config)
        self._post_init(seed)

    def forward(
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
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
        )
        logits = self.cls(out.last_hidden_state)
        _check_labels(self.config, self.head_name, "labels", labels, logits)
        loss = None if labels is None else _cross_entropy(logits, labels)
        output = MaskedLMOutput(loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions)
        return _finish(output, return_dict)


class BertForNextSentencePrediction(_HeadModel):
    """Is sentence B the continuation of A? ``cls.seq_relationship`` on the pooled output."""

    head_name = "BertForNextSentencePrediction"

    def __init__(self, config: BertConfig, *, seed: Optional[int] = 0) -> None:
        super().__init__(config)
        self.cls = BertOnlyNSPHead(config)
        self._post_init(seed)

    def forward(
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
        )
        logits = self.cls(out.pooler_output)
        _check_labels(self.config, self.head_name, "labels", labels, logits)
        loss = None if labels is None else _cross_entropy(logits, labels)
        output = NextSentencePredictorOutput(
            loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
        )
        return _finish(output, return_dict)


class BertForSequenceClassification(_HeadModel):
    """``classifier`` on the dropped-out pooled output: regression, single- or multi-label classification."""

    head_name = "BertForSequenceClassification"

    def __init__(self, config: BertConfig, *, seed: Optional[int] = 0) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self._post_init(seed)

    def forward(
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
        )
        logits = self.classifier(self.dropout(out.pooler_output))
        _check_labels(self.config, self.head_name, "labels", labels, logits)
        loss = None
        if labels is not None:
            problem = validation.resolve_problem_type(self.config, _array_info(labels, values=False).kind in "iu")
            if problem == "regression":
                labels = labels.to(logits.dtype)
                # HF squeezes both sides with one label, so (B,) and (B, 1) targets give the same loss
                loss = _mse(logits.squeeze(), labels.squeeze()) if self.num_labels == 1 else _mse(logits, labels)
            elif problem == "single_label_classification":
                loss = _cross_entropy(logits, labels)
            else:
                loss = _bce_with_logits(logits, labels.to(logits.dtype))
        output = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
        )
        return _finish(output, return_dict)


class BertForMultipleChoice(_HeadModel):
    """Scores each of C choices: inputs (B, C, S) are flattened to (B*C, S); logits come back as (B, C)."""

    head_name = "BertForMultipleChoice"

    def __init__(self, config: BertConfig, *, seed: Optional[int] = 0) -> None:
        super().__init__(config)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self._post_init(seed)

    def _encoder_inputs(self, args: Dict[str, Optional[torch.Tensor]]) -> Dict[str, Optional[torch.Tensor]]:
        """(B, C, S[, H]) inputs, checked -> (B*C, S[, H])."""
        validation.check_multiple_choice_inputs(*(_array_info(x, False) for x in args.values()))
        return {name: None if x is None else x.reshape(-1, *x.shape[2:]) for name, x in args.items()}

    def forward(
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
    ):
        """input_ids / attention_mask / token_type_ids / position_ids: (B, C, S); inputs_embeds (B, C, S, H);
        labels: int (B,) index of the right choice. Returns MultipleChoiceModelOutput: logits float (B, C)."""
        output_attentions, output_hidden_states, return_dict = self._flags(
            output_attentions, output_hidden_states, return_dict
        )
        validation.check_multiple_choice_inputs(
            _array_info(input_ids, False),
            _array_info(attention_mask, False),
            _array_info(token_type_ids, False),
            _array_info(position_ids, False),
            _array_info(inputs_embeds, False),
        )
        num_choices = (input_ids if input_ids is not None else inputs_embeds).shape[1]

        def flat(t):  # (B, C, S, ...) -> (B*C, S, ...)
            return None if t is None else t.reshape(-1, *t.shape[2:])

        out = self._run_bert(
            flat(input_ids),
            flat(attention_mask),
            flat(token_type_ids),
            flat(position_ids),
            head_mask,
            flat(inputs_embeds),
            output_attentions,
            output_hidden_states,
        )
        logits = self.classifier(self.dropout(out.pooler_output)).view(-1, num_choices)  # (B, C)
        _check_labels(self.config, self.head_name, "labels", labels, logits)
        loss = None if labels is None else _cross_entropy(logits, labels)
        output = MultipleChoiceModelOutput(
            loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
        )
        return _finish(output, return_dict)


class BertForTokenClassification(_HeadModel):
    """Per-token ``classifier`` (NER and the like): logits float (B, S, num_labels); loss CE, -100 ignored."""

    head_name = "BertForTokenClassification"

    def __init__(self, config: BertConfig, *, seed: Optional[int] = 0) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self._post_init(seed)

    def forward(
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
        )
        logits = self.classifier(self.dropout(out.last_hidden_state))
        _check_labels(self.config, self.head_name, "labels", labels, logits)
        loss = None if labels is None else _cross_entropy(logits, labels)
        output = TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=out.hidden_states, attentions=out.attentions
        )
        return _finish(output, return_dict)


class BertForQuestionAnswering(_HeadModel):
    """Extractive QA: ``qa_outputs`` gives span start/end logits, float (B, S) each."""

    head_name = "BertForQuestionAnswering"

    def __init__(self, config: BertConfig, *, seed: Optional[int] = 0) -> None:
        validation.check_qa_num_labels(config)
        super().__init__(config)
        self.num_labels = config.num_labels
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self._post_init(seed)

    def forward(
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
        )
        logits = self.qa_outputs(out.last_hidden_state)  # (B, S, 2)
        start_logits, end_logits = (t.squeeze(-1).contiguous() for t in logits.split(1, dim=-1))
        _check_labels(self.config, self.head_name, "start_positions", start_positions, start_logits)
        _check_labels(self.config, self.head_name, "end_positions", end_positions, start_logits)
        loss = None
        if start_positions is not None and end_positions is not None:
            if start_positions.dim() > 1:
                start_positions = start_positions.squeeze(-1)
            if end_positions.dim() > 1:
                end_positions = end_positions.squeeze(-1)
            ignored = start_logits.shape[1]
            start_positions = start_positions.clamp(0, ignored)
            end_positions = end_positions.clamp(0, ignored)
            loss = (
                _cross_entropy(start_logits, start_positions, ignore_index=ignored)
                + _cross_entropy(end_logits, end_positions, ignore_index=ignored)
            ) / 2
        output = QuestionAnsweringModelOutput(
            loss=loss,
            start_logits=start_logits,
            end_logits=end_logits,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )
        return _finish(output, return_dict)


# ------------------------------------------------------------------------------ ALL_MODEL_CLASSES and canonical_grads

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


def canonical_grads(model: BertPreTrainedModel, inputs: Dict[str, Any]) -> Tuple[float, "OrderedDict[str, np.ndarray]"]:
    """Loss and gradient of every stored tensor, by canonical name (PyTorch layout, float32 numpy).

    ``inputs`` are forward keyword arguments including the labels. Runs in eval mode (no dropout) and restores the
    previous mode. The tied decoder's gradient lands in ``word_embeddings`` (one Parameter), as in PyTorch.
    """
    was_training = model.training
    model.eval()
    try:
        model.zero_grad(set_to_none=True)
        with torch.enable_grad():
            output = model(**inputs, return_dict=True)
            if output.loss is None:
                raise ValueError(f"{model.head_name} returned no loss: pass its labels in inputs")
            output.loss.backward()
        grads = OrderedDict()
        for name in model._weight_table():
            tensor = model._tensor(name)
            grads[name] = (
                np.zeros(tuple(tensor.shape), np.float32)
                if tensor.grad is None
                else tensor.grad.detach().to("cpu", torch.float32).numpy().copy()
            )
        loss = float(output.loss.detach())
        model.zero_grad(set_to_none=True)
        return loss, grads
    finally:
        model.train(was_training)
