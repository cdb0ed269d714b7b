"""Fixtures shared by the conformance tests: usable backends and the (expensive) parity reports, built once."""

from __future__ import annotations

import pytest

from conformance.adapters import BackendUnavailable, get_adapter, resolve_backends


def _usable():
    usable, broken = [], {}
    for name in resolve_backends():
        try:
            get_adapter(name)
            usable.append(name)
        except BackendUnavailable as err:
            broken[name] = str(err)
    return usable, broken


@pytest.fixture(scope="session")
def backend_status():
    """(usable backend names, {installed but unusable backend: reason})."""
    return _usable()


@pytest.fixture(scope="session")
def backends(backend_status):
    usable, _ = backend_status
    if len(usable) < 2:
        pytest.skip(f"cross-backend parity needs two usable backends, have {usable}")
    return usable


@pytest.fixture(scope="session")
def default_report(backends):
    """The full battery on the embedded default: every head, grads + SGD step, save/load chain."""
    from conformance import run_parity

    return run_parity(None, backends=backends)


#: a small WordPiece vocabulary: specials, letters and their ## pieces, a few words, punctuation, two CJK chars
TINY_VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    + ["##" + chr(c) for c in range(ord("a"), ord("z") + 1)]
    + ["the", "is", "of", "hello", "world", "what", "capital", "france", "paris", "cafe", "naive", "test"]
    + [",", ".", "?", "!", "-", "東", "京"]
)


def make_tiny_checkpoint(directory, architecture="BertForMaskedLM", model_max_length=32, seed=3, **overrides):
    """A tiny BertForPreTraining-weights checkpoint with a tokenizer (vocab.txt, model_max_length 32 tokens)."""
    import json

    from bert_core.checkpoint import save_pretrained
    from bert_core.config import tiny_config
    from bert_core.init import init_weights

    values = dict(vocab_size=len(TINY_VOCAB), initializer_range=0.2, num_labels=3)
    values.update(overrides)
    config = tiny_config(**values)
    save_pretrained(directory, config, init_weights(config, "BertForPreTraining", seed=seed), architecture=architecture)
    (directory / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n")
    (directory / "tokenizer_config.json").write_text(
        json.dumps({"do_lower_case": True, "model_max_length": model_max_length})
    )
    return directory


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    """Directory of a tiny checkpoint (architectures ["BertForMaskedLM"]) with its tokenizer."""
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny-ckpt"))


@pytest.fixture(scope="session")
def make_tiny():
    """:func:`make_tiny_checkpoint` (directory, architecture=..., model_max_length=..., **config overrides)."""
    return make_tiny_checkpoint
