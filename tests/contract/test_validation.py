"""Bad input gets the same clear error (class and words, from bert_core.validation) in every backend."""

from __future__ import annotations

import numpy as np
import pytest

from bert_core.config import tiny_config

IDS = np.random.default_rng(0).integers(1, 99, (2, 7)).astype(np.int64)
EMB = np.zeros((2, 7, 32), np.float32)
PAST = tuple((np.zeros((2, 4, 3, 8), np.float32), np.zeros((2, 4, 3, 8), np.float32)) for _ in range(2))

# (case id, head, config overrides, inputs, error class, message regex)
CASES = [
    (
        "both_ids_and_embeds",
        "BertModel",
        {},
        dict(input_ids=IDS, inputs_embeds=EMB),
        ValueError,
        "cannot specify both input_ids and inputs_embeds",
    ),
    (
        "neither",
        "BertModel",
        {},
        dict(attention_mask=np.ones((2, 7))),
        ValueError,
        "have to specify either input_ids or inputs_embeds",
    ),
    (
        "ids_rank",
        "BertModel",
        {},
        dict(input_ids=IDS[0]),
        ValueError,
        r"input_ids must have rank 2 \(batch, seq_len\), got shape \(7,\)",
    ),
    (
        "id_too_large",
        "BertModel",
        {},
        dict(input_ids=np.full((1, 3), 99)),
        ValueError,
        r"input_ids contains id 99, out of range for vocab_size=99",
    ),
    (
        "negative_id",
        "BertModel",
        {},
        dict(input_ids=np.array([[1, -1]])),
        ValueError,
        "input_ids contains negative id -1",
    ),
    (
        "float_ids",
        "BertModel",
        {},
        dict(input_ids=IDS.astype(np.float32) + 0.5),
        TypeError,
        "input_ids must hold integer ids, got a floating-point array",
    ),
    (
        "token_type_range",
        "BertModel",
        {},
        dict(input_ids=IDS, token_type_ids=np.full((2, 7), 2)),
        ValueError,
        r"token_type_ids contains 2, out of range for type_vocab_size=2",
    ),
    (
        "token_type_shape",
        "BertModel",
        {},
        dict(input_ids=IDS, token_type_ids=np.zeros((2, 6), np.int64)),
        ValueError,
        r"token_type_ids has shape \(2, 6\); expected input_ids \(2, 7\)",
    ),
    (
        "position_range",
        "BertModel",
        {},
        dict(input_ids=IDS, position_ids=np.full((2, 7), 64)),
        ValueError,
        "position_ids contains 64, out of range for max_position_embeddings=64",
    ),
    (
        "position_shape",
        "BertModel",
        {},
        dict(input_ids=IDS, position_ids=np.zeros((2, 5), np.int64)),
        ValueError,
        r"position_ids has shape \(2, 5\); expected \(batch, seq_len\)",
    ),
    (
        "mask_2d_shape",
        "BertModel",
        {},
        dict(input_ids=IDS, attention_mask=np.ones((2, 6))),
        ValueError,
        r"attention_mask has shape \(2, 6\) but the input needs \(2, 7\)",
    ),
    (
        "mask_rank",
        "BertModel",
        {},
        dict(input_ids=IDS, attention_mask=np.ones((7,))),
        ValueError,
        "attention_mask must have rank 2, 3 or 4",
    ),
    (
        "mask_3d_shape",
        "BertModel",
        {},
        dict(input_ids=IDS, attention_mask=np.ones((2, 7, 5))),
        ValueError,
        r"attention_mask has shape \(2, 7, 5\) but the input needs \(2, 7, 7\)",
    ),
    (
        "mask_4d_heads",
        "BertModel",
        {},
        dict(input_ids=IDS, attention_mask=np.ones((2, 3, 7, 7))),
        ValueError,
        r"attention_mask has shape \(2, 3, 7, 7\) but the input needs \(2, 1 or 4, 7, 7\)",
    ),
    (
        "head_mask_shape",
        "BertModel",
        {},
        dict(input_ids=IDS, head_mask=np.ones((3,))),
        ValueError,
        r"head_mask has shape \(3,\); expected \(4,\) or \(2, 4\)",
    ),
    (
        "too_long",
        "BertModel",
        {},
        dict(input_ids=np.ones((1, 65), np.int64)),
        ValueError,
        "sequence length 65 exceeds max_position_embeddings=64",
    ),
    (
        "embeds_hidden",
        "BertModel",
        {},
        dict(inputs_embeds=np.zeros((2, 7, 16), np.float32)),
        ValueError,
        "inputs_embeds has hidden size 16",
    ),
    (
        "past_not_decoder",
        "BertModel",
        {},
        dict(input_ids=IDS, past_key_values=PAST),
        ValueError,
        "past_key_values were given but config.is_decoder is False",
    ),
    (
        "encoder_no_cross",
        "BertModel",
        dict(is_decoder=True),
        dict(input_ids=IDS, encoder_hidden_states=EMB),
        ValueError,
        "encoder_hidden_states were given but config.add_cross_attention is False",
    ),
    (
        "encoder_hidden",
        "BertModel",
        dict(is_decoder=True, add_cross_attention=True),
        dict(input_ids=IDS, encoder_hidden_states=np.zeros((2, 5, 16), np.float32)),
        ValueError,
        r"encoder_hidden_states has shape \(2, 5, 16\)",
    ),
    (
        "mc_rank",
        "BertForMultipleChoice",
        {},
        dict(input_ids=IDS),
        ValueError,
        r"input_ids for multiple choice must be \(batch, num_choices, seq_len\)",
    ),
    (
        "mc_mask_shape",
        "BertForMultipleChoice",
        {},
        dict(input_ids=np.ones((2, 3, 7), np.int64), attention_mask=np.ones((2, 2, 7))),
        ValueError,
        r"attention_mask has shape \(2, 2, 7\); expected input_ids's \(batch, num_choices, seq_len\) \(2, 3, 7\)",
    ),
    # labels: checked host-side before the loss (out of range ids gave NaN or read -1 as the last class)
    (
        "mlm_label_range",
        "BertForMaskedLM",
        {},
        dict(input_ids=IDS, labels=np.full((2, 7), 99)),
        ValueError,
        r"labels contains 99, out of range for vocab_size=99 \(valid: 0..98, or -100 to ignore\)",
    ),
    (
        "mlm_label_minus_one",
        "BertForMaskedLM",
        {},
        dict(input_ids=IDS, labels=np.full((2, 7), -1)),
        ValueError,
        "labels contains -1, out of range for vocab_size=99",
    ),
    (
        "mlm_label_shape",
        "BertForMaskedLM",
        {},
        dict(input_ids=IDS, labels=np.zeros((2, 5), np.int64)),
        ValueError,
        r"labels has shape \(2, 5\); expected \(batch, seq_len\) = \(2, 7\)",
    ),
    (
        "cls_label_range",
        "BertForSequenceClassification",
        {},
        dict(input_ids=IDS, labels=np.array([0, 5])),
        ValueError,
        "labels contains 5, out of range for num_labels=2",
    ),
    (
        "cls_float_rows",
        "BertForSequenceClassification",
        {},
        dict(input_ids=IDS, labels=np.array([0.0, 1.0], np.float32)),
        ValueError,
        r"labels has shape \(2,\); expected \(2, 2\) multi-hot targets",
    ),
    (
        "cls_label_batch",
        "BertForSequenceClassification",
        {},
        dict(input_ids=IDS, labels=np.array([0, 1, 1])),
        ValueError,
        r"labels has shape \(3,\); expected \(batch,\) = \(2,\) class ids",
    ),
    (
        "token_label_range",
        "BertForTokenClassification",
        {},
        dict(input_ids=IDS, labels=np.full((2, 7), 2)),
        ValueError,
        "labels contains 2, out of range for num_labels=2",
    ),
    (
        "mc_label_range",
        "BertForMultipleChoice",
        {},
        dict(input_ids=np.ones((2, 3, 7), np.int64), labels=np.array([0, 3])),
        ValueError,
        "labels contains 3, out of range for num_choices=3",
    ),
    (
        "nsp_label_range",
        "BertForNextSentencePrediction",
        {},
        dict(input_ids=IDS, labels=np.array([0, 2])),
        ValueError,
        "labels contains 2, out of range for classes=2",
    ),
    (
        "pretraining_nsp_shape",
        "BertForPreTraining",
        {},
        dict(input_ids=IDS, labels=IDS, next_sentence_label=np.zeros((2, 3), np.int64)),
        ValueError,
        r"next_sentence_label has shape \(2, 3\)",
    ),
    (
        "qa_float_positions",
        "BertForQuestionAnswering",
        {},
        dict(input_ids=IDS, start_positions=np.array([1.0, 2.0]), end_positions=np.array([1, 2])),
        TypeError,
        "start_positions must hold integer token positions",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_same_error(backend, case):
    _, head, overrides, inputs, error, pattern = case
    model = backend.make(head, tiny_config(**overrides))
    with pytest.raises(error, match=pattern):
        backend.run(model, **inputs)


def test_question_answering_needs_two_labels(backend):
    with pytest.raises(ValueError, match=r"BertForQuestionAnswering needs config.num_labels=2 .* got num_labels=3"):
        backend.make("BertForQuestionAnswering", tiny_config(num_labels=3))


def test_wrong_weights_are_named(backend):
    model = backend.make("BertForSequenceClassification")
    weights = dict(model.canonical_weights())
    weights.pop("classifier.bias")
    weights["classifier.extra"] = np.zeros(2, np.float32)
    weights["classifier.weight"] = np.zeros((3, 32), np.float32)
    with pytest.raises(ValueError) as info:
        model.load_canonical_weights(weights)
    text = str(info.value)
    assert "missing ['classifier.bias']" in text and "unexpected ['classifier.extra']" in text
    assert "classifier.weight: got (3, 32), expected (2, 32)" in text


def test_messages_are_identical_across_backends(all_backends):
    for case_id, head, overrides, inputs, error, _ in CASES:
        messages = {}
        for driver in all_backends:
            model = driver.make(head, tiny_config(**overrides))
            with pytest.raises(error) as info:
                driver.run(model, **inputs)
            messages[driver.name] = str(info.value)
        assert len(set(messages.values())) == 1, (case_id, messages)
