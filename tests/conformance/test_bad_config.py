"""Configuration errors are the same in every backend (one wording, from bert_core.validation)."""

import pytest


def test_qa_head_needs_two_labels_in_every_backend():
    import importlib

    from bert_core.config import tiny_config

    for name in ("bert_torch", "bert_tf", "bert_flax"):
        backend = importlib.import_module(name)
        with pytest.raises(ValueError, match="num_labels=2 .*got num_labels=3"):
            backend.BertForQuestionAnswering(tiny_config(num_labels=3))
