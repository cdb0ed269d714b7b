"""Small checkpoints for the pipeline tests: every head on the first two layers of the real MiniLM (its WordPiece
tokenizer, 30522 pieces, splits words into many pieces as in real use) with seeded random heads, written by our
``save_pretrained`` so that our backends and HF load the very same weights.

A trained body matters: a freshly initialised one maps every input to almost the same vector, so random heads score
all labels alike and the order of labels would be a matter of round-off. The head weights are also scaled up so that
the scores are peaked and free of near-ties.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from bert_core.checkpoint import load_head_weights, save_pretrained
from bert_core.config import BertConfig
from bert_core.init import complete_weights, init_weights
from bert_core.weights import stored_weights

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
NER_LABELS = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-ORG", 4: "I-ORG", 5: "B-LOC", 6: "I-LOC"}
NLI_LABELS = {0: "contradiction", 1: "neutral", 2: "entailment"}
SST_LABELS = {0: "NEGATIVE", 1: "POSITIVE"}
#: weights scaled up for peaked head outputs (prefix -> factor)
HEAD_SCALE = {"classifier.": 40.0, "qa_outputs.": 40.0, "cls.predictions.transform.LayerNorm.weight": 2.0}


LAYERS = 2


def minilm_body(minilm_dir: Path, layers: int = LAYERS) -> Tuple[BertConfig, Dict[str, np.ndarray]]:
    """MiniLM's config and canonical BertModel weights, cut to its first ``layers`` layers."""
    config, weights, _ = load_head_weights(minilm_dir, "BertModel")
    keep = {k: v for k, v in weights.items() if not k.startswith("encoder.layer.") or int(k.split(".")[2]) < layers}
    return config.copy(num_hidden_layers=layers), keep


def _scale_head(weights: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    return {k: v * next((f for p, f in HEAD_SCALE.items() if k.startswith(p)), 1.0) for k, v in weights.items()}


def make_checkpoint(
    directory: Path,
    head: str,
    minilm_dir: Path,
    *,
    seed: int = 0,
    layers: int = LAYERS,
    tiny: bool = False,
    **config_overrides,
) -> Path:
    """A ``head`` checkpoint in ``directory``: MiniLM's first ``layers`` layers, a seeded random head (scaled), and
    MiniLM's tokenizer files. ``tiny``: a random body instead (hidden 32, 2 layers; for behaviour tests, where
    speed matters more than well-separated scores)."""
    directory = Path(directory)
    if tiny:
        config = BertConfig(
            vocab_size=30522,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=512,
            **config_overrides,
        )
        weights = init_weights(config, head, seed)
    else:
        config, body = minilm_body(minilm_dir, layers)
        config = config.copy(**config_overrides)
        prefix = "" if head == "BertModel" else "bert."
        table = stored_weights(config, head)
        weights = {prefix + k: v for k, v in body.items() if prefix + k in table}  # heads but one have no pooler
        weights = complete_weights(weights, config, head, seed)
    save_pretrained(directory, config, _scale_head(dict(weights)), architecture=head)
    for name in TOKENIZER_FILES:
        shutil.copy(Path(minilm_dir) / name, directory / name)
    return directory


def make_all(root: Path, minilm_dir: Path, tiny: bool = False) -> Dict[str, Path]:
    """One checkpoint per task. Sequence-level heads read [CLS] after all six layers (after two, [CLS] is still
    nearly the same vector for every input); token-level heads are fine on two. ``tiny``: random tiny bodies."""
    root = Path(root)
    return {
        "fill-mask": make_checkpoint(root / "mlm", "BertForMaskedLM", minilm_dir, tiny=tiny, seed=1),
        "text-classification": make_checkpoint(
            root / "sst", "BertForSequenceClassification", minilm_dir, tiny=tiny, seed=2, layers=6, id2label=SST_LABELS
        ),
        "token-classification": make_checkpoint(
            root / "ner", "BertForTokenClassification", minilm_dir, tiny=tiny, seed=3, id2label=NER_LABELS
        ),
        "question-answering": make_checkpoint(root / "qa", "BertForQuestionAnswering", minilm_dir, tiny=tiny, seed=4),
        "feature-extraction": make_checkpoint(root / "base", "BertModel", minilm_dir, tiny=tiny, seed=5),
        "zero-shot-classification": make_checkpoint(
            root / "nli", "BertForSequenceClassification", minilm_dir, tiny=tiny, seed=6, layers=6, id2label=NLI_LABELS
        ),
    }
