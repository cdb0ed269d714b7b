"""from_pretrained's zero-copy load: parameters are the checkpoint's (private) memory map, nothing is left on the meta
device, ties hold, training in place works and never writes the file."""

import hashlib

import numpy as np
import torch

import bert_torch
from bert_core.config import tiny_config
from bert_core.weights import HEADS


def _digest(path):
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def _mapped_from(path, address):
    """Whether ``address`` lies in a mapping of ``path`` (Linux /proc/self/maps; True elsewhere: not checkable)."""
    try:
        lines = open("/proc/self/maps").read().splitlines()
    except OSError:
        return True
    for line in lines:
        if line.endswith(str(path.resolve())):
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= address < hi:
                return True
    return False


def test_every_head_loads_without_meta_tensors_and_matches(tmp_path):
    config = tiny_config(position_embedding_type="relative_key_query")
    ids = torch.tensor([[1, 5, 9, 2]])
    for head in HEADS:
        cls = getattr(bert_torch, head)
        source = cls(config, seed=3).eval()
        source.save_pretrained(tmp_path / head)
        loaded = cls.from_pretrained(tmp_path / head)
        assert not [n for n, p in loaded.named_parameters() if p.is_meta], head
        assert all(p.requires_grad for p in loaded.parameters()), head
        for (name, a), b in zip(source.state_dict().items(), loaded.state_dict().values()):
            assert torch.equal(a, b), f"{head}: {name}"
        if head in ("BertForMaskedLM", "BertForPreTraining", "BertLMHeadModel"):
            decoder = loaded.get_output_embeddings()
            assert decoder.weight is loaded.get_input_embeddings().weight, head
        inputs = {"input_ids": ids} if head != "BertForMultipleChoice" else {"input_ids": ids[None]}
        # equal weights; the last bits may differ where a kernel takes another path for the map's alignment
        torch.testing.assert_close(source(**inputs)[0], loaded(**inputs)[0], rtol=1e-6, atol=1e-6)


def test_parameters_share_the_map_and_training_never_writes_the_file(tmp_path):
    config = tiny_config()
    bert_torch.BertForSequenceClassification(config, seed=0).save_pretrained(tmp_path)
    digest = _digest(tmp_path)
    model = bert_torch.BertForSequenceClassification.from_pretrained(tmp_path)
    weight = model.bert.embeddings.word_embeddings.weight
    assert _mapped_from(tmp_path / "model.safetensors", weight.data_ptr())  # no copy: the file's own map
    before = weight.detach().clone()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    out = model(input_ids=torch.tensor([[1, 5, 9, 2]]), labels=torch.tensor([1]))
    out.loss.backward()
    opt.step()  # in-place updates of the mapped parameters: copy-on-write pages of this process
    assert not torch.equal(weight.detach(), before)
    assert _digest(tmp_path) == digest
    again = bert_torch.BertForSequenceClassification.from_pretrained(tmp_path)
    assert torch.equal(again.bert.embeddings.word_embeddings.weight, before)


def test_load_canonical_weights_copies_by_default():
    model = bert_torch.BertModel(tiny_config(), seed=0)
    weights = model.canonical_weights()
    other = bert_torch.BertModel(tiny_config(), seed=1)
    other.load_canonical_weights(weights)
    weights["embeddings.word_embeddings.weight"][:] = 7.0  # the caller's arrays stay the caller's
    assert not torch.all(other.embeddings.word_embeddings.weight == 7.0)
    other.load_canonical_weights(model.canonical_weights(), assign=True)
    np.testing.assert_array_equal(
        other.embeddings.word_embeddings.weight.detach().numpy(),
        model.canonical_weights()["embeddings.word_embeddings.weight"],
    )
