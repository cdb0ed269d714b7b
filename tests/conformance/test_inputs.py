"""User inputs of ``bert parity --inputs``: parsing, tokenizing, batching, and the one-line errors of bad files.

No backend runs here: everything is checked before a framework is loaded.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bert_core.config import tiny_config
from conformance.cli import main
from conformance.input_runner import heads_from_config, split_rows
from conformance.inputs import (
    InputsError,
    as_records,
    batches,
    encode_inputs,
    load_tokenizer,
    model_limit,
    read_inputs,
    records_digest,
)


def _write(tmp_path, lines, name="inputs.jsonl"):
    path = tmp_path / name
    path.write_bytes(lines if isinstance(lines, bytes) else "\n".join(lines).encode("utf-8"))
    return path


def test_every_kind_of_record(tmp_path):
    path = _write(
        tmp_path,
        [
            json.dumps({"text": "hello world"}),
            "",  # blank lines are skipped, line numbers stay those of the file
            json.dumps({"text": "what is the capital", "text_pair": "paris", "id": "qa-1"}),
            json.dumps({"input_ids": [2, 40, 3], "token_type_ids": [0, 0, 0]}),
            "   ",
        ],
    )
    records = read_inputs(path)
    assert [r.name for r in records] == ["line1", "qa-1", "line4"]
    assert [r.line for r in records] == [1, 3, 4]
    assert records[1].text_pair == "paris" and records[2].input_ids == (2, 40, 3)
    # the same inputs from Python: strings are texts; names are input<i>
    same = as_records(
        [
            "hello world",
            {"text": "what is the capital", "text_pair": "paris"},
            {"input_ids": [2, 40, 3], "token_type_ids": [0, 0, 0]},
        ]
    )
    assert [r.name for r in same] == ["input0", "input1", "input2"]
    assert records_digest(same) == records_digest(records)  # names and lines do not enter the digest


@pytest.mark.parametrize(
    "lines, message",
    [
        ([], "no inputs"),
        (["", "  ", ""], "no inputs"),
        (['{"text": "fine"}', '{"text": "broken"', '{"text": "fine"}'], "inputs.jsonl:2: not valid JSON"),
        (['{"text": "fine"}', '["a list"]'], "inputs.jsonl:2: expected a JSON object"),
        (['{"txt": "typo"}'], "inputs.jsonl:1: unknown key(s) ['txt']"),
        (['{"text": "a", "input_ids": [1]}'], 'inputs.jsonl:1: give exactly one of "text"'),
        (['{"text_pair": "alone"}'], 'inputs.jsonl:1: give exactly one of "text"'),
        (['{"text": 3}'], "inputs.jsonl:1: 'text' must be a string"),
        (['{"input_ids": []}'], "inputs.jsonl:1: 'input_ids' must be a non-empty list of ints"),
        (['{"input_ids": [1, 2.5]}'], "inputs.jsonl:1: 'input_ids' must hold ints only"),
        (['{"input_ids": [1, 2], "token_type_ids": [0]}'], "token_type_ids has 1 values for 2 input_ids"),
        (['{"input_ids": [1], "text_pair": "x"}'], '"text_pair" goes with "text"'),
        (['{"text": "a", "id": "x"}', '{"text": "b", "id": "x"}'], "input name 'x' is used twice (lines 1 and 2)"),
    ],
)
def test_bad_files_name_the_line(tmp_path, lines, message):
    path = _write(tmp_path, lines)
    with pytest.raises(InputsError) as err:
        read_inputs(path)
    assert message in str(err.value)


def test_not_utf8_names_the_line(tmp_path):
    path = _write(tmp_path, b'{"text": "ok"}\n{"text": "\xff"}\n')
    with pytest.raises(InputsError, match=r"inputs.jsonl:2: not UTF-8"):
        read_inputs(path)


def test_tokenized_with_the_checkpoints_tokenizer(tiny_ckpt):
    tokenizer = load_tokenizer(tiny_ckpt)
    config = tiny_config(vocab_size=tokenizer.vocab_size)
    limit = model_limit(config, tokenizer)
    assert limit == 32  # tokenizer_config's model_max_length beats the 64 positions
    records = as_records(
        [
            {"text": "what is the capital of france?", "text_pair": "paris"},
            "Café naïve — 東京 😀",
            " ".join(["hello world"] * 40),
            {"input_ids": [2, 40, 41, 3], "token_type_ids": [0, 0, 1, 1]},
        ]
    )
    pair, uni, long, ids = encode_inputs(records, config, tokenizer, limit)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert pair.input_ids[0] == cls and list(pair.input_ids).count(sep) == 2
    assert pair.token_type_ids[-2:].tolist() == [1, 1] and pair.token_type_ids[0] == 0
    assert tokenizer.convert_ids_to_tokens(uni.input_ids.tolist()) == [
        "[CLS]", "cafe", "naive", "[UNK]", "東", "京", "[UNK]", "[SEP]"
    ]  # fmt: skip
    assert long.truncated and long.length == 32 and long.input_ids[-1] == sep
    assert (
        not pair.truncated and ids.input_ids.tolist() == [2, 40, 41, 3] and ids.token_type_ids.tolist() == [0, 0, 1, 1]
    )
    # a shorter --max-length cuts harder
    assert encode_inputs(records[2:3], config, tokenizer, model_limit(config, tokenizer, 10))[0].length == 10


def test_raw_ids_are_checked_not_cut(tiny_ckpt):
    tokenizer = load_tokenizer(tiny_ckpt)
    config = tiny_config(vocab_size=tokenizer.vocab_size)
    with pytest.raises(InputsError, match=r"input0 input_ids \[2, 99\]: input_ids must be in \[0, vocab_size=\d+\)"):
        encode_inputs(as_records([{"input_ids": [2, 99]}]), config, tokenizer, 32)
    with pytest.raises(InputsError, match="40 input_ids, more than the model's limit of 32"):
        encode_inputs(as_records([{"input_ids": [2] * 40}]), config, tokenizer, 32)
    with pytest.raises(InputsError, match="token_type_ids must be in"):
        encode_inputs(as_records([{"input_ids": [2, 3], "token_type_ids": [0, 2]}]), config, tokenizer, 32)
    with pytest.raises(InputsError, match="texts need the checkpoint's tokenizer"):
        encode_inputs(as_records(["some text"]), config, None, 32)
    assert load_tokenizer(None) is None


def test_batches_and_rows():
    config = tiny_config()
    records = as_records([{"input_ids": [2] + [7] * n + [3]} for n in (3, 20, 1, 9)])
    encoded = encode_inputs(records, config, None, 64)
    seen = []
    for indices, batch in batches(encoded, pad_token_id=0, limit=64, batch_size=2):
        width = batch["input_ids"].shape[1]
        assert width % 8 == 0 and batch["attention_mask"].sum(1).tolist() == [encoded[i].length for i in indices]
        seen += indices
    assert sorted(seen) == [0, 1, 2, 3]
    # per-token fields are cut to each input's length; pooled ones are not
    out = {"last_hidden_state": np.zeros((2, 8, 4)), "pooler_output": np.zeros((2, 4)), "logits": np.zeros((2, 8, 5))}
    rows = split_rows("BertForTokenClassification", out, [3, 8])
    assert rows[0]["last_hidden_state"].shape == (3, 4) and rows[0]["pooler_output"].shape == (4,)
    assert rows[0]["logits"].shape == (3, 5) and rows[1]["logits"].shape == (8, 5)
    assert split_rows("BertForSequenceClassification", {"logits": np.zeros((2, 8))}, [3, 8])[0]["logits"].shape == (8,)


def test_heads_from_architectures():
    assert heads_from_config(tiny_config()) == ["BertModel"]
    assert heads_from_config(tiny_config(architectures=["TFBertForMaskedLM", "FlaxBertModel"])) == [
        "BertForMaskedLM",
        "BertModel",
    ]
    with pytest.raises(ValueError, match="architecture 'RobertaModel', which is not a BERT head"):
        heads_from_config(tiny_config(architectures=["RobertaModel"]))


def test_cli_user_errors_exit_2_with_one_line(tmp_path, tiny_ckpt, capsys):
    good = _write(tmp_path, ['{"text": "hello"}'], "good.jsonl")
    cases = [
        (["--inputs", str(_write(tmp_path, [], "empty.jsonl"))], "empty.jsonl: no inputs"),
        (["--inputs", str(_write(tmp_path, ['{"text": "a"}', "{oops"], "bad.jsonl"))], "bad.jsonl:2: not valid JSON"),
        (["--inputs", str(tmp_path / "missing.jsonl")], "No such file or directory"),
        (["--inputs", str(good), "--heads", "BertForEverything"], "unknown head 'BertForEverything'"),
        (["--save-golden", str(tmp_path / "g")], "--save-golden needs --inputs FILE"),
        (["--inputs", str(good), "--golden", "g", "--save-golden", "h"], "use one at a time"),
        (["--inputs", str(good), "--no-grads"], "--no-grads do(es) not apply here"),
        (["--max-length", "16"], "--max-length do(es) not apply here"),
        (["--inputs", str(good), "--max-length", "2"], "max_length must be an int >= 3"),
        (["--golden", str(tmp_path / "nothing.safetensors")], "does not exist"),
    ]
    for extra, message in cases:
        code = main(["parity", str(tiny_ckpt), "-q"] + extra)
        err = capsys.readouterr().err
        assert code == 2 and message in err, (extra, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    # the embedded default has no tokenizer: texts are refused, ids are fine (they fail later only for backends)
    assert main(["parity", "--inputs", str(good), "-q"]) == 2
    assert "the embedded default checkpoint has no tokenizer" in capsys.readouterr().err
