"""The fixed battery of cases, as numpy inputs, per head.

Every head gets (batch B=2, sequence S=8 unless the checkpoint allows fewer positions):

* ``padded_pair``: second row padded (attention_mask zeros at the end), sentence-pair token_type_ids, explicit
  position_ids (offset by 3), a head_mask (one head off, one halved), labels of the head (-> loss),
  output_attentions + output_hidden_states.
* ``inputs_embeds``: float (B, S, hidden) embeddings instead of ids, padding, labels, default position and token
  type ids.

Decoder mode (config with ``is_decoder`` + ``add_cross_attention``; BertLMHeadModel always, BertModel in addition):

* ``cross_attention``: encoder_hidden_states (B, 5, hidden) with a padded encoder_attention_mask, use_cache,
  attentions (labels for the LM). Also decoded incrementally: the first S-2 tokens with use_cache, then the last 2
  with the cache; that step must equal the full run's last positions (and its cache the full cache) inside each
  backend, and its outputs (``step.*``) are compared across backends.

The cases are few on purpose: every distinct call signature costs a compile in jitted backends (Flax).

Multiple choice adds a choices axis: (B, C=2, S) for ids/masks, (B, C, S, hidden) for embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List

import numpy as np

from bert_core.config import BertConfig
from bert_core.weights import HEADS

BATCH = 2
SEQ = 8
CHOICES = 2
ENC_SEQ = 5
DECODER_HEADS = ("BertModel", "BertLMHeadModel")
#: heads for which gradient parity is checked (loss from labels)
GRAD_HEADS = ("BertForMaskedLM", "BertForSequenceClassification", "BertForQuestionAnswering", "BertLMHeadModel")


@dataclass
class Case:
    """One forward call. ``inputs``: numpy arrays (int64 ids, float32 floats) and python flags, HF argument names.

    ``decoder``: run on the decoder variant of the config. ``kind``: "forward" or "incremental" (then ``inputs`` is
    the full run and ``prefix`` the number of tokens fed before the cached step).
    """

    name: str
    head: str
    inputs: Dict[str, Any]
    decoder: bool = False
    kind: str = "forward"
    prefix: int = 0


def decoder_config(config: BertConfig) -> BertConfig:
    """The decoder variant: causal self-attention + cross-attention (its weights are initialised by bert_core)."""
    return config.copy(is_decoder=True, add_cross_attention=True, use_cache=True)


def head_config(config: BertConfig, head: str) -> BertConfig:
    """``config`` as ``head`` needs it: QA splits ``qa_outputs`` into start/end logits, which HF only supports with
    ``num_labels == 2`` (it raises otherwise), so a checkpoint with other labels is run with 2 for that head."""
    if head == "BertForQuestionAnswering" and config.num_labels != 2:
        return config.copy(num_labels=2)
    return config


def config_for(config: BertConfig, case: Case) -> BertConfig:
    config = head_config(config, case.head)
    return decoder_config(config) if case.decoder else config


def _seq_len(config: BertConfig) -> int:
    # explicit positions use an offset of 3: keep every position < max_position_embeddings
    return max(2, min(SEQ, config.max_position_embeddings - 3))


def _ids(rng: np.random.Generator, config: BertConfig, shape) -> np.ndarray:
    # avoid pad_token_id so that padding is only where the attention mask says so
    ids = rng.integers(0, config.vocab_size, size=shape).astype(np.int64)
    if config.pad_token_id is not None and config.vocab_size > 1:
        ids[ids == config.pad_token_id] = (config.pad_token_id + 1) % config.vocab_size
    return ids


def _labels(head: str, config: BertConfig, rng: np.random.Generator, b: int, s: int) -> Dict[str, np.ndarray]:
    if head in ("BertForMaskedLM", "BertForPreTraining"):
        labels = np.full((b, s), -100, np.int64)
        labels[:, 1::3] = rng.integers(0, config.vocab_size, size=labels[:, 1::3].shape)
        out = {"labels": labels}
        if head == "BertForPreTraining":
            out["next_sentence_label"] = np.array([0, 1] * (b // 2) + [1] * (b % 2), np.int64)
        return out
    if head == "BertLMHeadModel":
        labels = rng.integers(0, config.vocab_size, size=(b, s)).astype(np.int64)
        labels[-1, -2:] = -100
        return {"labels": labels}
    if head == "BertForNextSentencePrediction":
        return {"labels": np.array([1, 0] * (b // 2) + [0] * (b % 2), np.int64)}
    if head == "BertForSequenceClassification":
        return {"labels": rng.integers(0, config.num_labels, size=(b,)).astype(np.int64)}
    if head == "BertForMultipleChoice":
        return {"labels": rng.integers(0, CHOICES, size=(b,)).astype(np.int64)}
    if head == "BertForTokenClassification":
        labels = rng.integers(0, config.num_labels, size=(b, s)).astype(np.int64)
        labels[-1, -2:] = -100
        return {"labels": labels}
    if head == "BertForQuestionAnswering":
        return {
            "start_positions": rng.integers(0, s, size=(b,)).astype(np.int64),
            "end_positions": rng.integers(0, s, size=(b,)).astype(np.int64),
        }
    return {}


def _lead(head: str) -> tuple:
    return (BATCH, CHOICES) if head == "BertForMultipleChoice" else (BATCH,)


def _base_inputs(head: str, config: BertConfig, rng: np.random.Generator, s: int, pad: int) -> Dict[str, Any]:
    lead = _lead(head)
    mask = np.ones(lead + (s,), np.int64)
    mask[-1, ..., s - pad :] = 0  # last batch row padded
    types = np.zeros(lead + (s,), np.int64)
    types[..., s // 2 :] = 1  # sentence B
    if config.type_vocab_size < 2:
        types[:] = 0
    return {"input_ids": _ids(rng, config, lead + (s,)), "attention_mask": mask, "token_type_ids": types}


def build_cases(head: str, config: BertConfig, seed: int = 0) -> List[Case]:
    """The battery for ``head`` on a checkpoint with ``config`` (deterministic in ``seed``)."""
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; expected one of {HEADS}")
    rng = np.random.default_rng([seed, HEADS.index(head)])
    config = head_config(config, head)
    s = _seq_len(config)
    pad = min(3, s - 1)
    lead = _lead(head)
    h = config.hidden_size
    cases: List[Case] = []
    dec_only = head == "BertLMHeadModel"
    # decoder-mode cases run on the decoder config; LMHead is a decoder model, so all its cases do
    dec = dec_only

    # explicit positions (offset, so the default positions would differ) and a head_mask that switches a head off
    # and halves another ride along in the first case: each distinct call signature costs a compile in jitted backends
    head_mask = np.ones((config.num_hidden_layers, config.num_attention_heads), np.float32)
    head_mask[0, min(1, config.num_attention_heads - 1)] = 0.0
    head_mask[-1, 0] = 0.5
    positions = np.broadcast_to(np.arange(3, 3 + s, dtype=np.int64), lead + (s,)).copy()
    inputs = _base_inputs(head, config, rng, s, pad)
    inputs.update(position_ids=positions, head_mask=head_mask)
    inputs.update(_labels(head, config, rng, BATCH, s))
    # HF raises (IndexError) for output_attentions on a cross-attention decoder called without encoder states: the
    # causal LM's attentions are checked in its cross_attention case instead
    inputs.update(output_attentions=not dec_only, output_hidden_states=True)
    cases.append(Case("padded_pair", head, inputs, decoder=dec))

    # embeddings instead of ids; default position_ids and token_type_ids (zeros)
    base = _base_inputs(head, config, rng, s, pad)
    embeds = rng.normal(0.0, 0.5, size=lead + (s, h)).astype(np.float32)
    inputs = {"inputs_embeds": embeds, "attention_mask": base["attention_mask"]}
    inputs.update(_labels(head, config, rng, BATCH, s))
    cases.append(Case("inputs_embeds", head, inputs, decoder=dec))

    if head in DECODER_HEADS:
        # decoder mode with cross-attention; also run incrementally: prefix with use_cache, then the rest with the cache
        enc = rng.normal(0.0, 1.0, size=(BATCH, ENC_SEQ, h)).astype(np.float32)
        enc_mask = np.ones((BATCH, ENC_SEQ), np.int64)
        enc_mask[-1, -2:] = 0
        inputs = _base_inputs(head, config, rng, s, pad)
        inputs.update(
            encoder_hidden_states=enc, encoder_attention_mask=enc_mask, use_cache=True, output_attentions=True
        )
        if dec_only:
            inputs.update(_labels(head, config, rng, BATCH, s))
        cases.append(Case("cross_attention", head, inputs, decoder=True, kind="incremental", prefix=max(1, s - 2)))
    return cases


def grad_case(head: str, config: BertConfig, seed: int = 0) -> Case:
    """The case whose loss is differentiated: ``cross_attention`` for the causal LM (so cross-attention weights get
    gradients), ``padded_pair`` without attentions/hidden states otherwise."""
    cases = {c.name: c for c in build_cases(head, config, seed)}
    case = cases["cross_attention"] if head == "BertLMHeadModel" else cases["padded_pair"]
    # same inputs as the forward case (flags included), so jitted backends reuse its compiled forward after the step
    return Case(case.name, head, dict(case.inputs), decoder=case.decoder)


def split_incremental(case: Case):
    """(prefix inputs, step inputs without past_key_values, full inputs) of an incremental case.

    Labels and attention outputs are dropped from prefix and step: they compare the cache, not the loss."""
    full = dict(case.inputs)
    p = case.prefix
    drop = ("labels", "output_attentions", "output_hidden_states")
    prefix = {k: v for k, v in full.items() if k not in drop}
    prefix["input_ids"] = full["input_ids"][:, :p]
    prefix["attention_mask"] = full["attention_mask"][:, :p]
    step = {k: v for k, v in full.items() if k not in drop}
    step["input_ids"] = full["input_ids"][:, p:]
    if "token_type_ids" in full:
        prefix["token_type_ids"] = full["token_type_ids"][:, :p]
        step["token_type_ids"] = full["token_type_ids"][:, p:]
    # the step's mask covers past + new tokens, as in HF generation
    step["attention_mask"] = full["attention_mask"]
    return prefix, step, full
