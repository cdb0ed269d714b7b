""" "Same names, same arguments": the public API of every backend, and the ladder of every modeling file.

The expected API is written out here (HF 4.57's PyTorch parameter lists), so this runs in single-framework envs too;
the ladder test reads the three modeling files as text (no framework import) and runs everywhere.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from bert_core.weights import HEADS

ROOT = Path(__file__).resolve().parents[2]
_COMMON = ["input_ids", "attention_mask", "token_type_ids", "position_ids", "head_mask", "inputs_embeds"]
_FLAGS = ["output_attentions", "output_hidden_states", "return_dict"]
_DECODER = ["encoder_hidden_states", "encoder_attention_mask"]
FORWARD = {
    "BertModel": _COMMON + _DECODER + ["past_key_values", "use_cache"] + _FLAGS,
    "BertForPreTraining": _COMMON + ["labels", "next_sentence_label"] + _FLAGS,
    "BertLMHeadModel": _COMMON + _DECODER + ["labels", "past_key_values", "use_cache"] + _FLAGS,
    "BertForMaskedLM": _COMMON + _DECODER + ["labels"] + _FLAGS,
    # HF takes next_sentence_label through **kwargs (deprecated spelling); ours names it, last
    "BertForNextSentencePrediction": _COMMON + ["labels"] + _FLAGS + ["next_sentence_label"],
    "BertForSequenceClassification": _COMMON + ["labels"] + _FLAGS,
    "BertForMultipleChoice": _COMMON + ["labels"] + _FLAGS,
    "BertForTokenClassification": _COMMON + ["labels"] + _FLAGS,
    "BertForQuestionAnswering": _COMMON + ["start_positions", "end_positions"] + _FLAGS,
}
#: the framework's own call method and the training flag it adds (last, with this default)
CALL = {"torch": ("forward", None), "tf": ("call", ("training", False)), "flax": ("__call__", ("deterministic", True))}
GENERATE = [
    ("input_ids", inspect.Parameter.empty),
    ("attention_mask", None),
    ("max_new_tokens", 20),
    ("do_sample", False),
    ("temperature", 1.0),
    ("top_k", None),
    ("top_p", None),
    ("eos_token_id", None),
    ("pad_token_id", None),
    ("seed", None),
    ("encoder_hidden_states", None),
    ("encoder_attention_mask", None),
]
FROM_PRETRAINED = [
    ("config", None),
    ("revision", None),
    ("cache_dir", None),
    ("token", None),
    ("local_files_only", False),
    ("ignore_mismatched_sizes", False),
    ("output_loading_info", False),
    ("seed", 0),
    ("add_pooling_layer", None),
]
#: keyword-only extras a framework may add after the common ones
FRAMEWORK_EXTRAS = {"torch": {"torch_dtype"}, "tf": set(), "flax": {"dtype", "param_dtype", "rngs"}}
EXPORTS = set(HEADS) | {"BertPreTrainedModel", "ALL_MODEL_CLASSES", "canonical_grads"}


def _params(fn):
    return [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]


def test_exports(backend):
    missing = EXPORTS - set(backend.package.__all__)
    assert not missing, f"{backend.name} does not export {sorted(missing)}"
    assert [c.__name__ for c in backend.package.ALL_MODEL_CLASSES] == list(HEADS)


@pytest.mark.parametrize("head", HEADS)
def test_forward_parameters(backend, head):
    method, flag = CALL[backend.name]
    params = _params(getattr(getattr(backend.package, head), method))
    expected = FORWARD[head] + ([flag[0]] if flag else [])
    assert [p.name for p in params] == expected
    for p in params:
        default = flag[1] if flag and p.name == flag[0] else None
        assert p.default is default or p.default == default, (p.name, p.default)


@pytest.mark.parametrize("head", HEADS)
def test_constructor(backend, head):
    params = _params(getattr(backend.package, head).__init__)
    names = [p.name for p in params]
    expected = ["config", "add_pooling_layer", "seed"] if head == "BertModel" else ["config", "seed"]
    assert names[: len(expected)] == expected
    assert (
        params[names.index("seed")].default == 0 and params[names.index("seed")].kind is inspect.Parameter.KEYWORD_ONLY
    )
    if head == "BertModel":
        assert params[1].default is True
    extras = {p.name for p in params[len(expected) :] if p.kind is not inspect.Parameter.VAR_KEYWORD}
    assert extras <= FRAMEWORK_EXTRAS[backend.name], extras


def test_from_pretrained_and_save_pretrained(backend):
    cls = backend.package.BertForMaskedLM
    params = _params(cls.from_pretrained)
    assert params[0].name == "name_or_path"
    keyword = [(p.name, p.default) for p in params[1:] if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert keyword[: len(FROM_PRETRAINED)] == FROM_PRETRAINED
    assert {name for name, _ in keyword[len(FROM_PRETRAINED) :]} <= FRAMEWORK_EXTRAS[backend.name]
    assert params[-1].kind is inspect.Parameter.VAR_KEYWORD and params[-1].name == "config_overrides"
    save = [(p.name, p.default) for p in _params(cls.save_pretrained)]
    assert save == [("save_directory", inspect.Parameter.empty), ("max_shard_size", "5GB")]


def test_generate_signature(backend):
    got = [(p.name, p.default) for p in _params(backend.package.BertLMHeadModel.generate)]
    assert got == GENERATE


# --------------------------------------------------------------------------------------- the ladder, read as text

LADDER = [
    "BertEmbeddings",
    "BertSelfAttention",
    "BertSelfOutput",
    "BertAttention",
    "BertIntermediate",
    "BertOutput",
    "BertLayer",
    "BertEncoder",
    "BertPooler",
    "BertPredictionHeadTransform",
    "BertLMPredictionHead",
    "BertOnlyMLMHead",
    "BertOnlyNSPHead",
    "BertPreTrainingHeads",
    "BertPreTrainedModel",
    "BertModel",
    "_HeadModel",
    *HEADS[1:],
]
HELPERS = [
    "_array_info",
    "_check_inputs",
    "_check_labels",
    "_extended_attention_mask",
    "_encoder_attention_mask",
    "_head_mask",
    "_cross_entropy",
    "_mse",
    "_bce_with_logits",
    "_finish",
    "canonical_grads",
]
CALL_NAMES = {"torch": "forward", "tf": "call", "flax": "__call__"}


def _module(backend: str) -> ast.Module:
    return ast.parse((ROOT / f"bert_{backend}" / "modeling.py").read_text())


@pytest.mark.parametrize("name", ["torch", "tf", "flax"])
def test_ladder_classes_in_order(name):
    tree = _module(name)
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    order = [c for c in classes if c in LADDER]
    assert order == LADDER, f"bert_{name}: {order}"
    assert "BertMainLayer" not in classes and "BertHeads" not in classes


@pytest.mark.parametrize("name", ["torch", "tf", "flax"])
def test_ladder_modules_are_callable_and_helpers_named_alike(name):
    tree = _module(name)
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assigned = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    assert not set(HELPERS) - defined, sorted(set(HELPERS) - defined)
    assert {"ACT2FN", "ALL_MODEL_CLASSES"} <= assigned
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name in LADDER[:14]):
        methods = {f.name for f in cls.body if isinstance(f, ast.FunctionDef)}
        assert CALL_NAMES[name] in methods, f"bert_{name}.{cls.name} has no {CALL_NAMES[name]}"


@pytest.mark.parametrize("name", ["torch", "tf", "flax"])
def test_no_switch_on_subclass_names(name):
    source = (ROOT / f"bert_{name}" / "modeling.py").read_text()
    assert "head_name ==" not in source and "head_name in (" not in source
    assert "setattr(self" not in source


def test_module_call_signatures_agree():
    """The ladder modules take the same parameters in the same order (the framework flag aside)."""
    flags = {"training", "deterministic"}
    signatures = {}
    for name in ("torch", "tf", "flax"):
        for cls in (n for n in _module(name).body if isinstance(n, ast.ClassDef) and n.name in LADDER[:14]):
            for fn in cls.body:
                if isinstance(fn, ast.FunctionDef) and fn.name == CALL_NAMES[name]:
                    args = [a.arg for a in fn.args.args[1:] + fn.args.kwonlyargs if a.arg not in flags]
                    signatures.setdefault(cls.name, {})[name] = args
    for cls, by_backend in signatures.items():
        assert len({tuple(v) for v in by_backend.values()}) == 1, (cls, by_backend)
