"""bert_flax on tiny configs: every class, argument, option; weights and checkpoints."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import bert_flax
from bert_core.config import SUPPORTED_ACTIVATIONS, tiny_config
from bert_core.init import init_weights
from bert_core.weights import HEADS, stored_weights

ROOT = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(0)
IDS = RNG.integers(1, 99, (2, 8))
MASK = np.ones((2, 8), np.int32)
MASK[1, -3:] = 0


@pytest.fixture(scope="module")
def models():
    """One instance per public class on the tiny config (decoder for the LM head)."""
    out = {}
    for cls in bert_flax.ALL_CLASSES:
        config = tiny_config(is_decoder=True) if cls is bert_flax.BertLMHeadModel else tiny_config()
        out[cls.head_name] = cls(config, seed=1)
    return out


def call_inputs(head):
    if head == "BertForMultipleChoice":
        return dict(input_ids=np.stack([IDS, IDS[::-1]], 1), attention_mask=np.stack([MASK, MASK], 1))
    return dict(input_ids=IDS, attention_mask=MASK)


EXPECTED = {
    "BertModel": {"last_hidden_state": (2, 8, 32), "pooler_output": (2, 32)},
    "BertForPreTraining": {"prediction_logits": (2, 8, 99), "seq_relationship_logits": (2, 2)},
    "BertLMHeadModel": {"logits": (2, 8, 99)},
    "BertForMaskedLM": {"logits": (2, 8, 99)},
    "BertForNextSentencePrediction": {"logits": (2, 2)},
    "BertForSequenceClassification": {"logits": (2, 2)},
    "BertForMultipleChoice": {"logits": (2, 2)},
    "BertForTokenClassification": {"logits": (2, 8, 2)},
    "BertForQuestionAnswering": {"start_logits": (2, 8), "end_logits": (2, 8)},
}


@pytest.mark.parametrize("head", HEADS)
def test_every_head_shapes_flags_and_tuple(models, head):
    model = models[head]
    assert model.head_name == head
    out = model(**call_inputs(head), use_cache=False) if head == "BertLMHeadModel" else model(**call_inputs(head))
    for key, shape in EXPECTED[head].items():
        assert out[key].shape == shape and out[key].dtype == jnp.float32, key
    assert "hidden_states" not in out and "attentions" not in out
    full = model(**call_inputs(head), output_attentions=True, output_hidden_states=True)
    assert len(full.hidden_states) == 3 and len(full.attentions) == 2
    assert full.attentions[0].shape[1:] == (4, 8, 8)
    tup = model(**call_inputs(head), output_hidden_states=True, return_dict=False)
    assert isinstance(tup, tuple)
    np.testing.assert_allclose(tup[0], full[0], atol=1e-6)
    assert model.config.output_attentions is False  # flags never mutate the config


def test_weights_roundtrip_and_paths(models):
    for head, model in models.items():
        got = model.canonical_weights()
        want = init_weights(model.config, head, 1)
        assert list(got) == list(stored_weights(model.config, head))
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    state = nnx.state(models["BertForMaskedLM"], nnx.Param)
    paths = {
        tuple(getattr(k, "key", getattr(k, "name", k)) for k in p[:-1])
        for p, _ in jax.tree_util.tree_flatten_with_path(state)[0]
    }
    assert ("bert", "encoder", "layer", 0, "attention", "self", "query", "kernel") in paths
    assert ("cls", "predictions", "bias") in paths


def test_load_canonical_weights_errors_name_the_tensor(models):
    model = models["BertForSequenceClassification"]
    weights = model.canonical_weights()
    weights.pop("classifier.bias")
    with pytest.raises(ValueError, match="classifier.bias"):
        model.load_canonical_weights(weights)
    weights = model.canonical_weights()
    weights["classifier.weight"] = np.zeros((3, 32), np.float32)
    with pytest.raises(ValueError, match="classifier.weight"):
        model.load_canonical_weights(weights)


def test_tied_and_untied_decoder():
    tied = bert_flax.BertForMaskedLM(tiny_config(), seed=2)
    assert "cls.predictions.decoder.weight" not in tied.canonical_weights()
    word = tied.bert.embeddings.word_embeddings.embedding
    word.value = word.value.at[5].add(1.0)  # the decoder follows the embedding
    untied = bert_flax.BertForMaskedLM(tiny_config(tie_word_embeddings=False), seed=2)
    assert untied.canonical_weights()["cls.predictions.decoder.weight"].shape == (99, 32)
    ids = IDS[:, :4]
    h = tied.cls.predictions.transform(tied.bert(ids).last_hidden_state)
    np.testing.assert_allclose(tied(ids).logits, h @ word.value.T + tied.cls.predictions.bias.value, atol=1e-5)


def _np_ce(logits, labels, ignore=-100):
    logits = np.asarray(logits, np.float64)
    logp = (
        logits
        - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True))
        - logits.max(-1, keepdims=True)
    )
    keep = labels != ignore
    return -np.mean(np.take_along_axis(logp[keep], labels[keep][:, None], -1))


def test_losses_match_numpy(models):
    labels = IDS.copy()
    labels[0, :3] = -100
    out = models["BertForMaskedLM"](IDS, labels=labels)
    assert abs(float(out.loss) - _np_ce(out.logits, labels)) < 1e-5
    out = models["BertLMHeadModel"](IDS, labels=labels)
    assert abs(float(out.loss) - _np_ce(out.logits[:, :-1], labels[:, 1:])) < 1e-5
    assert out.past_key_values is None  # labels switch caching off, as in HF
    nsp = np.array([0, 1])
    out = models["BertForPreTraining"](IDS, labels=labels, next_sentence_label=nsp)
    want = _np_ce(out.prediction_logits, labels) + _np_ce(out.seq_relationship_logits, nsp)
    assert abs(float(out.loss) - want) < 1e-5
    assert models["BertForPreTraining"](IDS, labels=labels).loss is None  # both labels needed
    out = models["BertForNextSentencePrediction"](IDS, next_sentence_label=nsp)
    assert abs(float(out.loss) - _np_ce(out.logits, nsp)) < 1e-5
    out = models["BertForMultipleChoice"](**call_inputs("BertForMultipleChoice"), labels=nsp)
    assert abs(float(out.loss) - _np_ce(out.logits, nsp)) < 1e-5
    tok = RNG.integers(0, 2, (2, 8))
    tok[1, 0] = -100
    out = models["BertForTokenClassification"](IDS, labels=tok)
    assert abs(float(out.loss) - _np_ce(out.logits.reshape(-1, 2), tok.reshape(-1))) < 1e-5
    start, end = np.array([2, 30]), np.array([-4, 5])  # clamped to [0, 8]; 8 is ignored
    out = models["BertForQuestionAnswering"](IDS, start_positions=start, end_positions=end)
    want = (_np_ce(out.start_logits, np.array([2, 8]), 8) + _np_ce(out.end_logits, np.array([0, 5]), 8)) / 2
    assert abs(float(out.loss) - want) < 1e-5


@pytest.mark.parametrize("problem", ["regression", "single_label_classification", "multi_label_classification"])
def test_sequence_classification_problem_types(problem):
    n = 1 if problem == "regression" else 3
    model = bert_flax.BertForSequenceClassification(tiny_config(num_labels=n), seed=4)
    if problem == "regression":
        labels = np.array([0.5, -1.0], np.float32)
    elif problem == "single_label_classification":
        labels = np.array([2, 0])
    else:
        labels = np.array([[1, 0, 1], [0, 0, 1]], np.float32)
    out = model(IDS, labels=labels)
    x = np.asarray(out.logits, np.float64)
    if problem == "regression":
        want = np.mean((x[:, 0] - labels) ** 2)
    elif problem == "single_label_classification":
        want = _np_ce(x, labels)
    else:
        want = np.mean(np.maximum(x, 0) - x * labels + np.log1p(np.exp(-np.abs(x))))
    assert abs(float(out.loss) - want) < 1e-5


@pytest.mark.parametrize("act", SUPPORTED_ACTIVATIONS)
def test_activations_match_reference_formulas(act):
    from math import erf, exp, log1p, pi, sqrt, tanh

    from bert_flax.modeling import ACT2FN

    x = np.linspace(-4, 4, 17)
    sig = lambda v: 1 / (1 + exp(-v))
    ref = {
        "gelu": lambda v: 0.5 * v * (1 + erf(v / sqrt(2))),
        "gelu_python": lambda v: 0.5 * v * (1 + erf(v / sqrt(2))),
        "gelu_new": lambda v: 0.5 * v * (1 + tanh(sqrt(2 / pi) * (v + 0.044715 * v**3))),
        "gelu_pytorch_tanh": lambda v: 0.5 * v * (1 + tanh(sqrt(2 / pi) * (v + 0.044715 * v**3))),
        "gelu_fast": lambda v: 0.5 * v * (1 + tanh(v * 0.7978845608 * (1 + 0.044715 * v * v))),
        "quick_gelu": lambda v: v * sig(1.702 * v),
        "relu": lambda v: max(v, 0.0),
        "silu": lambda v: v * sig(v),
        "swish": lambda v: v * sig(v),
        "tanh": tanh,
        "mish": lambda v: v * tanh(log1p(exp(v))),
    }[act]
    np.testing.assert_allclose(np.asarray(ACT2FN[act](jnp.asarray(x, jnp.float32))), [ref(v) for v in x], atol=2e-6)
    model = bert_flax.BertModel(tiny_config(hidden_act=act, num_hidden_layers=1), seed=0)
    assert np.isfinite(np.asarray(model(IDS[:, :4]).last_hidden_state)).all()


def test_head_mask_and_chunking_and_relative_and_options():
    model = bert_flax.BertModel(tiny_config(), seed=5)
    out = model(IDS, head_mask=np.array([1.0, 0.0, 1.0, 1.0]), output_attentions=True)
    assert float(jnp.abs(out.attentions[0][:, 1]).max()) == 0.0 and float(out.attentions[1][:, 0].max()) > 0
    out2 = model(IDS, head_mask=np.array([[1.0, 0.0, 1.0, 1.0]] * 2), output_attentions=True)
    np.testing.assert_allclose(out.last_hidden_state, out2.last_hidden_state, atol=1e-6)
    chunked = bert_flax.BertModel(tiny_config(chunk_size_feed_forward=4), seed=5)
    np.testing.assert_allclose(chunked(IDS).last_hidden_state, model(IDS).last_hidden_state, atol=1e-6)
    for kind in ("relative_key", "relative_key_query"):
        rel = bert_flax.BertModel(tiny_config(position_embedding_type=kind), seed=5)
        assert rel.encoder.layer[0].attention.self.distance_embedding.embedding.shape == (127, 8)
        a = rel(IDS).last_hidden_state
        assert not np.allclose(a, model(IDS).last_hidden_state)
    # padding: masked keys get no attention
    out = model(IDS, attention_mask=MASK, output_attentions=True)
    assert float(out.attentions[0][1, :, :, -3:].max()) < 1e-6
    # inputs_embeds equals ids through the embedding table
    emb = model.embeddings.word_embeddings(IDS)
    np.testing.assert_allclose(model(inputs_embeds=emb).last_hidden_state, model(IDS).last_hidden_state, atol=1e-6)
    # explicit default ids change nothing
    pos = np.broadcast_to(np.arange(8), (2, 8))
    np.testing.assert_allclose(
        model(IDS, position_ids=pos, token_type_ids=np.zeros_like(IDS)).last_hidden_state,
        model(IDS).last_hidden_state,
        atol=1e-6,
    )
    nopool = bert_flax.BertModel(tiny_config(), add_pooling_layer=False)
    assert nopool(IDS).pooler_output is None and "pooler.dense.weight" not in nopool.canonical_weights()


def test_dropout_train_mode_and_classifier_dropout():
    model = bert_flax.BertForSequenceClassification(tiny_config(classifier_dropout=0.5), seed=6)
    assert model.dropout.rate == 0.5
    eval1, eval2 = model(IDS).logits, model(IDS).logits
    np.testing.assert_array_equal(eval1, eval2)
    train1, train2 = model(IDS, deterministic=False).logits, model(IDS, deterministic=False).logits
    assert not np.allclose(train1, eval1) and not np.allclose(train1, train2)


def test_dtype_and_param_dtype():
    model = bert_flax.BertForMaskedLM(tiny_config(), dtype=jnp.bfloat16, seed=7)
    ref = bert_flax.BertForMaskedLM(tiny_config(), seed=7)
    out = model(IDS, labels=IDS)
    assert out.logits.dtype == jnp.bfloat16 and out.loss.dtype == jnp.float32
    assert model.bert.embeddings.word_embeddings.embedding.value.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out.logits, np.float32), ref(IDS).logits, atol=0.1)
    half = bert_flax.BertModel(tiny_config(), param_dtype=jnp.bfloat16, dtype=jnp.bfloat16)
    assert half.encoder.layer[0].output.dense.kernel.value.dtype == jnp.bfloat16
    assert half.canonical_weights()["encoder.layer.0.output.dense.weight"].dtype == np.float32


def _dot_types(model, **kwargs):
    """(operand dtypes, result dtype) of every dot_general in the jaxpr of a forward pass."""
    graphdef, state = nnx.split(model)
    jaxpr = jax.make_jaxpr(lambda s: nnx.merge(graphdef, s)(IDS, deterministic=True, **kwargs))(state)
    found = []

    def walk(jx):
        for eqn in jx.eqns:
            if eqn.primitive.name == "dot_general":
                found.append((tuple(str(v.aval.dtype) for v in eqn.invars), str(eqn.outvars[0].aval.dtype)))
            for param in eqn.params.values():
                for sub in param if isinstance(param, (tuple, list)) else (param,):
                    inner = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr
                    if hasattr(inner, "eqns"):
                        walk(inner)

    walk(jaxpr.jaxpr)
    return found


@pytest.mark.parametrize("param_dtype", [jnp.float32, jnp.bfloat16])
def test_bfloat16_dots_accumulate_in_float32(param_dtype):
    # bf16 x bf16 -> f32 dots are what XLA:CPU runs fast (bf16 -> bf16 ones fall back to a slow loop)
    config = tiny_config(position_embedding_type="relative_key_query")
    model = bert_flax.BertForMaskedLM(config, dtype=jnp.bfloat16, param_dtype=param_dtype, seed=7)
    dots = _dot_types(model, output_attentions=True)
    assert len(dots) >= 6 * config.num_hidden_layers + 2
    assert all(ins == ("bfloat16", "bfloat16") and out == "float32" for ins, out in dots), dots
    out = model(IDS, output_attentions=True, deterministic=True)
    assert out.logits.dtype == jnp.bfloat16 and out.attentions[0].dtype == jnp.bfloat16
    # the float32 computation keeps plain float32 dots
    ref = bert_flax.BertForMaskedLM(config, seed=7)
    assert all(ins == ("float32", "float32") and out == "float32" for ins, out in _dot_types(ref))


def test_save_and_from_pretrained_roundtrip(models, tmp_path):
    model = models["BertForSequenceClassification"]
    model.save_pretrained(tmp_path / "cls")
    cfg = json.loads((tmp_path / "cls" / "config.json").read_text())
    assert cfg["architectures"] == ["BertForSequenceClassification"]
    again, info = bert_flax.BertForSequenceClassification.from_pretrained(tmp_path / "cls", output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    np.testing.assert_allclose(again(IDS).logits, model(IDS).logits, atol=1e-6)
    # a head missing from the checkpoint is initialised from the seed, the same way every time
    with pytest.warns(UserWarning, match="newly"):
        qa1, info = bert_flax.BertForQuestionAnswering.from_pretrained(
            tmp_path / "cls", output_loading_info=True, seed=3
        )
    assert info["missing_keys"] == ["qa_outputs.weight", "qa_outputs.bias"]
    with pytest.warns(UserWarning):
        qa2 = bert_flax.BertForQuestionAnswering.from_pretrained(tmp_path / "cls", seed=3)
    np.testing.assert_array_equal(qa1(IDS).start_logits, qa2(IDS).start_logits)
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    again = bert_flax.BertForSequenceClassification.from_pretrained(tmp_path / "sharded")
    np.testing.assert_allclose(again(IDS).logits, model(IDS).logits, atol=1e-6)
    with pytest.raises(ValueError, match="size mismatch"):
        bert_flax.BertForSequenceClassification.from_pretrained(tmp_path / "cls", num_labels=3)
    three = bert_flax.BertForSequenceClassification.from_pretrained(
        tmp_path / "cls", num_labels=3, ignore_mismatched_sizes=True
    )
    assert three(IDS).logits.shape == (2, 3)


def test_aliases():
    assert bert_flax.FlaxBertForCausalLM is bert_flax.BertLMHeadModel
    for head in HEADS:
        alias = "FlaxBertForCausalLM" if head == "BertLMHeadModel" else "Flax" + head
        assert getattr(bert_flax, alias).head_name == head


def test_import_isolation():
    code = (
        "import sys, bert_flax, bert_flax.training; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'tf_keras', 'keras')]; "
        "print(bad); assert not bad, bad"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
