"""bert_torch.compile_for_inference: compiled == eager for every head, fp32 and bf16, shapes, errors, pipelines.

torch.compile of even a one-layer model costs seconds: every model here is compiled once (module fixtures), and
the tests reuse them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

import bert_torch
from bert_core.config import tiny_config
from bert_core.tokenization_fast import BertTokenizerFast

HEADS = [cls.__name__ for cls in bert_torch.ALL_MODEL_CLASSES]
SEQ = 8


def _config(**overrides):
    return tiny_config(num_hidden_layers=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **overrides)


def _inputs(head: str, batch: int = 2, seq: int = SEQ, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    shape = (batch, 2, seq) if head == "BertForMultipleChoice" else (batch, seq)
    ids = torch.randint(1, 99, shape, generator=g)
    mask = torch.ones(shape, dtype=torch.long)
    mask[0, ..., seq - 3 :] = 0  # padding: the masked attention path
    types = torch.zeros(shape, dtype=torch.long)
    types[..., seq // 2 :] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _tensors(out):
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor)}


@pytest.fixture(scope="module")
def heads():
    """head -> (compiled model, eager outputs, compiled outputs), each compiled once on (2, 8) inputs."""
    found = {}
    for cls in bert_torch.ALL_MODEL_CLASSES:
        model = cls(_config(), seed=0)
        inputs = _inputs(cls.__name__)
        with torch.inference_mode():
            eager = _tensors(model.eval()(**inputs))
            compiled = bert_torch.compile_for_inference(model)
            assert compiled is model
            got = _tensors(compiled(**inputs))
        found[cls.__name__] = (compiled, eager, got)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("head", HEADS)
def test_every_head_compiled_equals_eager(heads, head):
    model, eager, got = heads[head]
    assert type(model).__name__ == head and not model.training
    assert set(got) == set(eager)
    for name, value in eager.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
        np.testing.assert_allclose(got[name].numpy(), value.numpy(), atol=1e-5, rtol=0, err_msg=f"{head}.{name}")


def test_freezing_flag_is_scoped_to_the_call(heads):
    assert torch._inductor.config.freezing is False  # set only while a compiled model runs, then restored


def test_new_shapes_compile_once_more_then_reuse_one_dynamic_graph(heads):
    model = heads["BertModel"][0]
    before = counters["stats"]["unique_graphs"]
    for batch, seq in ((3, 16), (4, 24), (2, 40)):
        inputs = _inputs("BertModel", batch, seq, seed=seq)
        with torch.inference_mode():
            got = model(**inputs).last_hidden_state
            model._compiled_call_impl, saved = None, model._compiled_call_impl  # the eager forward, for reference
            try:
                eager = model(**inputs).last_hidden_state
            finally:
                model._compiled_call_impl = saved
        np.testing.assert_allclose(got.numpy(), eager.numpy(), atol=1e-5, rtol=0)
    # dynamic=None: the second shape recompiles with symbolic batch and length; every later shape reuses it
    assert counters["stats"]["unique_graphs"] - before == 1


def test_each_compiled_model_keeps_its_own_frozen_weights(heads):
    first = heads["BertModel"][0]
    other = bert_torch.BertModel(_config(), seed=1).eval()
    inputs = _inputs("BertModel")
    with torch.inference_mode():
        want = other(**inputs).last_hidden_state
        got = bert_torch.compile_for_inference(other)(**inputs).last_hidden_state
        again = first(**inputs).last_hidden_state
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(again.numpy(), heads["BertModel"][1]["last_hidden_state"].numpy(), atol=1e-5, rtol=0)


def test_bf16_model_compiles(heads):
    model = bert_torch.BertModel(_config(), seed=0).eval().to(torch.bfloat16)
    inputs = _inputs("BertModel")
    with torch.inference_mode():
        eager = model(**inputs).last_hidden_state
        got = bert_torch.compile_for_inference(model)(**inputs).last_hidden_state
    fp32 = heads["BertModel"][1]["last_hidden_state"]
    assert got.dtype == torch.bfloat16
    np.testing.assert_allclose(got.float().numpy(), eager.float().numpy(), atol=5e-2, rtol=0)
    cosine = torch.nn.functional.cosine_similarity(got.float().flatten(), fp32.flatten(), dim=0)
    assert cosine > 0.999


def test_ids_are_checked_eagerly_with_the_eager_wording(heads):
    model = heads["BertForSequenceClassification"][0]
    bad = torch.tensor([[1, 2, 99]])
    with pytest.raises(ValueError, match=r"input_ids contains id 99, out of range for vocab_size=99"):
        model(bad)
    with pytest.raises(ValueError, match=r"token_type_ids contains 2, out of range for type_vocab_size=2"):
        model(torch.tensor([[1, 2, 3]]), token_type_ids=torch.tensor([[0, 1, 2]]))


def test_a_call_with_labels_runs_eagerly_with_its_checks(heads):
    model = heads["BertForSequenceClassification"][0]
    inputs = _inputs("BertForSequenceClassification")
    before = counters["stats"]["unique_graphs"]
    out = model(**inputs, labels=torch.tensor([0, 1]))
    assert out.loss is not None and torch.isfinite(out.loss)
    with pytest.raises(ValueError, match=r"labels contains 5, out of range for num_labels=2"):
        model(**inputs, labels=torch.tensor([0, 5]))
    assert counters["stats"]["unique_graphs"] == before


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"mode": "fastest"}, ValueError, "compile_for_inference: mode must be one of None, 'default'"),
        ({"freezing": 1}, TypeError, "compile_for_inference: freezing must be True or False, got 1"),
        ({"dynamic": "yes"}, TypeError, "compile_for_inference: dynamic must be None, True or False, got 'yes'"),
    ],
)
def test_bad_arguments_give_the_shared_error(kwargs, error, message):
    model = bert_torch.BertModel(_config(), seed=0)
    with pytest.raises(error, match=message):
        bert_torch.compile_for_inference(model, **kwargs)
    assert model._compiled_call_impl is None


def test_not_a_model_gives_the_shared_error():
    with pytest.raises(TypeError, match=r"expected a bert_torch model instance .*, got the class BertModel"):
        bert_torch.compile_for_inference(bert_torch.BertModel)
    with pytest.raises(TypeError, match=r"expected a bert_torch model instance .*, got a Linear"):
        bert_torch.compile_for_inference(torch.nn.Linear(2, 2))


def test_pipeline_compile(minilm_dir, heads):
    from bert_core.pipelines import pipeline

    tok = BertTokenizerFast.from_pretrained(minilm_dir)
    model = bert_torch.BertForSequenceClassification(_config(vocab_size=tok.vocab_size), seed=0)
    texts = ["a short one", "and a slightly longer sentence to classify"]
    eager = pipeline("text-classification", model, tokenizer=tok, backend="torch", top_k=None)(texts)
    compiled = pipeline("text-classification", model, tokenizer=tok, backend="torch", top_k=None, compile=True)
    assert compiled.runner.model is model and model._compiled_call_impl is not None
    got = compiled(texts)
    for want, have in zip(eager, got):
        assert [d["label"] for d in want] == [d["label"] for d in have]
        np.testing.assert_allclose([d["score"] for d in have], [d["score"] for d in want], atol=1e-5)
