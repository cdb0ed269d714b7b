"""bert_torch on tiny configs: every class, every forward argument, losses, attention paths, cache, validation."""

import math

import pytest
import torch
import torch.nn.functional as F

import bert_torch
from bert_core import outputs as core_outputs
from bert_core.config import tiny_config

torch.manual_seed(0)
HEAD_CLASSES = bert_torch.ALL_MODEL_CLASSES
EXPECTED_OUTPUT = {
    "BertModel": core_outputs.BaseModelOutputWithPoolingAndCrossAttentions,
    "BertForPreTraining": core_outputs.BertForPreTrainingOutput,
    "BertLMHeadModel": core_outputs.CausalLMOutputWithCrossAttentions,
    "BertForMaskedLM": core_outputs.MaskedLMOutput,
    "BertForNextSentencePrediction": core_outputs.NextSentencePredictorOutput,
    "BertForSequenceClassification": core_outputs.SequenceClassifierOutput,
    "BertForMultipleChoice": core_outputs.MultipleChoiceModelOutput,
    "BertForTokenClassification": core_outputs.TokenClassifierOutput,
    "BertForQuestionAnswering": core_outputs.QuestionAnsweringModelOutput,
}


def make(cls, **overrides):
    if cls is bert_torch.BertLMHeadModel:
        overrides.setdefault("is_decoder", True)
    return cls(tiny_config(**overrides), seed=0).eval()


