"""Every task pipeline in every backend equals HF transformers 4.57's pipeline on the same checkpoint and inputs.

Checkpoints: MiniLM's body (two layers for token-level heads, all six for sequence-level ones) with seeded random
heads, written once by our ``save_pretrained`` and loaded by both (tests/data/pipelines/models.py); the real MiniLM
for sentence embeddings. Scores within 1e-5 absolute; labels, tokens, spans and strings exact; the structure of the
output (HF's list/dict shapes) identical. Our batch sizes 1 and 8 agree with each other and with HF at batch size 1.
Runs only in the oracle venv.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

DATA = Path(__file__).resolve().parents[1] / "data" / "pipelines"
sys.path.insert(0, str(DATA))

from compare import assert_same  # noqa: E402
from models import make_all  # noqa: E402

from bert_core.pipelines import pipeline  # noqa: E402
from conformance.adapters import BackendUnavailable, get_adapter, resolve_backends  # noqa: E402

pytestmark = pytest.mark.oracle


def _backends():
    usable = []
    for name in resolve_backends():
        try:
            get_adapter(name)
            usable.append(name)
        except BackendUnavailable:
            pass
    return usable


BACKENDS = _backends()

WORDS = (
    "Angela Merkel met Schwarzenegger in Zürich; antidisestablishmentarianism and hyperparameterization "
    "were discussed at the state-of-the-art Microsoft headquarters, costing 3.14159 million €."
)
CONTEXT = (
    "The Amazon rainforest covers much of the Amazon basin of South America. This basin encompasses seven million "
    "square kilometres, of which five and a half million are covered by the rainforest. The region includes "
    "territory belonging to nine nations. The majority of the forest is contained within Brazil, with 60% of the "
    "rainforest, followed by Peru with 13%, Colombia with 10%, and with minor amounts in Venezuela, Ecuador, "
    "Bolivia, Guyana, Suriname and French Guiana. The rainforest represents over half of the planet's remaining "
    "rainforests, and comprises the largest and most biodiverse tract of tropical rainforest in the world."
)

#: task -> [(case id, positional inputs, call options)]
CASES = {
    "fill-mask": [
        (
            "texts",
            (["The capital of France is [MASK].", "I [MASK] you.", "Paris is a [MASK] city with many museums"],),
            {},
        ),
        ("one", ("The quick brown fox [MASK] over the lazy dog.",), {"top_k": 3}),
        ("list-of-one", (["Hello [MASK]!"],), {"top_k": 2}),
        ("targets", ("The weather is [MASK] today.",), {"targets": ["good", "bad", "sunny", "Zürichsee"]}),
        ("two-masks", ("The [MASK] sat on the [MASK].",), {"top_k": 2}),
    ],
    "text-classification": [
        ("one", ("I loved every minute of this film.",), {}),
        ("texts", (["Great!", "Terrible service, never again.", WORDS],), {}),
        ("pair", ({"text": "A man plays guitar.", "text_pair": "Someone makes music."},), {}),
        ("pairs-all", ([{"text": "It rains.", "text_pair": "The street is wet."}, {"text": "Hi"}],), {"top_k": None}),
        ("sigmoid", (["good", "bad"],), {"function_to_apply": "sigmoid", "top_k": 1}),
        ("none", ("fine",), {"function_to_apply": "none", "top_k": 2}),
        ("empty", (["", "x"],), {}),
    ],
    "token-classification": [
        (
            f"{strategy}",
            ([WORDS, "Hugging Face Inc. is a company based in New York City."],),
            {"aggregation_strategy": strategy},
        )
        for strategy in ("none", "simple", "first", "average", "max")
    ]
    + [
        ("keep-O", (WORDS,), {"aggregation_strategy": "simple", "ignore_labels": []}),
        ("split-words", (WORDS.split(),), {"is_split_into_words": True, "aggregation_strategy": "first"}),
        ("stride", (" ".join([WORDS] * 14),), {"stride": 64, "aggregation_strategy": "simple"}),
        ("empty", (["", "   "],), {"ignore_labels": []}),
    ],
    "question-answering": [
        ("one", (), {"question": "Which country has most of the forest?", "context": CONTEXT}),
        (
            "windows",
            (),
            {
                "question": "Which country has most of the forest?",
                "context": CONTEXT,
                "max_seq_len": 64,
                "doc_stride": 24,
                "top_k": 3,
            },
        ),
        (
            "impossible",
            (),
            {
                "question": "How big is the basin?",
                "context": CONTEXT,
                "handle_impossible_answer": True,
                "top_k": 2,
                "max_seq_len": 48,
                "doc_stride": 16,
            },
        ),
        (
            "tokens",
            (),
            {"question": "How big?", "context": CONTEXT, "align_to_words": False, "top_k": 4, "max_answer_len": 5},
        ),
        (
            "examples",
            (
                [
                    {"question": "Where?", "context": "My name is Wolfgang and I live in Berlin."},
                    {"question": "Who?", "context": WORDS},
                ],
            ),
            {},
        ),
        (
            "short-context",
            (),
            {"question": "What is the name of the river that flows through the city?", "context": "Rome."},
        ),
    ],
    "feature-extraction": [
        ("one", ("Hello world, this is feature extraction.",), {}),
        ("texts", (["short", WORDS],), {"return_tensors": True}),
        ("empty", ("",), {}),
    ],
    "zero-shot-classification": [
        (
            "one",
            ("I love football and the world cup",),
            {"candidate_labels": ["sport", "politics", "cooking", "music"]},
        ),
        (
            "multi",
            (["The election results surprised everyone.", "A new pasta recipe"],),
            {"candidate_labels": "politics, food, sport", "multi_label": True},
        ),
        (
            "single-label",
            ("Stocks fell today.",),
            {"candidate_labels": ["finance"], "hypothesis_template": "This text is about {}."},
        ),
    ],
}
PARAMS = [(task, case) for task, cases in CASES.items() for case in cases]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, minilm_dir):
    return make_all(tmp_path_factory.mktemp("pipelines"), minilm_dir)


_HF = {}
_OURS = {}
RESULTS = {}  # "task backend" -> {"max": largest |Δ| of a score} (written to $BERT_PIPELINES_ORACLE_REPORT if set)


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    if os.environ.get("BERT_PIPELINES_ORACLE_REPORT"):
        Path(os.environ["BERT_PIPELINES_ORACLE_REPORT"]).write_text(json.dumps(RESULTS, indent=1, sort_keys=True))


def hf_result(checkpoints, task, case):
    key = (task, case[0])
    if key not in _HF:
        if task not in _HF:
            _HF[task] = transformers.pipeline(task, model=str(checkpoints[task]), framework="pt", device="cpu")
        _, args, kwargs = case
        _HF[key] = _HF[task](*args, **kwargs)
    return _HF[key]


def ours(checkpoints, backend, task, batch_size):
    key = (backend, task)
    if key not in _OURS:
        _OURS[key] = pipeline(task, checkpoints[task], backend=backend)
    pipe = _OURS[key]
    pipe.batch_size = batch_size
    return pipe


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("task, case", PARAMS, ids=[f"{t}-{c[0]}" for t, c in PARAMS])
def test_task_equals_hf(checkpoints, backend, task, case):
    _, args, kwargs = case
    got = ours(checkpoints, backend, task, 8)(*args, **kwargs)
    stats = RESULTS.setdefault(f"{task} {backend}", {})
    assert_same(got, hf_result(checkpoints, task, case), where=f"{backend} {task} {case[0]}", stats=stats)


#: per task, a case with several inputs (or windows) of different lengths: batch 1 must give what batch 8 gives
BATCHED = [(t, next(c for c in CASES[t] if c[0] in ("texts", "windows", "none", "multi"))) for t in CASES]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("task, case", BATCHED, ids=[f"{t}-{c[0]}" for t, c in BATCHED])
def test_batch_size_one_equals_eight(checkpoints, backend, task, case):
    _, args, kwargs = case
    one = ours(checkpoints, backend, task, 1)(*args, **kwargs)
    stats = RESULTS.setdefault(f"{task} {backend} batch 1", {})
    assert_same(one, hf_result(checkpoints, task, case), where=f"{backend} {task} {case[0]} batch 1", stats=stats)


def test_cases_cover_windows_and_pieces(checkpoints):
    """The long cases do what they are meant to: several QA windows, several NER windows, words in many pieces."""
    from bert_core.tokenization_fast import BertTokenizerFast

    tok = BertTokenizerFast.from_pretrained(checkpoints["question-answering"])
    windows = tok(
        "Which country has most of the forest?",
        CONTEXT,
        truncation="only_second",
        max_length=64,
        stride=24,
        return_overflowing_tokens=True,
    )
    assert len(windows["input_ids"]) >= 4
    long_text = next(c for c in CASES["token-classification"] if c[0] == "stride")[1][0]
    assert len(tok(long_text)["input_ids"]) > tok.model_max_length + 64
    assert max(len(tok.tokenize(w)) for w in WORDS.split()) >= 5


@pytest.mark.parametrize("backend", BACKENDS)
def test_sentence_embeddings_equal_hf_mean_pooling(minilm_dir, backend):
    """The real MiniLM: our sentence embeddings = HF BertModel + mean pooling over the attention mask + L2 norm."""
    pairs = json.loads((DATA / "similarity_pairs.json").read_text())
    texts = [t for p in pairs for t in (p["anchor"], p["close"], p["far"])]
    tok = transformers.AutoTokenizer.from_pretrained(str(minilm_dir))
    model = transformers.AutoModel.from_pretrained(str(minilm_dir)).eval()
    enc = tok(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    mask = enc["attention_mask"][..., None].float()
    ref = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1).numpy()
    pipe = pipeline("sentence-embedding", minilm_dir, backend=backend, batch_size=4)
    got = pipe(texts)
    assert got.shape == ref.shape == (len(texts), 384) and got.dtype == np.float32
    assert_same(got, ref, stats=RESULTS.setdefault(f"sentence-embedding {backend}", {}))
    sims = pipe.similarity(got[0::3], got[1::3]).diagonal(), pipe.similarity(got[0::3], got[2::3]).diagonal()
    assert np.all(sims[0] > sims[1] + 0.1), sims
