"""bert_torch inside PyTorch: gradient checkpointing, torch.compile, torch.export, bf16 autocast, a training loop,
import isolation."""

import pytest
import torch

import bert_torch
from bert_core.config import tiny_config


def ids_for(config, batch=2, seq=7):
    return torch.randint(1, config.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(0))


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


def test_sequence_classification_fine_tune_reaches_95_percent():
    torch.manual_seed(0)
    config = tiny_config(num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = bert_torch.BertForSequenceClassification(config, seed=0).train()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 99, (64, 10), generator=g)
    ids[:, 0] = 2  # a fixed [CLS]-like first token
    labels = (ids[:, 1:].eq(7) | ids[:, 1:].eq(8)).any(1).long()  # does the sentence contain token 7 or 8?
    ids[:32, 4] = torch.where(labels[:32].bool(), ids[:32, 4], torch.tensor(7))
    labels = (ids[:, 1:].eq(7) | ids[:, 1:].eq(8)).any(1).long()
    assert 0.3 < labels.float().mean() < 0.7
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(150):
        loss = model(ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 10 == 9:
            with torch.no_grad():
                accuracy = (model.eval()(ids).logits.argmax(-1) == labels).float().mean().item()
            model.train()
            if accuracy > 0.95:
                break
    assert accuracy > 0.95, accuracy