def ids_for(cls, config, batch=2, seq=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape = (batch, 3, seq) if cls is bert_torch.BertForMultipleChoice else (batch, seq)
    return torch.randint(1, config.vocab_size, shape, generator=g)


def labels_for(cls, config, ids):
    name = cls.head_name
    b = ids.shape[0]
    if name in ("BertForMaskedLM", "BertLMHeadModel"):
        return dict(labels=ids.clone())
    if name == "BertForPreTraining":
        return dict(labels=ids.clone(), next_sentence_label=torch.zeros(b, dtype=torch.long))
    if name == "BertForNextSentencePrediction":
        return dict(labels=torch.ones(b, dtype=torch.long))
    if name == "BertForSequenceClassification":
        return dict(labels=torch.zeros(b, dtype=torch.long))
    if name == "BertForMultipleChoice":
        return dict(labels=torch.ones(b, dtype=torch.long))
    if name == "BertForTokenClassification":
        return dict(labels=torch.zeros(ids.shape, dtype=torch.long))
    if name == "BertForQuestionAnswering":
        return dict(start_positions=torch.zeros(b, dtype=torch.long), end_positions=torch.ones(b, dtype=torch.long))
    return {}


@pytest.mark.parametrize("cls", HEAD_CLASSES, ids=lambda c: c.__name__)
def test_every_class_forward_outputs_and_tuple(cls):
    model = make(cls)
    assert cls.head_name == cls.__name__ and model.config.num_hidden_layers == 2
    ids = ids_for(cls, model.config)
    out = model(ids, output_attentions=True, output_hidden_states=True, **labels_for(cls, model.config, ids))
    assert type(out) is EXPECTED_OUTPUT[cls.head_name]
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    flat_b = ids.shape[0] * (3 if cls is bert_torch.BertForMultipleChoice else 1)
    assert out.attentions[0].shape == (flat_b, 4, 7, 7)
    assert torch.allclose(out.attentions[0].sum(-1), torch.ones(()))
    if cls is not bert_torch.BertModel:
        assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    tup = model(
        ids, output_attentions=True, output_hidden_states=True, return_dict=False, **labels_for(cls, model.config, ids)
    )
    assert isinstance(tup, tuple) and len(tup) == len(out)
    for a, b in zip(tup, out.to_tuple()):
        if torch.is_tensor(a):
            assert torch.equal(a, b)


def test_head_output_shapes():
    config = tiny_config(num_labels=5)
    ids = ids_for(bert_torch.BertModel, config)
    assert bert_torch.BertModel(config)(ids).pooler_output.shape == (2, 32)
    assert bert_torch.BertModel(config, add_pooling_layer=False)(ids).pooler_output is None
    assert bert_torch.BertForPreTraining(config)(ids).prediction_logits.shape == (2, 7, 99)
    assert bert_torch.BertForPreTraining(config)(ids).seq_relationship_logits.shape == (2, 2)
    assert bert_torch.BertForSequenceClassification(config)(ids).logits.shape == (2, 5)
    assert bert_torch.BertForTokenClassification(config)(ids).logits.shape == (2, 7, 5)
    mc_ids = ids_for(bert_torch.BertForMultipleChoice, config)
    assert bert_torch.BertForMultipleChoice(config)(mc_ids).logits.shape == (2, 3)
    qa = bert_torch.BertForQuestionAnswering(tiny_config())(ids)
    assert qa.start_logits.shape == qa.end_logits.shape == (2, 7)


def test_config_defaults_for_outputs():
    model = make(bert_torch.BertModel, output_attentions=True, output_hidden_states=True, return_dict=False)
    out = model(ids_for(bert_torch.BertModel, model.config))
    assert isinstance(out, tuple) and len(out) == 4  # last, pooled, hidden_states, attentions


def test_losses_match_manual_formulas():
    config = tiny_config()
    ids = ids_for(bert_torch.BertModel, config)
    mlm = bert_torch.BertForMaskedLM(config).eval()
    labels = ids.clone()
    labels[:, ::2] = -100
    out = mlm(ids, labels=labels)
    keep = labels != -100
    manual = F.cross_entropy(out.logits[keep], labels[keep])
    assert torch.allclose(out.loss, manual)

    clm = bert_torch.BertLMHeadModel(tiny_config(is_decoder=True)).eval()
    out = clm(ids, labels=ids)
    manual = F.cross_entropy(out.logits[:, :-1].reshape(-1, 99), ids[:, 1:].reshape(-1))
    assert torch.allclose(out.loss, manual) and out.past_key_values is None  # labels turn the cache off

    pre = bert_torch.BertForPreTraining(config).eval()
    nsp = torch.tensor([0, 1])
    out = pre(ids, labels=labels, next_sentence_label=nsp)
    manual = F.cross_entropy(out.prediction_logits[keep], labels[keep]) + F.cross_entropy(
        out.seq_relationship_logits, nsp
    )
    assert torch.allclose(out.loss, manual)
    assert pre(ids, labels=labels).loss is None  # HF needs both labels

    nsp_model = bert_torch.BertForNextSentencePrediction(config).eval()
    out = nsp_model(ids, labels=nsp)
    assert torch.allclose(out.loss, F.cross_entropy(out.logits, nsp))
    assert torch.allclose(nsp_model(ids, next_sentence_label=nsp).loss, out.loss)


def test_sequence_classification_problem_types():
    ids = ids_for(bert_torch.BertModel, tiny_config())
    reg = bert_torch.BertForSequenceClassification(tiny_config(num_labels=1)).eval()
    y = torch.tensor([0.5, -1.0])
    out = reg(ids, labels=y)
    assert torch.allclose(out.loss, F.mse_loss(out.logits[:, 0], y))
    single = bert_torch.BertForSequenceClassification(tiny_config(num_labels=3)).eval()
    y = torch.tensor([2, 0])
    out = single(ids, labels=y)
    assert torch.allclose(out.loss, F.cross_entropy(out.logits, y))
    y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    out = single(ids, labels=y)  # float labels with num_labels > 1: multi-label
    assert torch.allclose(out.loss, F.binary_cross_entropy_with_logits(out.logits, y))
    forced = bert_torch.BertForSequenceClassification(tiny_config(num_labels=3, problem_type="regression")).eval()
    out = forced(ids, labels=y)
    assert torch.allclose(out.loss, F.mse_loss(out.logits, y))
    assert forced.config.problem_type == "regression"


def test_token_classification_and_multiple_choice_losses():
    config = tiny_config(num_labels=4)
    ids = ids_for(bert_torch.BertModel, config)
    tok = bert_torch.BertForTokenClassification(config).eval()
    labels = torch.randint(0, 4, ids.shape)
    labels[0, :3] = -100
    out = tok(ids, labels=labels)
    keep = labels != -100
    assert torch.allclose(out.loss, F.cross_entropy(out.logits[keep], labels[keep]))
    mc = bert_torch.BertForMultipleChoice(config).eval()
    mc_ids = ids_for(bert_torch.BertForMultipleChoice, config)
    y = torch.tensor([2, 1])
    out = mc(mc_ids, attention_mask=torch.ones_like(mc_ids), token_type_ids=torch.zeros_like(mc_ids), labels=y)
    assert torch.allclose(out.loss, F.cross_entropy(out.logits, y))
    # choice j of example i is the (i*C + j)-th flattened sequence
    flat = bert_torch.BertModel(config, seed=None)
    flat.load_canonical_weights(
        {k[len("bert.") :]: v for k, v in mc.canonical_weights().items() if k.startswith("bert.")}
    )
    pooled = flat.eval()(mc_ids.reshape(-1, 7)).pooler_output
    assert torch.allclose(mc.classifier(pooled).view(2, 3), out.logits, atol=1e-6)
    embeds = mc.bert.embeddings.word_embeddings(mc_ids)
    assert torch.allclose(mc(inputs_embeds=embeds).logits, out.logits, atol=1e-5)


def test_question_answering_clamps_and_ignores():
    model = bert_torch.BertForQuestionAnswering(tiny_config()).eval()
    ids = ids_for(bert_torch.BertModel, model.config)
    out = model(ids, start_positions=torch.tensor([1, 99]), end_positions=torch.tensor([[2], [3]]))
    # the second start is clamped to seq_len=7 and ignored
    manual = (
        F.cross_entropy(out.start_logits[:1], torch.tensor([1])) + F.cross_entropy(out.end_logits, torch.tensor([2, 3]))
    ) / 2
    assert torch.allclose(out.loss, manual)
    out = model(ids, start_positions=torch.tensor([-5, 0]), end_positions=torch.tensor([0, 0]))
    assert torch.isfinite(out.loss)  # negatives clamp to 0


def test_sdpa_equals_explicit_attention():
    model = make(bert_torch.BertForMaskedLM)
    ids = ids_for(bert_torch.BertModel, model.config)
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    sdpa = model(ids, attention_mask=mask).logits
    model.set_attn_implementation("eager")
    eager = model(ids, attention_mask=mask).logits
    assert torch.allclose(sdpa, eager, atol=1e-5)
    model.set_attn_implementation("sdpa")
    with_probs = model(ids, attention_mask=mask, output_attentions=True)  # explicit path when probs are asked
    assert torch.allclose(with_probs.logits, sdpa, atol=1e-5)
    assert torch.all(with_probs.attentions[0][1, :, :, 4:] == 0)
    dec = make(bert_torch.BertLMHeadModel)
    a = dec(ids, attention_mask=mask).logits
    dec.set_attn_implementation("eager")
    assert torch.allclose(a, dec(ids, attention_mask=mask).logits, atol=1e-5)
    with pytest.raises(ValueError, match="sdpa"):
        dec.set_attn_implementation("flash")


def test_attention_mask_padding_does_not_leak():
    model = make(bert_torch.BertModel)
    ids = ids_for(bert_torch.BertModel, model.config, batch=1)
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0
    a = model(ids, attention_mask=mask).last_hidden_state[:, :5]
    other = ids.clone()
    other[0, 5:] = 3
    b = model(other, attention_mask=mask).last_hidden_state[:, :5]
    assert torch.allclose(a, b, atol=1e-6)
    mask3 = mask[:, None, :].expand(1, 7, 7)
    assert torch.allclose(model(ids, attention_mask=mask3).last_hidden_state[:, :5], a, atol=1e-6)


def test_token_types_position_ids_inputs_embeds_head_mask():
    model = make(bert_torch.BertModel)
    ids = ids_for(bert_torch.BertModel, model.config)
    base = model(ids).last_hidden_state
    assert torch.equal(model(ids, token_type_ids=torch.zeros_like(ids)).last_hidden_state, base)
    assert not torch.allclose(model(ids, token_type_ids=torch.ones_like(ids)).last_hidden_state, base)
    assert torch.allclose(model(ids, position_ids=torch.arange(7)[None]).last_hidden_state, base)
    assert not torch.allclose(model(ids, position_ids=torch.arange(7).flip(0)[None]).last_hidden_state, base)
    embeds = model.embeddings.word_embeddings(ids)
    assert torch.allclose(model(inputs_embeds=embeds).last_hidden_state, base, atol=1e-6)
    ones = torch.ones(2, 4)
    assert torch.allclose(model(ids, head_mask=ones).last_hidden_state, base, atol=1e-5)
    head_mask = torch.ones(2, 4)
    head_mask[0, 2] = 0
    out = model(ids, head_mask=head_mask, output_attentions=True)
    assert torch.all(out.attentions[0][:, 2] == 0) and torch.all(out.attentions[1][:, 2] > 0)
    assert not torch.allclose(out.last_hidden_state, base)
    out1 = model(ids, head_mask=torch.tensor([1.0, 1.0, 0.0, 1.0]), output_attentions=True)
    assert torch.all(out1.attentions[1][:, 2] == 0)


@pytest.mark.parametrize("pos", ["relative_key", "relative_key_query"])
def test_relative_positions(pos):
    model = make(bert_torch.BertModel, position_embedding_type=pos)
    assert model.encoder.layer[0].attention.self.distance_embedding.weight.shape == (2 * 64 - 1, 8)
    assert model.embeddings.position_embedding_type == pos
    ids = ids_for(bert_torch.BertModel, model.config)
    out = model(ids, output_attentions=True).last_hidden_state
    model.set_attn_implementation("eager")
    assert torch.allclose(model(ids).last_hidden_state, out, atol=1e-6)
    # relative models are shift invariant in absolute position: position_ids are unused
    assert torch.equal(model(ids, position_ids=torch.arange(7).flip(0)[None]).last_hidden_state, out)


@pytest.mark.parametrize(
    "act",
    [
        "gelu",
        "gelu_new",
        "gelu_python",
        "gelu_fast",
        "gelu_pytorch_tanh",
        "quick_gelu",
        "relu",
        "silu",
        "swish",
        "tanh",
        "mish",
    ],
)
def test_activations(act):
    from bert_torch.modeling import ACTIVATIONS

    x = torch.linspace(-4, 4, 101)
    expected = {
        "gelu": x * 0.5 * (1 + torch.erf(x / math.sqrt(2))),
        "gelu_python": x * 0.5 * (1 + torch.erf(x / math.sqrt(2))),
        "gelu_new": 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
        "gelu_fast": 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
        "gelu_pytorch_tanh": 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
        "quick_gelu": x * torch.sigmoid(1.702 * x),
        "relu": x.clamp(min=0),
        "silu": x * torch.sigmoid(x),
        "swish": x * torch.sigmoid(x),
        "tanh": torch.tanh(x),
        "mish": x * torch.tanh(F.softplus(x)),
    }[act]
    assert torch.allclose(ACTIVATIONS[act](x), expected, atol=1e-6)
    model = make(bert_torch.BertForMaskedLM, hidden_act=act)
    assert torch.isfinite(model(ids_for(bert_torch.BertModel, model.config)).logits).all()


def test_chunked_feed_forward_equal():
    ids = ids_for(bert_torch.BertModel, tiny_config(), seq=8)
    plain = make(bert_torch.BertModel)(ids).last_hidden_state
    chunked = make(bert_torch.BertModel, chunk_size_feed_forward=3)(ids).last_hidden_state  # uneven chunks too
    assert torch.allclose(plain, chunked, atol=1e-6)


def test_layer_norm_eps_and_classifier_dropout():
    ids = ids_for(bert_torch.BertModel, tiny_config())
    a = make(bert_torch.BertModel)(ids).last_hidden_state
    b = make(bert_torch.BertModel, layer_norm_eps=0.5)(ids).last_hidden_state
    assert not torch.allclose(a, b)
    model = make(bert_torch.BertForSequenceClassification, classifier_dropout=0.7, hidden_dropout_prob=0.0)
    assert model.dropout.p == 0.7
    assert make(bert_torch.BertForTokenClassification).dropout.p == 0.1  # falls back to hidden_dropout_prob


def test_dropout_only_in_train():
    model = make(bert_torch.BertForMaskedLM)
    ids = ids_for(bert_torch.BertModel, model.config)
    assert torch.equal(model(ids).logits, model(ids).logits)
    model.train()
    assert not torch.allclose(model(ids).logits, model(ids).logits)
    model.eval()
    model.set_attn_implementation("eager")
    assert torch.equal(model(ids, output_attentions=True).logits, model(ids).logits)


# ------------------------------------------------------------------------------------------------ decoder


@pytest.mark.parametrize("cross", [False, True])
def test_decoder_cache_equals_full_pass(cross):
    config = tiny_config(is_decoder=True, add_cross_attention=cross)
    model = bert_torch.BertLMHeadModel(config).eval()
    ids = ids_for(bert_torch.BertModel, config, seq=9)
    enc = {}
    if cross:
        enc = dict(
            encoder_hidden_states=torch.randn(2, 5, 32), encoder_attention_mask=torch.tensor([[1] * 5, [1, 1, 1, 0, 0]])
        )
    full = model(ids, use_cache=False, **enc)
    assert full.past_key_values is None
    first = model(ids[:, :6], **enc)  # use_cache defaults to config.use_cache in decoders
    past = first.past_key_values
    assert len(past) == 2 and len(past[0]) == (4 if cross else 2)
    assert past[0][0].shape == (2, 4, 6, 8)
    if cross:
        assert past[0][2].shape == (2, 4, 5, 8)
    step = model(ids[:, 6:], past_key_values=past, **enc)
    assert step.past_key_values[0][0].shape == (2, 4, 9, 8)
    assert torch.allclose(step.logits, full.logits[:, 6:], atol=1e-5)
    assert torch.allclose(first.logits, full.logits[:, :6], atol=1e-5)
    # causal: a later token does not change earlier logits
    changed = ids.clone()
    changed[:, -1] = 5
    assert torch.allclose(model(changed, use_cache=False, **enc).logits[:, :-1], full.logits[:, :-1], atol=1e-6)
    out = model(ids, output_attentions=True, use_cache=False, **enc)
    assert torch.all(out.attentions[0][:, :, 0, 1:] == 0)
    if cross:
        assert out.cross_attentions[0].shape == (2, 4, 9, 5)
        assert torch.all(out.cross_attentions[0][1, :, :, 3:] == 0)


def test_decoder_with_padding_mask_and_past():
    model = make(bert_torch.BertLMHeadModel)
    ids = ids_for(bert_torch.BertModel, model.config, seq=6)
    mask = torch.tensor([[1] * 6, [1, 1, 1, 1, 0, 1]])
    full = model(ids, attention_mask=mask, use_cache=False).logits
    first = model(ids[:, :4], attention_mask=mask[:, :4])
    step = model(ids[:, 4:], attention_mask=mask, past_key_values=first.past_key_values).logits
    assert torch.allclose(step, full[:, 4:], atol=1e-5)


def test_generate_greedy_uses_cache_and_matches_recomputation():
    model = make(bert_torch.BertLMHeadModel)
    prompt = ids_for(bert_torch.BertModel, model.config, seq=4)
    calls = []
    model.register_forward_pre_hook(
        lambda m, args, kwargs: calls.append(kwargs.get("past_key_values")), with_kwargs=True
    )
    generated = model.generate(prompt, max_new_tokens=6)
    assert generated.shape == (2, 10) and torch.equal(generated[:, :4], prompt)
    assert calls[0] is None and all(c is not None for c in calls[1:]) and len(calls) == 6
    seq = prompt
    for _ in range(6):
        nxt = model(seq, use_cache=False).logits[:, -1].argmax(-1)
        seq = torch.cat([seq, nxt[:, None]], 1)
    assert torch.equal(seq, generated)


def test_generate_sampling_top_k_temperature_and_eos():
    model = make(bert_torch.BertLMHeadModel)
    prompt = ids_for(bert_torch.BertModel, model.config, seq=3)
    a = model.generate(
        prompt, max_new_tokens=5, do_sample=True, top_k=3, temperature=0.7, generator=torch.Generator().manual_seed(1)
    )
    b = model.generate(
        prompt, max_new_tokens=5, do_sample=True, top_k=3, temperature=0.7, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(a, b) and a.shape == (2, 8)
    # top_k=1 sampling is greedy
    greedy = model.generate(prompt, max_new_tokens=5)
    assert torch.equal(model.generate(prompt, max_new_tokens=5, do_sample=True, top_k=1), greedy)
    eos = int(greedy[0, 4])  # the first sequence emits it at step 2
    out = model.generate(prompt, max_new_tokens=5, eos_token_id=eos, pad_token_id=0)
    row0 = out[0, 3:].tolist()
    first_eos = row0.index(eos)
    assert all(t == 0 for t in row0[first_eos + 1 :])
    with pytest.raises(ValueError, match="is_decoder"):
        bert_torch.BertLMHeadModel(tiny_config()).generate(prompt)


def test_decoder_relative_positions_cache():
    # HF 4.57 puts every query at the last key position whenever a cache is in use; cached steps stay consistent
    model = make(bert_torch.BertLMHeadModel, position_embedding_type="relative_key_query")
    ids = ids_for(bert_torch.BertModel, model.config, seq=5)
    with_cache = model(ids)
    again = model(ids[:, :4])
    step = model(ids[:, 4:], past_key_values=again.past_key_values)
    assert torch.allclose(step.logits[:, 0], with_cache.logits[:, -1], atol=1e-5)


# ------------------------------------------------------------------------------------------------ validation


def test_validation_errors():
    model = make(bert_torch.BertModel)
    ids = ids_for(bert_torch.BertModel, model.config)
    with pytest.raises(ValueError, match=r"id 99.*vocab_size=99"):
        model(torch.full((1, 3), 99))
    with pytest.raises(ValueError, match="negative id -1"):
        model(torch.tensor([[1, -1]]))
    with pytest.raises(ValueError, match="token_type_ids contains 2"):
        model(ids, token_type_ids=torch.full_like(ids, 2))
    with pytest.raises(ValueError, match="exceeds max_position_embeddings=64"):
        model(torch.ones(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match="both input_ids and inputs_embeds"):
        model(ids, inputs_embeds=torch.zeros(2, 7, 32))
    with pytest.raises(ValueError, match="either input_ids or inputs_embeds"):
        model()
    with pytest.raises(ValueError, match=r"attention_mask has shape \(2, 5\).*\(2, 7\)"):
        model(ids, attention_mask=torch.ones(2, 5))
    with pytest.raises(ValueError, match=r"token_type_ids has shape \(2, 6\) but input_ids has shape \(2, 7\)"):
        model(ids, token_type_ids=torch.zeros(2, 6, dtype=torch.long))
    with pytest.raises(ValueError, match="head_mask has shape"):
        model(ids, head_mask=torch.ones(3))
    with pytest.raises(ValueError, match="add_cross_attention is False"):
        model(ids, encoder_hidden_states=torch.zeros(2, 3, 32))
    with pytest.raises(ValueError, match="is_decoder is False"):
        model(ids, past_key_values=((torch.zeros(2, 4, 1, 8),) * 2,) * 2)
    with pytest.raises(ValueError, match="rank 2"):
        model(ids[0])
    dec = make(bert_torch.BertLMHeadModel)
    past = dec(torch.ones(1, 60, dtype=torch.long)).past_key_values
    with pytest.raises(ValueError, match=r"60 cached \+ 5 new"):
        dec(torch.ones(1, 5, dtype=torch.long), past_key_values=past)
    mc = make(bert_torch.BertForMultipleChoice)
    with pytest.raises(ValueError, match="batch, num_choices, seq_len"):
        mc(ids)
