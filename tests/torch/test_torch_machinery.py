"""bert_torch model machinery: canonical weights, init, save/load, tying, resizing, pruning, checkpointing, grads,
torch.compile / torch.export / bf16 autocast."""

import json

import numpy as np
import pytest
import torch

import bert_torch
from bert_core.config import tiny_config
from bert_core.init import init_weights
from bert_core.weights import HEADS, stored_weights


def ids_for(config, batch=2, seq=7):
    return torch.randint(1, config.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(0))


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
    with pytest.raises(KeyError, match=r"missing \['cls.predictions.bias'\].*unexpected \['nonsense.weight'\]"):
        model.load_canonical_weights(broken)
    broken = dict(weights)
    broken["bert.pooler.dense.weight"] = np.zeros((32, 32), np.float32)
    with pytest.raises(KeyError, match="pooler"):
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
    ids = ids_for(model.config)
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
    ids = ids_for(model.config)
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


def test_save_and_from_pretrained(tmp_path):
    config = tiny_config(num_labels=3)
    model = bert_torch.BertForSequenceClassification(config, seed=2).eval()
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["architectures"] == ["BertForSequenceClassification"]
    loaded, info = bert_torch.BertForSequenceClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and not loaded.training
    ids = ids_for(config)
    assert torch.equal(loaded(ids).logits, model(ids).logits)
    # a head on a backbone-only checkpoint: the classifier is newly initialised from the seed
    bert_torch.BertModel(config, seed=2).save_pretrained(tmp_path / "base")
    with pytest.warns(UserWarning, match="newly"):
        new, info = bert_torch.BertForTokenClassification.from_pretrained(
            tmp_path / "base", num_labels=5, id2label={i: f"T{i}" for i in range(5)}, output_loading_info=True, seed=4
        )
    assert info["missing_keys"] == ["classifier.weight", "classifier.bias"]
    assert new.config.num_labels == 5 and new.config.id2label[4] == "T4"
    np.testing.assert_array_equal(
        new.canonical_weights()["classifier.weight"],
        init_weights(new.config, "BertForTokenClassification", 4)["classifier.weight"],
    )
    reg = bert_torch.BertForSequenceClassification.from_pretrained(tmp_path, problem_type="multi_label_classification")
    assert reg.config.problem_type == "multi_label_classification"
    with pytest.raises(ValueError, match=r"size mismatch for classifier\.(weight|bias)"):
        bert_torch.BertForSequenceClassification.from_pretrained(tmp_path, num_labels=7)
    re_init, info = bert_torch.BertForSequenceClassification.from_pretrained(
        tmp_path, num_labels=7, ignore_mismatched_sizes=True, output_loading_info=True
    )
    assert re_init(ids).logits.shape == (2, 7) and {m[0] for m in info["mismatched_keys"]} == {
        "classifier.weight",
        "classifier.bias",
    }
    half = bert_torch.BertForSequenceClassification.from_pretrained(tmp_path, torch_dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16 and half(ids).logits.dtype == torch.bfloat16
    assert bert_torch.BertModel.from_pretrained(tmp_path, torch_dtype="float64").dtype == torch.float64
    no_pool = bert_torch.BertModel.from_pretrained(tmp_path, add_pooling_layer=False)
    assert no_pool.pooler is None


def test_sharded_save(tmp_path):
    model = bert_torch.BertForMaskedLM(tiny_config())
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    loaded = bert_torch.BertForMaskedLM.from_pretrained(tmp_path)
    for name, array in loaded.canonical_weights().items():
        np.testing.assert_array_equal(array, model.canonical_weights()[name])


def _grads(model, ids, labels):
    model.zero_grad()
    model(ids, labels=labels).loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_gradient_checkpointing_same_result():
    config = tiny_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = bert_torch.BertForMaskedLM(config).train()
    ids = ids_for(config)
    plain = _grads(model, ids, ids)
    model.gradient_checkpointing_enable()
    assert model.bert.encoder.gradient_checkpointing
    calls = []
    orig = torch.utils.checkpoint.checkpoint
    try:
        torch.utils.checkpoint.checkpoint = lambda *a, **k: calls.append(k) or orig(*a, **k)
        checkpointed = _grads(model, ids, ids)
    finally:
        torch.utils.checkpoint.checkpoint = orig
    assert len(calls) == 2 and all(k["use_reentrant"] is False for k in calls)
    for name, grad in plain.items():
        assert torch.allclose(grad, checkpointed[name], atol=1e-6), name
    model.eval()
    assert model(ids).logits.shape == (2, 7, 99)
    model.gradient_checkpointing_disable()
    dec = bert_torch.BertLMHeadModel(tiny_config(is_decoder=True)).train()
    dec.gradient_checkpointing_enable()
    assert dec(ids).past_key_values is None  # no cache while recomputing


def test_canonical_grads_tied_decoder_accumulates():
    config = tiny_config()
    model = bert_torch.BertForMaskedLM(config).train()
    ids = ids_for(config)
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


# ------------------------------------------------------------------------------------------------ compile / export


def test_torch_compile_eager_and_aot_eager():
    model = bert_torch.BertForSequenceClassification(tiny_config()).eval()
    ids = ids_for(model.config)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    expected = model(ids, attention_mask=mask, labels=torch.tensor([0, 1]))
    for backend in ("eager", "aot_eager"):
        torch._dynamo.reset()
        compiled = torch.compile(model, backend=backend, fullgraph=True)
        out = compiled(ids, attention_mask=mask, labels=torch.tensor([0, 1]))
        assert torch.allclose(out.logits, expected.logits, atol=1e-5)
        assert torch.allclose(out.loss, expected.loss, atol=1e-5)
    torch._dynamo.reset()
    dec = bert_torch.BertLMHeadModel(tiny_config(is_decoder=True)).eval()
    compiled = torch.compile(dec, backend="aot_eager")
    ref = dec(ids)
    out = compiled(ids)
    assert torch.allclose(out.logits, ref.logits, atol=1e-5)
    assert torch.allclose(out.past_key_values[1][0], ref.past_key_values[1][0], atol=1e-5)


def test_torch_export_keeps_shape_checks():
    model = bert_torch.BertForMaskedLM(tiny_config()).eval()
    ids = ids_for(model.config)
    mask = torch.ones_like(ids)
    exported = torch.export.export(model, (ids,), kwargs=dict(attention_mask=mask))
    out = exported.module()(ids, attention_mask=mask)
    assert torch.allclose(out.logits, model(ids, attention_mask=mask).logits, atol=1e-5)
    with pytest.raises(ValueError, match="attention_mask has shape"):
        torch.export.export(model, (ids,), kwargs=dict(attention_mask=torch.ones(2, 3)))


def test_bf16_autocast():
    model = bert_torch.BertForMaskedLM(tiny_config()).eval()
    ids = ids_for(model.config)
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    ref = model(ids, attention_mask=mask).logits
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(ids, attention_mask=mask, labels=ids)
        dec = bert_torch.BertLMHeadModel(tiny_config(is_decoder=True)).eval()
        dec_out = dec(ids, attention_mask=mask, labels=ids)
    assert torch.isfinite(out.logits.float()).all() and torch.isfinite(out.loss)
    assert torch.allclose(out.logits.float(), ref, atol=0.1)
    assert torch.isfinite(dec_out.loss)


def test_import_isolation():
    import subprocess
    import sys

    code = (
        "import sys, bert_torch; bad = [m for m in ('tensorflow', 'keras', 'jax', 'flax') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_from_pretrained_keeps_every_tie_and_equals_a_built_model(tmp_path):
    # from_pretrained builds on the meta device and materialises empty storage: every tensor must then be loaded
    config = tiny_config()
    built = bert_torch.BertForPreTraining(config, seed=5).eval()
    built.save_pretrained(tmp_path)
    loaded = bert_torch.BertForPreTraining.from_pretrained(tmp_path)
    head = loaded.cls.predictions
    assert head.decoder.bias is head.bias and head.decoder.weight is loaded.bert.embeddings.word_embeddings.weight
    ids = torch.randint(0, config.vocab_size, (2, 7))
    with torch.no_grad():
        a, b = built(input_ids=ids), loaded(input_ids=ids)
    assert torch.equal(a.prediction_logits, b.prediction_logits) and torch.equal(
        a.seq_relationship_logits, b.seq_relationship_logits
    )
