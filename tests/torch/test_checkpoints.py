"""bert_torch checkpoints: save_pretrained / from_pretrained (sharding, dtypes, new heads, ties), and truth on the real
MiniLM checkpoint (golden floats from HF transformers 4.57) with HF doc-example flows."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import bert_torch
from bert_core.config import tiny_config
from bert_core.init import init_weights

# HF BertModel.from_pretrained(MiniLM) on these ids (tokenizer output for
# ["The capital of France is Paris.", "A dog runs."], padded), computed in the oracle venv.
IDS = [[101, 1996, 3007, 1997, 2605, 2003, 3000, 1012, 102], [101, 1037, 3899, 3216, 1012, 102, 0, 0, 0]]
MASK = [[1] * 9, [1, 1, 1, 1, 1, 1, 0, 0, 0]]
GOLDEN_LAST_0 = [
    [0.3504302203655243, 0.08958351612091064, 0.3986065983772278, -0.2786520719528198],
    [0.26437875628471375, 0.04375893250107765, 0.1724669486284256, -0.11632781475782394],
    [1.4083237648010254, 0.21648946404457092, 0.0696956142783165, 0.058943990617990494],
]
GOLDEN_LAST_1_2 = [0.5426849722862244, -0.27544865012168884, 0.17445482313632965, 0.6752912998199463]
GOLDEN_POOLER_0 = [0.0593423992395401, -0.06955792009830475, 0.03817261755466461, 0.08971033990383148]
GOLDEN_MAX_ABS = 5.267703533172607
TOL = 1e-5 * (1 + GOLDEN_MAX_ABS)


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    tokenizers = pytest.importorskip("tokenizers")
    tok = tokenizers.Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    tok.no_padding()  # the file pads to 128; the HF pipeline pads per batch
    return tok


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return bert_torch.BertModel.from_pretrained(minilm_dir)


def encode(tokenizer, text, pair=None):
    enc = tokenizer.encode(text, pair) if pair is not None else tokenizer.encode(text)
    return dict(
        input_ids=torch.tensor([enc.ids]),
        token_type_ids=torch.tensor([enc.type_ids]),
        attention_mask=torch.tensor([enc.attention_mask]),
    )


def test_minilm_golden_floats(minilm, tokenizer):
    assert [tokenizer.encode(t).ids for t in ("The capital of France is Paris.",)] == [IDS[0]]
    assert minilm.config.num_hidden_layers == 6 and minilm.config.hidden_size == 384
    out = minilm(torch.tensor(IDS), attention_mask=torch.tensor(MASK))
    last = out.last_hidden_state
    np.testing.assert_allclose(last[0, :3, :4].detach().numpy(), GOLDEN_LAST_0, atol=TOL, rtol=0)
    np.testing.assert_allclose(last[1, 2, :4].detach().numpy(), GOLDEN_LAST_1_2, atol=TOL, rtol=0)
    np.testing.assert_allclose(out.pooler_output[0, :4].detach().numpy(), GOLDEN_POOLER_0, atol=TOL, rtol=0)
    assert abs(float(last.abs().max()) - GOLDEN_MAX_ABS) < TOL
    minilm.set_attn_implementation("eager")
    try:
        eager = minilm(torch.tensor(IDS), attention_mask=torch.tensor(MASK), output_attentions=True)
    finally:
        minilm.set_attn_implementation("sdpa")
    assert torch.allclose(eager.last_hidden_state, last, atol=TOL)


def test_minilm_round_trip_and_position_ids_buffer_ignored(minilm, minilm_dir, tmp_path):
    _, info = bert_torch.BertModel.from_pretrained(minilm_dir, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}
    minilm.save_pretrained(tmp_path)
    again = bert_torch.BertModel.from_pretrained(tmp_path)
    ids = torch.tensor(IDS)
    assert torch.equal(again(ids).last_hidden_state, minilm(ids).last_hidden_state)


def test_doc_example_masked_token(tokenizer, minilm_dir):
    model = bert_torch.BertForMaskedLM.from_pretrained(minilm_dir)  # MiniLM has no MLM head: seeded init
    inputs = encode(tokenizer, "The capital of France is [MASK].")
    logits = model(**inputs).logits
    mask_index = (inputs["input_ids"] == tokenizer.token_to_id("[MASK]"))[0].nonzero(as_tuple=True)[0]
    predicted = logits[0, mask_index].argmax(dim=-1)
    assert logits.shape == (1, inputs["input_ids"].shape[1], 30522) and mask_index.tolist() == [6]
    assert isinstance(tokenizer.decode(predicted.tolist()), str)
    labels = torch.where(inputs["input_ids"] == tokenizer.token_to_id("[MASK]"), tokenizer.token_to_id("paris"), -100)
    loss = model(**inputs, labels=labels).loss
    assert torch.allclose(loss, F.cross_entropy(logits[0, mask_index], torch.tensor([tokenizer.token_to_id("paris")])))


def test_doc_example_next_sentence(tokenizer, minilm_dir):
    model = bert_torch.BertForNextSentencePrediction.from_pretrained(minilm_dir)
    encoding = encode(tokenizer, "In Italy, pizza is presented unsliced.", "The sky is blue.")
    assert encoding["token_type_ids"].max() == 1
    out = model(**encoding, labels=torch.LongTensor([1]))
    assert out.logits.shape == (1, 2) and torch.isfinite(out.loss)


def test_doc_example_question_answering(tokenizer, minilm_dir):
    model = bert_torch.BertForQuestionAnswering.from_pretrained(minilm_dir)
    inputs = encode(tokenizer, "Who was Jim Henson?", "Jim Henson was a nice puppet")
    out = model(**inputs)
    start, end = int(out.start_logits.argmax()), int(out.end_logits.argmax())
    assert 0 <= start < inputs["input_ids"].shape[1] and 0 <= end < inputs["input_ids"].shape[1]
    answer = tokenizer.decode(inputs["input_ids"][0, start : end + 1].tolist())
    assert isinstance(answer, str)
    loss = model(**inputs, start_positions=torch.tensor([9]), end_positions=torch.tensor([10])).loss
    assert torch.isfinite(loss)


def test_doc_example_multi_label_and_multiple_choice(tokenizer, minilm_dir):
    model = bert_torch.BertForSequenceClassification.from_pretrained(
        minilm_dir, num_labels=3, problem_type="multi_label_classification"
    )
    inputs = encode(tokenizer, "Hello, my dog is cute")
    logits = model(**inputs).logits
    predicted = (torch.sigmoid(logits) > 0.5).float()
    loss = model(**inputs, labels=predicted).loss
    assert torch.allclose(loss, F.binary_cross_entropy_with_logits(logits, predicted))

    mc = bert_torch.BertForMultipleChoice.from_pretrained(minilm_dir)
    prompt = "In Italy, pizza is served unsliced."
    choices = ["It is eaten with a fork and a knife.", "It is eaten while held in the hand."]
    encs = [tokenizer.encode(prompt, c) for c in choices]
    length = max(len(e.ids) for e in encs)
    ids = torch.tensor([[e.ids + [0] * (length - len(e.ids)) for e in encs]])
    mask = torch.tensor([[e.attention_mask + [0] * (length - len(e.ids)) for e in encs]])
    out = mc(input_ids=ids, attention_mask=mask, labels=torch.tensor([0]))
    assert out.logits.shape == (1, 2) and torch.isfinite(out.loss)


# ------------------------------------------------------------------------------------------------ save / load


def ids_for(config, batch=2, seq=7):
    return torch.randint(1, config.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(0))


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
