"""bert convert: TF1 original checkpoints, every HF weight format, .keras files; errors name the problem."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bert_core.checkpoint import CheckpointError, read_state_dict
from conformance import ConversionError, convert, default_checkpoint, read_source
from conformance.convert import detect_source


@pytest.fixture(scope="module")
def ckpt():
    return default_checkpoint()


def _assert_same(expected, got):
    assert set(got) == set(expected), set(expected) ^ set(got)
    for k, v in expected.items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)


def _hf_dir(ckpt, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    ckpt.config.save_pretrained(directory)
    (directory / "vocab.txt").write_text("\n".join(f"tok{i}" for i in range(ckpt.config.vocab_size)) + "\n")
    return directory


# ------------------------------------------------------------------------------------------------ TF1


def _to_tf1_name(name: str):
    """Canonical -> original Google BERT variable name and whether the value is transposed (independent of the
    converter: written from the published checkpoint layout)."""
    special = {
        "cls.predictions.bias": ("cls/predictions/output_bias", False),
        "cls.seq_relationship.weight": ("cls/seq_relationship/output_weights", False),
        "cls.seq_relationship.bias": ("cls/seq_relationship/output_bias", False),
    }
    if name in special:
        return special[name]
    parts = name.split(".")
    out = []
    i = 0
    while i < len(parts):
        if parts[i] == "layer" and i + 1 < len(parts) and parts[i + 1].isdigit():
            out.append(f"layer_{parts[i + 1]}")
            i += 2
            continue
        out.append(parts[i])
        i += 1
    leaf = out.pop()
    if out[-1].endswith("_embeddings"):
        return "/".join(out), False
    if out[-1] == "LayerNorm":
        return "/".join(out + ["gamma" if leaf == "weight" else "beta"]), False
    return "/".join(out + ["kernel" if leaf == "weight" else "bias"]), leaf == "weight"


def write_tf1_checkpoint(state, config, directory: Path) -> Path:
    tf = pytest.importorskip("tensorflow")
    directory.mkdir(parents=True, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        variables = []
        for name, value in state.items():
            tf_name, transpose = _to_tf1_name(name)
            variables.append(tf.compat.v1.Variable(value.T if transpose else value, name=tf_name))
            # optimizer slots, as in a pre-training checkpoint: must be skipped
            if name.endswith("word_embeddings.weight"):
                variables.append(tf.compat.v1.Variable(np.zeros_like(value), name=tf_name + "/adam_m"))
        variables.append(tf.compat.v1.Variable(np.int64(1000), name="global_step"))
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            prefix = saver.save(session, str(directory / "bert_model.ckpt"), write_meta_graph=False)
    data = {
        k: v
        for k, v in config.to_dict().items()
        if k
        in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "hidden_act",
            "hidden_dropout_prob",
            "attention_probs_dropout_prob",
            "max_position_embeddings",
            "type_vocab_size",
            "initializer_range",
        )
    }
    (directory / "bert_config.json").write_text(json.dumps(data))
    (directory / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    return Path(prefix)


def test_tf1_original_checkpoint(ckpt, tmp_path):
    tf = pytest.importorskip("tensorflow")
    prefix = write_tf1_checkpoint(ckpt.state, ckpt.config, tmp_path / "google")
    reader = tf.train.load_checkpoint(str(prefix))
    assert reader.has_tensor("bert/encoder/layer_0/attention/self/query/kernel")
    assert reader.has_tensor("bert/embeddings/word_embeddings")
    for src in (tmp_path / "google", prefix, Path(str(prefix) + ".index")):
        assert detect_source(str(src))[0] == "tf1"
    result = convert(tmp_path / "google", tmp_path / "out")
    assert result.source.head == "BertForPreTraining"
    state, file_name = read_state_dict(tmp_path / "out")
    assert file_name == "model.safetensors"
    _assert_same(ckpt.state, state)
    assert (tmp_path / "out" / "vocab.txt").is_file()
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["model_type"] == "bert" and config["architectures"] == ["BertForPreTraining"]
    assert config["vocab_size"] == ckpt.config.vocab_size


# ------------------------------------------------------------------------------------------------ HF formats


def test_pytorch_bin(ckpt, tmp_path):
    torch = pytest.importorskip("torch")
    src = _hf_dir(ckpt, tmp_path / "bin")
    torch.save({k: torch.from_numpy(v.copy()) for k, v in ckpt.state.items()}, src / "pytorch_model.bin")
    convert(src, tmp_path / "out")
    _assert_same(ckpt.state, read_state_dict(tmp_path / "out")[0])
    assert (tmp_path / "out" / "vocab.txt").read_text() == (src / "vocab.txt").read_text()


def test_tf_h5_hf_layout(ckpt, tmp_path):
    h5py = pytest.importorskip("h5py")
    src = _hf_dir(ckpt, tmp_path / "h5")
    with h5py.File(src / "tf_model.h5", "w") as f:
        for name, value in ckpt.state.items():
            parts = name.split(".")
            leaf = parts.pop()
            for i in range(len(parts) - 1):
                if parts[i] == "layer" and parts[i + 1].isdigit():
                    parts[i : i + 2] = [f"layer_._{parts[i + 1]}", ""]
            parts = [p for p in parts if p]
            transpose = False
            if parts[-1].endswith("_embeddings"):
                leaf = "weight" if parts[-1] == "word_embeddings" else "embeddings"
            elif parts[-1] == "LayerNorm":
                leaf = "gamma" if leaf == "weight" else "beta"
            elif leaf == "weight":
                leaf, transpose = "kernel", True
            root = parts[0] if parts[0] == "bert" else ("nsp___cls" if "seq_relationship" in name else "mlm___cls")
            if root != "bert":
                parts[0] = root
            key = f"{root}/tf_bert_for_pre_training/{'/'.join(parts)}/{leaf}:0"
            f[key] = value.T if transpose else value
    convert(src, tmp_path / "out")
    _assert_same(ckpt.state, read_state_dict(tmp_path / "out")[0])


def test_flax_msgpack(ckpt, tmp_path):
    msgpack = pytest.importorskip("msgpack")
    src = _hf_dir(ckpt, tmp_path / "flax")
    tree: dict = {}
    for name, value in ckpt.state.items():
        parts = name.split(".")
        leaf = parts.pop()
        if parts[-1].endswith("_embeddings"):
            leaf = "embedding"
        elif parts[-1] == "LayerNorm":
            leaf = "scale" if leaf == "weight" else "bias"
        elif leaf == "weight":
            leaf, value = "kernel", value.T
        node = tree
        for p in parts:
            node = node.setdefault(p, {})
        value = np.ascontiguousarray(value)
        node[leaf] = msgpack.ExtType(1, msgpack.packb((list(value.shape), value.dtype.name, value.tobytes())))
    (src / "flax_model.msgpack").write_bytes(msgpack.packb({"params": tree}))
    convert(src, tmp_path / "out")
    _assert_same(ckpt.state, read_state_dict(tmp_path / "out")[0])


def test_keras_file(ckpt, tmp_path, backend_status):
    if "tf" not in backend_status[0]:
        pytest.skip("bert_tf is not usable here")
    from conformance import get_adapter, head_weights

    adapter = get_adapter("tf")
    weights = head_weights(ckpt, ckpt.config, "BertForSequenceClassification")
    model = adapter.build("BertForSequenceClassification", ckpt.config, weights)
    model.save(tmp_path / "clf.keras")
    result = convert(tmp_path / "clf.keras", tmp_path / "out")
    assert result.source.head == "BertForSequenceClassification"
    _assert_same(weights, read_state_dict(tmp_path / "out")[0])


def test_minilm_convert_verify_via_cli(minilm_dir, tmp_path, backend_status, capsys):
    from conformance.cli import main

    usable = backend_status[0]
    if not usable:
        pytest.skip("no backend")
    code = main(
        [
            "convert",
            str(minilm_dir),
            str(tmp_path / "out"),
            "--verify",
            "--backends",
            ",".join(usable),
            "--json",
            str(tmp_path / "verify.json"),
            "-q",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert (tmp_path / "out" / name).is_file(), name
    data = json.loads((tmp_path / "verify.json").read_text())
    assert data["passed"] and {r["pair"] for r in data["rows"] if r["section"] == "outputs"} == {
        f"{b}:source~{b}:result" for b in usable
    }
    from bert_core.weights import normalize_state_dict

    # the canonical result drops non-persistent buffers (embeddings.position_ids) and nothing else
    _assert_same(
        normalize_state_dict(read_state_dict(minilm_dir)[0], "BertModel"), read_state_dict(tmp_path / "out")[0]
    )


# ------------------------------------------------------------------------------------------------ errors


def test_errors_name_the_problem(ckpt, tmp_path):
    with pytest.raises(ConversionError, match="does not exist"):
        read_source(tmp_path / "missing")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hi")
    with pytest.raises(ConversionError, match="unrecognised source"):
        read_source(tmp_path / "junk")
    bad = _hf_dir(ckpt.__class__(ckpt.config.copy(vocab_size=200), ckpt.state, "x"), tmp_path / "bad")
    from bert_core.checkpoint import save_state_dict

    save_state_dict(ckpt.state, bad)
    with pytest.raises(CheckpointError, match="vocab_size"):
        read_source(bad)
    good = _hf_dir(ckpt, tmp_path / "good")
    save_state_dict(ckpt.state, good)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "old.txt").write_text("x")
    with pytest.raises(ConversionError, match=r"taken is not empty; pass --overwrite"):
        convert(good, tmp_path / "taken")
    with pytest.raises(ConversionError, match="unknown --to"):
        convert(good, tmp_path / "out", to="onnx")


def test_savedmodel_with_in_graph_tokenizer(ckpt, tmp_path, backend_status):
    if "tf" not in backend_status[0]:
        pytest.skip("bert_tf is not usable here")
    tf = pytest.importorskip("tensorflow")
    pytest.importorskip("tensorflow_text")
    from conformance import get_adapter, head_weights

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "the", "cat", "sat", "##s"]
    vocab = words + [f"w{i}" for i in range(ckpt.config.vocab_size - len(words))]
    # weights as model.save_pretrained writes them (no tokenizer files); the vocabulary saved elsewhere
    src, tok = tmp_path / "src", tmp_path / "tok"
    tok.mkdir()
    (tok / "vocab.txt").write_text("\n".join(vocab) + "\n")
    head = "BertForSequenceClassification"
    weights = head_weights(ckpt, ckpt.config, head)
    from bert_core.checkpoint import save_pretrained

    save_pretrained(src, ckpt.config, weights, architecture=head)
    with pytest.raises(ConversionError, match=r"needs vocab.txt .* or in --tokenizer DIR.*tokenizer.save_pretrained"):
        convert(src, tmp_path / "serving", to="savedmodel")
    with pytest.raises(ConversionError, match="holds none of the tokenizer files"):
        convert(src, tmp_path / "serving", to="savedmodel", tokenizer=tmp_path)
    result = convert(src, tmp_path / "serving", to="savedmodel", verify_result=True, tokenizer=tok)
    assert result.report.passed and {r.pair for r in result.report.rows} == {"tf~savedmodel"}
    assert "tf~savedmodel" in result.report.format_table() and "logits" in {r.field for r in result.report.rows}
    served = tf.saved_model.load(str(result.destination)).signatures["serving_default"]
    out = served(text=tf.constant(["hello world", "the cats sat"]))
    ids = out["input_ids"].numpy()
    assert ids[0, :4].tolist() == [2, 5, 6, 3]  # [CLS] hello world [SEP]
    adapter = get_adapter("tf")
    model = adapter.build(head, ckpt.config, weights)
    mask = (ids != 0).astype(np.int64)
    ref = adapter.forward(
        model,
        {"input_ids": ids.astype(np.int64), "attention_mask": mask, "token_type_ids": np.zeros_like(ids, np.int64)},
    )
    np.testing.assert_allclose(out["logits"].numpy(), ref["logits"], atol=1e-5)


def test_hub_id_rule_is_the_one_of_bert_core(tmp_path, monkeypatch):
    from bert_core.hub import looks_like_hub_id
    from conformance.default import load_checkpoint_any

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    # names no hub cache holds: an id must reach the (offline) hub lookup, a non-id must be refused before it
    for text in ("absent-model-0f3c", "nobody-0f3c/missing", "a--b", "org/name/extra", "./here", "-x"):
        if looks_like_hub_id(text):
            assert detect_source(text) == ("hub", Path(text))
            with pytest.raises(ConversionError, match="could not be fetched as a hub id"):
                read_source(text)
            with pytest.raises(FileNotFoundError, match="could not resolve"):
                load_checkpoint_any(text)
        else:
            with pytest.raises(ConversionError, match="does not exist"):
                detect_source(text)
            with pytest.raises(FileNotFoundError, match="does not exist"):
                load_checkpoint_any(text)


def test_overwrite_replaces_the_destination_as_a_whole(ckpt, tmp_path):
    good = _hf_dir(ckpt, tmp_path / "good")
    from bert_core.checkpoint import save_state_dict

    save_state_dict(ckpt.state, good)
    dst = tmp_path / "dst"
    dst.mkdir()
    for stale in ("config.json", "model-00001-of-00002.safetensors", "vocab.txt", "notes.md"):
        (dst / stale).write_text("stale")
    convert(good, dst, overwrite=True)
    tokenizer_files = sorted(p.name for p in good.iterdir() if p.suffix in (".txt",) or "token" in p.name)
    assert sorted(p.name for p in dst.iterdir()) == sorted(["config.json", "model.safetensors"] + tokenizer_files)
    assert all((dst / name).read_text() != "stale" for name in tokenizer_files)
    assert read_state_dict(dst)[0].keys() == read_state_dict(good)[0].keys()


def test_verify_table_shows_the_deltas(ckpt, tmp_path, backend_status, capsys):
    from conformance.cli import main

    usable = backend_status[0]
    if not usable:
        pytest.skip("no backend")
    good = _hf_dir(ckpt, tmp_path / "good")
    from bert_core.checkpoint import save_state_dict

    save_state_dict(ckpt.state, good)
    assert main(["convert", str(good), str(tmp_path / "out"), "--verify", "--backends", usable[0], "-q"]) == 0
    table = capsys.readouterr().out
    header = next(line for line in table.splitlines() if line.startswith("head / check"))
    assert f"{usable[0]}:source~{usable[0]}:result" in header and "source~result" in header
    lines = table.splitlines()
    rows = lines[lines.index(header) + 1 :]
    rows = rows[: next((i for i, line in enumerate(rows) if not line.strip()), len(rows))]
    assert rows and all(" pass" in line and "FAIL" not in line for line in rows if not line.startswith("PASS")), table


def test_cli_user_errors_exit_2_with_one_line(ckpt, tmp_path, capsys):
    from conformance.cli import main

    good = _hf_dir(ckpt, tmp_path / "good")
    from bert_core.checkpoint import save_state_dict

    save_state_dict(ckpt.state, good)
    (tmp_path / "a-file").write_text("x")
    # the destination cannot be created (its parent is a file): an OSError, not a traceback
    assert main(["convert", str(good), str(tmp_path / "a-file" / "out"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bert convert: error:") and "a-file" in err[0], err
    # a garbage TF1 checkpoint: TensorFlow's own error (or ours), mapped to exit 2
    tf1 = tmp_path / "tf1"
    tf1.mkdir()
    (tf1 / "bert_config.json").write_text(json.dumps(ckpt.config.to_dict()))
    (tf1 / "bert_model.ckpt.index").write_bytes(b"garbage")
    (tf1 / "bert_model.ckpt.data-00000-of-00001").write_bytes(b"garbage")
    code = main(["convert", str(tf1), str(tmp_path / "o2"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("bert convert: error:"), err


def test_cli_internal_errors_are_not_user_errors(ckpt, tmp_path, capsys, monkeypatch):
    from conformance import cli

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "cmd_convert", broken)
    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_func(parser(), "convert", broken))
    assert cli.main(["convert", "a", "b"]) == 3
    assert "internal error (ZeroDivisionError)" in capsys.readouterr().err


def _with_func(parser, command, func):
    for action in parser._subparsers._group_actions:
        action.choices[command].set_defaults(func=func)
    return parser


def test_integer_weights_are_not_converted_into_a_clean_checkpoint(ckpt, tmp_path):
    from bert_core.checkpoint import save_state_dict

    good = _hf_dir(ckpt, tmp_path / "src")
    state = dict(ckpt.state)
    name = next(k for k in state if k.endswith("word_embeddings.weight"))
    state[name] = state[name].astype(np.int32)
    save_state_dict(state, good)
    with pytest.raises(CheckpointError, match=r"BERT weights must be floating point.*int32"):
        convert(good, tmp_path / "out")
    assert not (tmp_path / "out").exists()
