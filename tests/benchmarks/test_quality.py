"""Workload (q): the synthetic task's labels follow its rule, and the --quick run (tiny model, torch) writes the
accuracy / agreement / speed entries, the targets and the markdown section."""

import json
import re

import numpy as np
import pytest

from benchmarks import cli, quality

WORDS = [f"w{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(400)]


def test_labels_follow_the_majority_topic():
    a, b, filler = quality.topic_words(WORDS)
    assert len(a) == len(b) and not set(a) & set(b) and not (set(a) | set(b)) & set(filler)
    texts, labels = quality.make_examples(WORDS, 200, filler=10, seed=0)
    for text, label in zip(texts, labels):
        tokens = re.findall(r"\w+", text)
        k_a, k_b = sum(t in a for t in tokens), sum(t in b for t in tokens)
        assert k_a != k_b and label == int(k_b > k_a) and len(tokens) == 10 + k_a + k_b
    assert 0.3 < labels.mean() < 0.7
    again, _ = quality.make_examples(WORDS, 200, filler=10, seed=0)
    assert again == texts


def test_judge_rows():
    ref = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 2.0]])
    flipped = ref.copy()
    flipped[2] = [0.0, 1.0]
    batches = [{"i": np.arange(2)}, {"i": np.arange(2, 4)}]
    rows = quality.judge(
        {"fp32": lambda x: ref[x["i"]], "int8": lambda x: flipped[x["i"]]}, batches, np.array([0, 1, 1, 1])
    )
    assert rows["fp32"] == {"accuracy": 0.75}
    assert rows["int8"]["accuracy"] == 1.0 and rows["int8"]["accuracy_delta"] == 0.25
    assert rows["int8"]["argmax_agreement"] == 0.75


def test_quick_run_writes_the_entries(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    rc = cli.main(
        ["bench", "--quick", "--no-hf", "--backends", "torch", "--workloads", "q", "--out-dir", str(tmp_path)]
    )
    assert rc == 0
    result = json.loads((tmp_path / "latest.json").read_text())
    q = result["quality"]
    assert "error" not in q and "error" not in q["backends"]["torch"], q
    accuracy = q["backends"]["torch"]["accuracy"]
    assert list(accuracy) == ["fp32", "bf16", "torch.ao int8", "ort int8"]
    for path in ("bf16", "torch.ao int8", "ort int8"):
        row = accuracy[path]
        assert 0 <= row["argmax_agreement"] <= 1 and -1 <= row["accuracy_delta"] <= 1 and row["logits_cosine"] > 0.9
    speed = q["backends"]["torch"]["speed"]
    assert set(speed) == {"a", "b"} and set(speed["a"]["rows"]) == {"fp32", "torch.ao int8", "ort int8"}
    targets = result["targets"]["quality"]
    for key in (
        "q_torch_bf16_agreement",
        "q_torch_int8_agreement_torchao",
        "q_torch_int8_accuracy_delta_ort",
        "int8_vs_fp32_torch_ort_a",
    ):
        assert targets[key] is not None, key
    assert any(c["target"].startswith("torch (q) bf16 argmax agreement") for c in result["checks"])
    md = (tmp_path / "latest.md").read_text()
    assert "## (q) Low precision on a fine-tuned classifier" in md and "| torch | torch.ao int8 |" in md
