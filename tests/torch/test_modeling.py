"""bert_torch on tiny configs: every class, every forward argument, losses, attention paths, canonical weights,
tying, resizing, pruning, the cache, generation, validation."""

import numpy as np
import pytest
import torch

import bert_torch
from bert_core import outputs as core_outputs
from bert_core.config import tiny_config
from bert_core.init import init_weights
from bert_core.weights import HEADS, stored_weights

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


# ------------------------------------------------------------------------------------------------ weights, tying, resizing, pruning


@pytest.mark.parametrize("head", HEADS)
def test_init_and_canonical_weights_round_trip(head):
    cls = getattr(bert_torch, head)
    config = tiny_config(
        is_decoder=head == "BertLMHeadModel", num_labels=3 if head != "BertForQuestionAnswering" else 2
    )
    model = cls(config, seed=5)
    weights = model.canonical_weights()
    expected = init_weights(config, head, 5)
    assert list(weights) == list(stored_weights(config, head)) == list(expected)
    for name, array in weights.items():
        assert array.dtype == np.float32
        np.testing.assert_array_equal(array, expected[name])
    other = cls(config, seed=6)
    other.load_canonical_weights(weights)
    for name, array in other.canonical_weights().items():
        np.testing.assert_array_equal(array, weights[name])


def test_load_canonical_weights_errors():
    model = bert_torch.BertForMaskedLM(tiny_config())
    weights = model.canonical_weights()
    broken = dict(weights)
    del broken["cls.predictions.bias"]
    broken["nonsense.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"missing \['cls.predictions.bias'\], unexpected \['nonsense.weight'\]"):
        model.load_canonical_weights(broken)
    broken = dict(weights)
    broken["bert.pooler.dense.weight"] = np.zeros((32, 32), np.float32)
    with pytest.raises(ValueError, match=r"unexpected \['bert.pooler.dense.weight'\]"):
        model.load_canonical_weights(broken)
    broken = dict(weights)
    broken["cls.predictions.bias"] = np.zeros(5, np.float32)
    with pytest.raises(ValueError, match=r"cls.predictions.bias: got \(5,\), expected \(99,\)"):
        model.load_canonical_weights(broken)


def test_tied_decoder_is_the_embedding_parameter():
    model = bert_torch.BertForMaskedLM(tiny_config())
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    assert model.get_output_embeddings() is model.cls.predictions.decoder
    assert "cls.predictions.decoder.weight" not in model.canonical_weights()
    untied = bert_torch.BertForPreTraining(tiny_config(tie_word_embeddings=False))
    assert untied.cls.predictions.decoder.weight is not untied.bert.embeddings.word_embeddings.weight
    assert "cls.predictions.decoder.weight" in untied.canonical_weights()
    assert bert_torch.BertForSequenceClassification(tiny_config()).get_output_embeddings() is None


def test_set_input_embeddings_reties():
    model = bert_torch.BertForMaskedLM(tiny_config())
    new = torch.nn.Embedding(99, 32)
    model.set_input_embeddings(new)
    assert model.get_input_embeddings() is new and model.cls.predictions.decoder.weight is new.weight


@pytest.mark.parametrize("tie", [True, False])
def test_resize_token_embeddings(tie):
    model = bert_torch.BertForMaskedLM(tiny_config(tie_word_embeddings=tie)).eval()
    ids = ids_for(bert_torch.BertModel, model.config)
    before = model(ids).logits
    old = model.get_input_embeddings().weight.detach().clone()
    model.resize_token_embeddings(120)
    assert model.config.vocab_size == 120
    assert model.get_input_embeddings().weight.shape == (120, 32)
    assert (
        model.cls.predictions.bias.shape == (120,) and model.cls.predictions.decoder.bias is model.cls.predictions.bias
    )
    assert torch.equal(model.get_input_embeddings().weight[:99], old)
    assert (model.cls.predictions.decoder.weight is model.get_input_embeddings().weight) == tie
    after = model(ids).logits
    assert after.shape == (2, 7, 120) and torch.allclose(after[..., :99], before, atol=1e-6)
    assert list(model.canonical_weights()) == list(stored_weights(model.config, "BertForMaskedLM"))
    model(torch.tensor([[119]]))  # the new ids are valid now
    model.resize_token_embeddings(50)
    assert model(ids.clamp(max=49)).logits.shape == (2, 7, 50)


def test_prune_heads():
    model = bert_torch.BertModel(tiny_config()).eval()
    ids = ids_for(bert_torch.BertModel, model.config)
    head_mask = torch.ones(2, 4)
    head_mask[0, 1] = 0
    head_mask[0, 3] = 0
    masked = model(ids, head_mask=head_mask).last_hidden_state
    model.prune_heads({0: [1, 3]})
    attn = model.encoder.layer[0].attention
    assert attn.self.num_attention_heads == 2 and attn.self.query.weight.shape == (16, 32)
    assert attn.output.dense.weight.shape == (32, 16)
    assert torch.allclose(model(ids).last_hidden_state, masked, atol=1e-5)
    model.prune_heads({0: [1, 2]})  # head 1 already gone; original head 2 is removed now
    assert attn.self.num_attention_heads == 1 and model.config.pruned_heads == {0: [1, 2, 3]}
    assert model(ids, output_attentions=True).attentions[0].shape == (2, 1, 7, 7)


def test_canonical_grads_tied_decoder_accumulates():
    config = tiny_config()
    model = bert_torch.BertForMaskedLM(config).train()
    ids = ids_for(bert_torch.BertModel, config)
    loss, grads = bert_torch.canonical_grads(model, dict(input_ids=ids, labels=ids))
    assert model.training  # mode restored
    assert list(grads) == list(stored_weights(config, "BertForMaskedLM"))
    model.eval()
    expected = model(ids, labels=ids).loss
    assert abs(loss - float(expected)) < 1e-6
    emb = model.bert.embeddings.word_embeddings.weight
    manual = torch.autograd.grad(model(ids, labels=ids).loss, emb)[0]
    np.testing.assert_allclose(grads["bert.embeddings.word_embeddings.weight"], manual.numpy(), atol=1e-7)
    # the decoder contributes: rows of ids never seen in the input still get gradient
    unseen = sorted(set(range(99)) - set(ids.flatten().tolist()) - {0})[0]
    assert np.abs(grads["bert.embeddings.word_embeddings.weight"][unseen]).sum() > 0
    with pytest.raises(ValueError, match="no loss"):
        bert_torch.canonical_grads(model, dict(input_ids=ids))


# ------------------------------------------------------------------------------------------------ decoder


def test_cache_interface_layer_by_layer():
    # the ladder's cache: a layer takes past_key_value (k, v) and returns its present entry, HF's legacy tuple
    from bert_torch.modeling import _extended_attention_mask

    model = make(bert_torch.BertLMHeadModel)
    config = model.config
    ids = ids_for(bert_torch.BertModel, config, seq=6)
    bert = model.bert
    full = model(ids, use_cache=True)
    hidden = bert.embeddings(ids[:, :4], None, None, None, 0)
    mask = _extended_attention_mask(config, torch.ones(2, 4), 4, 0, torch.float32)
    presents = []
    for layer in bert.encoder.layer:
        hidden, self_probs, cross_probs, present = layer(hidden, mask, None, None, None, None, True, False)
        assert self_probs is None and cross_probs is None and len(present) == 2
        presents.append(present)
    step = bert.embeddings(ids[:, 4:], None, None, None, 4)  # positions 4, 5
    mask = _extended_attention_mask(config, torch.ones(2, 6), 2, 4, torch.float32)
    for i, layer in enumerate(bert.encoder.layer):
        step, _, _, present = layer(step, mask, None, None, None, presents[i], True, False)
        assert present[0].shape == (2, 4, 6, 8)
        assert torch.allclose(present[0], full.past_key_values[i][0], atol=1e-5)
        assert torch.allclose(present[1], full.past_key_values[i][1], atol=1e-5)
    assert torch.allclose(model.cls(step), full.logits[:, 4:], atol=1e-5)


# ------------------------------------------------------------------------------------------------ generation


def _greedy_by_recomputation(model, prompt, steps, **cross):
    seq = prompt
    for _ in range(steps):
        nxt = model(seq, use_cache=False, **cross).logits[:, -1].argmax(-1)
        seq = torch.cat([seq, nxt[:, None]], 1)
    return seq


def test_generate_greedy_uses_cache_and_matches_recomputation():
    model = make(bert_torch.BertLMHeadModel)
    prompt = ids_for(bert_torch.BertModel, model.config, seq=4)
    calls = []
    model.register_forward_pre_hook(
        lambda m, args, kwargs: calls.append(kwargs.get("past_key_values")), with_kwargs=True
    )
    generated = model.generate(prompt, max_new_tokens=6)
    assert generated.shape == (2, 10) and generated.dtype == prompt.dtype and torch.equal(generated[:, :4], prompt)
    assert calls[0] is None and all(c is not None for c in calls[1:]) and len(calls) == 6
    assert torch.equal(_greedy_by_recomputation(model, prompt, 6), generated)


def test_sampling_logits_follows_hf_processors():
    from bert_torch.modeling import _sampling_logits

    inf = float("-inf")
    logits = torch.tensor([[1.0, 2.0, 2.0, 3.0, 0.0]])
    # top_k keeps every logit >= the k-th largest: the tie with the 2nd largest stays
    assert _sampling_logits(logits, 1.0, 2, None).tolist() == [[inf, 2.0, 2.0, 3.0, inf]]
    assert _sampling_logits(logits, 2.0, None, None).tolist() == [[0.5, 1.0, 1.0, 1.5, 0.0]]
    probs = torch.log(torch.tensor([[0.1, 0.4, 0.2, 0.3]]))
    # ascending cumulative probabilities 0.1, 0.3, 0.6, 1.0: those <= 1 - 0.6 are dropped
    kept = _sampling_logits(probs, 1.0, None, 0.6) > inf
    assert kept.tolist() == [[False, True, False, True]]
    assert (_sampling_logits(probs, 1.0, None, 1e-6) > inf).tolist() == [[False, True, False, False]]
    assert torch.equal(_sampling_logits(probs, 1.0, None, 1.0), probs)
    # temperature first (p ~ p**2: .03 .53 .13 .30), then top-k (drops .03; renormalised .55 .14 .31), then top-p
    # (ascending cumulative .14 .45 1.0: only .14 is <= 1 - 0.6)
    both = _sampling_logits(probs, 0.5, 3, 0.6) > inf
    assert both.tolist() == [[False, True, False, True]]


def _allowed(logits, temperature, top_k, top_p):
    """Reference: the token set HF's processors leave, computed with numpy from one row of float logits."""
    x = logits.detach().double().numpy() / temperature
    keep = np.ones_like(x, dtype=bool)
    if top_k is not None:
        keep &= x >= np.sort(x)[::-1][top_k - 1]
    if top_p is not None:
        p = np.where(keep, np.exp(x - x[keep].max()), 0.0)
        p /= p.sum()
        order = np.argsort(p, kind="stable")
        cum = np.cumsum(p[order])
        drop = cum <= 1 - top_p - 1e-6  # a token within rounding of the threshold may go either way
        drop[-1] = False
        keep[order[drop]] = False
    return set(np.flatnonzero(keep).tolist())


# ------------------------------------------------------------------------------------------------ validation


def test_numpy_inputs_are_accepted_and_other_types_named():
    model = bert_torch.BertForSequenceClassification(tiny_config(), seed=0).eval()
    ids = np.random.default_rng(0).integers(1, 99, (2, 5))
    out = model(ids, attention_mask=np.ones_like(ids), labels=np.array([0, 1]))
    ref = model(torch.from_numpy(ids), attention_mask=torch.ones(2, 5, dtype=torch.long), labels=torch.tensor([0, 1]))
    assert torch.equal(out.logits, ref.logits) and torch.equal(out.loss, ref.loss)
    with pytest.raises(TypeError, match="inputs must be torch.Tensor \\(or numpy arrays\\), got list"):
        model([[1, 2, 3]])
