"""Every head of every backend equals HF transformers 4.57's PyTorch class, through the conformance battery.

On the real MiniLM checkpoint (the whole battery except the cached step) and on a randomly initialised
bert-base-sized model (768 hidden, 12 layers, 12 heads, 3072 intermediate; vocab cut to 2048 to keep 2-core CI
fast; one case, batch 2 x 8). Our saves load in HF with no missing or unexpected keys. Runs only in the oracle venv
(``tox -e oracle``). The tolerance is conformance's one policy.
"""

from __future__ import annotations

# TF_USE_LEGACY_KERAS=1 (HF's TF classes need tf-keras) is set by tests/conftest.py in the oracle env.
from collections import OrderedDict

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from bert_core.config import BertConfig  # noqa: E402
from bert_core.init import init_weights  # noqa: E402
from bert_core.weights import HEADS  # noqa: E402
from conformance import DEFAULT_TOLERANCE, compare, head_weights  # noqa: E402
from conformance.adapters import BackendUnavailable, flatten_output, get_adapter, resolve_backends  # noqa: E402
from conformance.cases import build_cases, config_for  # noqa: E402
from conformance.default import Checkpoint, load_checkpoint_any  # noqa: E402

pytestmark = pytest.mark.oracle


def _backends():
    out = []
    for name in resolve_backends():
        try:
            get_adapter(name)
            out.append(name)
        except BackendUnavailable:
            pass
    return out


BACKENDS = _backends()


def hf_model(head, config: BertConfig, weights):
    cfg = transformers.BertConfig(**{k: v for k, v in config.to_dict().items() if k != "model_type"})
    cfg._attn_implementation = "eager"  # head_mask and attention outputs need the eager path
    model = getattr(transformers, head)(cfg)
    missing, unexpected = model.load_state_dict(
        {k: torch.from_numpy(np.array(v)) for k, v in weights.items()}, strict=False
    )
    assert not unexpected, unexpected
    assert all(k.endswith(("position_ids", "token_type_ids", "decoder.weight", "decoder.bias")) for k in missing), (
        missing
    )
    model.tie_weights()
    return model.eval()


def hf_forward(model, inputs):
    kwargs = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in inputs.items()}
    with torch.no_grad():
        out = model(**kwargs, return_dict=True)
    items = OrderedDict()
    for key, value in out.items():
        if value is None:
            continue
        if hasattr(value, "to_legacy_cache"):
            value = value.to_legacy_cache()
        items[key] = value
    return flatten_output(items, lambda t: t.detach().numpy())


def check_head(ckpt: Checkpoint, head: str, case_names=None):
    cases = [c for c in build_cases(head, ckpt.config) if case_names is None or c.name in case_names]
    failures = []
    models = {}
    for case in cases:
        cfg = config_for(ckpt.config, case)
        weights = head_weights(ckpt, cfg, head)
        if case.decoder not in models:
            models[case.decoder] = (
                hf_model(head, cfg, weights),
                {b: get_adapter(b).build(head, cfg, weights) for b in BACKENDS},
            )
        ref_model, ours = models[case.decoder]
        ref = hf_forward(ref_model, case.inputs)
        for b, model in ours.items():
            got = get_adapter(b).forward(model, case.inputs)
            for name, value in ref.items():
                if name not in got:
                    failures.append(f"{b} {head}/{case.name}/{name}: missing")
                    continue
                c = compare(value, got[name], DEFAULT_TOLERANCE)
                if not c.passed:
                    failures.append(f"{b} {head}/{case.name}/{name}: {c.max_abs:.3g} > {c.limit:.3g} {c.note}")
    return failures


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return load_checkpoint_any(minilm_dir)


@pytest.fixture(scope="module")
def base_sized():
    config = BertConfig(
        vocab_size=2048,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
    )
    return Checkpoint(config, init_weights(config, "BertForPreTraining", seed=3), "random bert-base-sized")


@pytest.mark.skipif(not BACKENDS, reason="no backend usable")
@pytest.mark.parametrize("head", HEADS)
def test_minilm_every_backend_equals_hf(minilm, head):
    failures = check_head(minilm, head)
    assert not failures, "\n".join(failures[:20])


@pytest.mark.skipif(not BACKENDS, reason="no backend usable")
@pytest.mark.parametrize("head", HEADS)
def test_bert_base_sized_every_backend_equals_hf(base_sized, head):
    failures = check_head(base_sized, head, case_names=["padded_pair"])
    assert not failures, "\n".join(failures[:20])


@pytest.mark.skipif(not BACKENDS, reason="no backend usable")
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("head", HEADS)
def test_our_saves_load_in_hf_without_missing_keys(minilm, head, backend, tmp_path):
    adapter = get_adapter(backend)
    cfg = config_for(minilm.config, build_cases(head, minilm.config)[0])
    model = adapter.build(head, cfg, head_weights(minilm, cfg, head))
    adapter.save(model, str(tmp_path))
    _, info = getattr(transformers, head).from_pretrained(str(tmp_path), output_loading_info=True)
    assert not info["missing_keys"], info["missing_keys"]
    assert not info["unexpected_keys"], info["unexpected_keys"]
    assert not info["mismatched_keys"], info["mismatched_keys"]
