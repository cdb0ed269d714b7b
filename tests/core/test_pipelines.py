"""bert_core.pipelines without a framework: the engine (bucketing, order, streaming, errors) and every task's
pre/post-processing, on a numpy stand-in for the backend (tests/data/pipelines/fake.py) and MiniLM's tokenizer.

Equality with HF's pipelines is proven in tests/oracle/test_pipelines_oracle.py; here each rule is pinned by hand.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[1] / "data" / "pipelines"
sys.path.insert(0, str(DATA))

from fake import FakeRunner  # noqa: E402

from bert_core.config import BertConfig  # noqa: E402
from bert_core.pipelines import (  # noqa: E402
    FeatureExtractionPipeline,
    FillMaskPipeline,
    PipelineError,
    PoolingConfig,
    QuestionAnsweringPipeline,
    SentenceEmbeddingPipeline,
    TextClassificationPipeline,
    TokenClassificationPipeline,
    ZeroShotClassificationPipeline,
    base,  # noqa: E402
    cos_sim,
    pairwise_cos_sim,
    task_class,
)
from bert_core.pipelines.base import record_fields, resolve_backend, softmax  # noqa: E402
from bert_core.pipelines.sentence_embedding import pool  # noqa: E402
from bert_core.pipelines.token_classification import aggregate_overlapping_entities, get_tag  # noqa: E402
from bert_core.tokenization import BertTokenizer  # noqa: E402
from bert_core.tokenization_fast import BertTokenizerFast  # noqa: E402

NER = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}


@pytest.fixture(scope="module")
def tok(minilm_dir):
    return BertTokenizerFast.from_pretrained(minilm_dir)


def make(cls, tok, head=None, batch_size=8, seed=0, **config):
    config.setdefault("vocab_size", 30522)
    runner = FakeRunner(head or cls.head, BertConfig(**config), seed=seed)
    return cls(runner, tok, batch_size=batch_size, progress=False)


# ------------------------------------------------------------------------------------------------ engine


def test_bucketed_batches_keep_input_order(tok):
    pipe = make(FeatureExtractionPipeline, tok, batch_size=3)
    texts = ["word " * n for n in (1, 40, 3, 25, 2, 60, 7, 1)]
    got = pipe(texts, return_tensors=True)
    for text, hidden in zip(texts, got):
        ids = tok(text)["input_ids"]
        assert hidden.shape == (1, len(ids), 16)
        np.testing.assert_array_equal(hidden[0], pipe.runner.token_vectors(np.array([ids]), np.ones((1, len(ids))))[0])
    lengths = [m.sum(1) for m in pipe.runner.batches]
    assert [len(x) for x in lengths] == [3, 3, 2]  # at most batch_size rows, longest first
    assert all(np.all(np.diff(x) <= 0) for x in lengths) and lengths[0][0] == max(
        len(tok(t)["input_ids"]) for t in texts
    )
    assert all(m.shape[1] % 8 == 0 for m in pipe.runner.batches)


def test_streaming_is_lazy_and_ordered(tok, monkeypatch):
    monkeypatch.setattr(base, "POOL_BATCHES", 2)
    pipe = make(TextClassificationPipeline, tok, batch_size=2)
    consumed = []

    def texts():
        for i in range(20):
            consumed.append(i)
            yield f"text number {i} " * (i % 5 + 1)

    stream = pipe(texts())
    assert not consumed  # nothing runs before the first result is asked for
    first = next(stream)
    assert len(consumed) <= 5, "a pool of 2 batches of 2 is read before the first result"
    rest = list(stream)
    assert [first] + rest == pipe([f"text number {i} " * (i % 5 + 1) for i in range(20)])


def test_errors_raise_or_take_the_input_place(tok):
    pipe = make(FillMaskPipeline, tok)
    with pytest.raises(PipelineError, match=r"no mask token \(\[MASK\]\) found in the input 'no mask here'"):
        pipe(["a [MASK].", "no mask here"])
    params = pipe.resolve_options({})
    out = list(pipe.run(["a [MASK].", "no mask here", 7, "b [MASK]."], params, errors="return"))
    assert isinstance(out[0], list) and isinstance(out[3], list)
    assert isinstance(out[1], PipelineError) and "text must be a str; got int" in str(out[2])


def test_progress_bar_only_when_asked(tok, capsys):
    pipe = make(FeatureExtractionPipeline, tok)
    pipe.progress = True
    pipe(["a", "b"])
    assert "feature-extraction" in capsys.readouterr().err
    pipe.progress = None  # short input: no bar
    pipe(["a", "b"])
    assert capsys.readouterr().err == ""


def test_options_checked_at_construction_and_call(tok):
    with pytest.raises(PipelineError, match="fill-mask does not take doc_stride; its options are"):
        make(FillMaskPipeline, tok).__class__(
            FakeRunner("BertForMaskedLM", BertConfig(vocab_size=30522)), tok, doc_stride=3
        )
    pipe = make(FillMaskPipeline, tok)
    with pytest.raises(PipelineError, match="top_k must be an int >= 1; got 0"):
        pipe("a [MASK]", top_k=0)
    with pytest.raises(PipelineError, match="top_k must be an int >= 1; got -1"):
        FillMaskPipeline(pipe.runner, tok, top_k=-1)
    with pytest.raises(PipelineError, match="tokenizer_kwargs may hold truncation, max_length; got \\['padding'\\]"):
        pipe("a [MASK]", tokenizer_kwargs={"padding": "max_length"})
    with pytest.raises(PipelineError, match="batch_size must be an int >= 1; got 0"):
        make(FillMaskPipeline, tok, batch_size=0)


def test_task_names_and_aliases():
    assert task_class("ner") is TokenClassificationPipeline
    assert task_class("sentiment-analysis") is TextClassificationPipeline
    with pytest.raises(PipelineError, match="unknown task 'summarization'; expected one of fill-mask, "):
        task_class("summarization")


def test_backend_resolution_names_the_problem():
    with pytest.raises(PipelineError, match="model must be a checkpoint directory, a hub id or a model of"):
        resolve_backend(object(), None)
    with pytest.raises(Exception, match="unknown backend 'mxnet'"):
        resolve_backend("some/dir", "mxnet")


def test_record_fields():
    assert record_fields("fill-mask", "a [MASK]", ("text",)) == {"text": "a [MASK]"}
    assert record_fields("qa", {"question": "q", "context": "c", "id": 3}, ("question", "context")) == {
        "question": "q",
        "context": "c",
    }
    with pytest.raises(PipelineError, match=r"missing \['context'\]; unknown \['contxt'\]"):
        record_fields("qa", {"question": "q", "contxt": "c"}, ("question", "context"))
    with pytest.raises(PipelineError, match="a qa record is a JSON object; got str"):
        record_fields("qa", "text", ("question", "context"))


# ------------------------------------------------------------------------------------------------ fill-mask


def test_fill_mask_scores_tokens_and_sequences(tok):
    pipe = make(FillMaskPipeline, tok)
    out = pipe("Paris is the [MASK] of France.", top_k=3)
    ids = tok("Paris is the [MASK] of France.")["input_ids"]
    pos = ids.index(tok.mask_token_id)
    runner = pipe.runner
    logits = runner.token_vectors(np.array([ids]), np.ones((1, len(ids))))[0, pos] @ runner.table.T
    probs = softmax(logits)
    best = np.argsort(-probs)[:3]
    assert [o["token"] for o in out] == best.tolist()
    np.testing.assert_allclose([o["score"] for o in out], probs[best], rtol=1e-6)
    assert out[0]["token_str"] == tok.decode([int(best[0])])
    assert out[0]["sequence"] == tok.decode(ids[:pos] + [int(best[0])] + ids[pos + 1 :], skip_special_tokens=True)


def test_fill_mask_shapes_like_hf(tok):
    pipe = make(FillMaskPipeline, tok)
    two = pipe("The [MASK] sat on the [MASK].", top_k=2)
    assert len(two) == 2 and all(len(r) == 2 for r in two)
    # several masks: the other mask stays, with the special tokens (HF keeps them so it shows)
    assert two[0][0]["sequence"].startswith("[CLS]") and "[MASK]" in two[0][0]["sequence"]
    assert pipe(["a [MASK]"], top_k=1) == pipe("a [MASK]", top_k=1)  # a list of one: that text's result
    assert len(pipe(["a [MASK]", "b [MASK]"], top_k=1)) == 2


def test_fill_mask_targets(tok, caplog):
    pipe = make(FillMaskPipeline, tok)
    with caplog.at_level(logging.WARNING):
        out = pipe("I like [MASK].", targets=["cats", "dogs", "Zürichsee"], top_k=10)
    assert "`Zürichsee` is not in the vocabulary; using `zurich` instead" in caplog.text
    assert sorted(o["token_str"] for o in out) == ["cats", "dogs", "zurich"]  # top_k capped at the targets
    assert out == sorted(out, key=lambda o: -o["score"])
    with pytest.raises(PipelineError, match="at least one target"):
        pipe("I like [MASK].", targets=["   "])


@pytest.mark.parametrize("text", ["", "no mask", "[mask] lower case is not the mask token"])
def test_fill_mask_needs_a_mask(tok, text):
    with pytest.raises(PipelineError, match="no mask token"):
        make(FillMaskPipeline, tok)(text)


# ------------------------------------------------------------------------------------------------ text classification


def test_text_classification_shapes_like_hf(tok):
    pipe = make(TextClassificationPipeline, tok, id2label={0: "NEG", 1: "POS"})
    one = pipe("good")
    assert isinstance(one, list) and len(one) == 1 and list(one[0]) == ["label", "score"]
    assert isinstance(pipe({"text": "a", "text_pair": "b"}), dict)
    assert isinstance(pipe(["a", "b"])[1], dict)
    ranked = pipe("good", top_k=None)
    assert [r["label"] for r in ranked] == sorted(
        ["NEG", "POS"], key=lambda lab: -next(r["score"] for r in ranked if r["label"] == lab)
    )
    assert abs(sum(r["score"] for r in ranked) - 1) < 1e-6
    assert pipe([[["a", "b"]]]) == [pipe({"text": "a", "text_pair": "b"})]  # HF's old pair form
    # top_k at construction: HF wraps a single text's list once more
    nested = TextClassificationPipeline(pipe.runner, tok, top_k=2)("good")
    assert isinstance(nested[0], list) and len(nested[0]) == 2
    with pytest.raises(PipelineError, match="send a text pair as such a dict"):
        pipe([["a", "b"]])
    with pytest.raises(PipelineError, match="keys 'text' and optionally 'text_pair'; got keys \\['txt'\\]"):
        pipe({"txt": "a"})


def test_text_classification_function_from_config(tok):
    logits = lambda pipe: pipe.runner.token_vectors(*_row(tok, "fine"))[0, 0] @ pipe.runner.labels  # noqa: E731
    regression = make(TextClassificationPipeline, tok, num_labels=1, problem_type="regression")
    assert regression("fine")[0]["score"] == pytest.approx(float(logits(regression)[0]), rel=1e-6)
    single = make(TextClassificationPipeline, tok, num_labels=1)
    assert single("fine")[0]["score"] == pytest.approx(float(1 / (1 + np.exp(-logits(single)[0]))), rel=1e-6)
    multi = make(TextClassificationPipeline, tok, num_labels=3, problem_type="multi_label_classification")
    assert multi("fine", top_k=None)[0]["score"] == pytest.approx(float((1 / (1 + np.exp(-logits(multi)))).max()))
    with pytest.raises(
        PipelineError, match="function_to_apply must be one of 'none', 'sigmoid', 'softmax'; got 'relu'"
    ):
        multi("fine", function_to_apply="relu")


def _row(tok, text):
    ids = tok(text)["input_ids"]
    return np.array([ids]), np.ones((1, len(ids)))


# ------------------------------------------------------------------------------------------------ token classification


def test_get_tag_and_overlaps():
    assert get_tag("B-PER") == ("B", "PER") and get_tag("I-LOC") == ("I", "LOC") and get_tag("MISC") == ("I", "MISC")
    entities = [
        {"start": 0, "end": 5, "score": 0.5, "w": "a"},
        {"start": 2, "end": 9, "score": 0.1, "w": "longer wins"},
        {"start": 10, "end": 12, "score": 0.3, "w": "c"},
        {"start": 10, "end": 12, "score": 0.9, "w": "same length: surer wins"},
    ]
    assert [e["w"] for e in aggregate_overlapping_entities(entities)] == ["longer wins", "same length: surer wins"]
    assert aggregate_overlapping_entities([]) == []


def test_token_classification_grouping_by_hand(tok):
    pipe = make(TokenClassificationPipeline, tok, id2label=NER)
    ent = lambda label, word, start, end, score=0.9: {  # noqa: E731
        "entity": label,
        "score": np.float32(score),
        "word": word,
        "start": start,
        "end": end,
    }
    groups = pipe.group_entities(
        [
            ent("B-PER", "jean", 0, 4, 0.8),
            ent("I-PER", "##-", 4, 5, 0.6),
            ent("B-PER", "paul", 5, 9),
            ent("O", "in", 10, 12),
            ent("I-LOC", "new", 13, 16, 0.7),
            ent("I-LOC", "york", 17, 21, 0.5),
        ]
    )
    assert [(g["entity_group"], g["word"], g["start"], g["end"]) for g in groups] == [
        ("PER", "jean-", 0, 5),
        ("PER", "paul", 5, 9),
        ("O", "in", 10, 12),
        ("LOC", "new york", 13, 21),
    ]
    assert groups[0]["score"] == pytest.approx(0.7) and groups[3]["score"] == pytest.approx(0.6)


@pytest.mark.parametrize("strategy", ["first", "average", "max"])
def test_token_classification_word_strategies(tok, strategy):
    pipe = make(TokenClassificationPipeline, tok, id2label=NER)
    scores = [
        np.array(s, np.float32)
        for s in ([0.1, 0.6, 0.1, 0.1, 0.1], [0.0, 0.0, 0.1, 0.9, 0.0], [0.5, 0.2, 0.1, 0.1, 0.1])
    ]
    pieces = [
        {"word": w, "scores": s, "start": a, "end": b}
        for w, s, a, b in zip(["mic", "##ros", "##oft"], scores, [0, 3, 6], [3, 6, 9])
    ]
    word = pipe.aggregate_word(pieces, strategy)
    want = {"first": ("B-PER", 0.6), "max": ("B-LOC", 0.9), "average": ("B-LOC", (0.1 + 0.9 + 0.1) / 3)}[strategy]
    assert (word["entity"], word["word"], word["start"], word["end"]) == (want[0], "microsoft", 0, 9)
    assert float(word["score"]) == pytest.approx(want[1], rel=1e-6)


def test_token_classification_outputs(tok):
    pipe = make(TokenClassificationPipeline, tok, id2label=NER)
    text = "Angela Merkel visited Washingtonianism"
    tokens = pipe(text, ignore_labels=[])
    ids = tok(text)["input_ids"]
    assert [t["index"] for t in tokens] == list(range(1, len(ids) - 1))
    assert [list(t) for t in tokens[:1]] == [["entity", "score", "index", "word", "start", "end"]]
    assert all(text[t["start"] : t["end"]].lower() == t["word"].replace("##", "") for t in tokens)
    words = pipe(text, aggregation_strategy="first", ignore_labels=[])
    assert [w["word"] for w in words] == ["angela", "merkel", "visited", "washingtonianism"]
    assert all(isinstance(w["score"], float) for w in words)
    split = pipe(text.split(), is_split_into_words=True, aggregation_strategy="first", ignore_labels=[])
    assert split == [words]  # one pre-split sentence: a list of one result, as HF


def test_token_classification_refusals(tok):
    pipe = make(TokenClassificationPipeline, tok, id2label=NER)
    with pytest.raises(PipelineError, match="choose an aggregation_strategy other than 'none'"):
        pipe("text", stride=8, aggregation_strategy="none")
    with pytest.raises(PipelineError, match="stride \\(600\\) must be smaller than the tokenizer's model_max_length"):
        pipe("text", stride=600, aggregation_strategy="simple")
    slow = TokenClassificationPipeline(pipe.runner, tok.to_slow(), progress=False)
    with pytest.raises(PipelineError, match="aggregation_strategy='max' needs a fast tokenizer"):
        slow("text", aggregation_strategy="max")
    plain = slow("Angela visited Paris", ignore_labels=[])
    assert plain and all(t["start"] is None and t["end"] is None for t in plain)  # no offsets without fast


def test_token_classification_long_text_windows(tok):
    pipe = make(TokenClassificationPipeline, tok, id2label=NER)
    text = " ".join(["Angela Merkel visited Washington"] * 150)
    out = pipe(text, stride=32, aggregation_strategy="simple", ignore_labels=[])
    assert sum(m.shape[0] for m in pipe.runner.batches[-1:]) >= 2  # several windows in one batch
    starts = [e["start"] for e in out]
    assert starts == sorted(starts) and out[-1]["end"] == len(text)
    assert all(a["end"] <= b["start"] for a, b in zip(out, out[1:]))  # overlaps resolved


# ------------------------------------------------------------------------------------------------ question answering


def test_qa_answers_are_context_spans(tok):
    pipe = make(QuestionAnsweringPipeline, tok)
    context = "My name is Wolfgang and I live in Berlin. " * 3
    answers = pipe(question="Where do I live?", context=context, top_k=5, max_seq_len=32, doc_stride=8)
    assert len(answers) == 5 and answers == sorted(answers, key=lambda a: -a["score"])
    for a in answers:
        assert list(a) == ["score", "start", "end", "answer"] and a["answer"] == context[a["start"] : a["end"]]
    assert len({a["answer"].lower() for a in answers}) == 5  # equal answers of several windows are merged
    assert len(pipe.runner.batches[-1]) > 1  # the context was cut into windows
    one = pipe({"question": "Where do I live?", "context": context})
    assert isinstance(one, dict) and one == pipe([{"question": "Where do I live?", "context": context}])
    both = pipe(question=["Who?", "Where?"], context=context)
    assert isinstance(both, list) and len(both) == 2


def test_qa_probabilities_and_impossible_answer(tok):
    pipe = make(QuestionAnsweringPipeline, tok)
    context = "Berlin is the capital of Germany."
    out = pipe(question="What is it?", context=context, handle_impossible_answer=True, top_k=50)
    null = [a for a in out if a["answer"] == "" and a["start"] == a["end"] == 0]
    assert len(null) == 1
    enc = tok("What is it?", context)
    ids, mask = np.array([enc["input_ids"]]), np.ones((1, len(enc["input_ids"])))
    hidden = pipe.runner.token_vectors(ids, mask)[0]
    allowed = np.array([s == 1 or i == 0 for i, s in enumerate(enc.sequence_ids(0))])
    p_start = softmax(np.where(allowed, hidden[:, 0] * 3, -10000.0))
    p_end = softmax(np.where(allowed, hidden[:, 1] * 3, -10000.0))
    assert null[0]["score"] == pytest.approx(float(p_start[0] * p_end[0]), rel=1e-5)
    real = [a for a in out if a is not null[0]]
    assert sum(a["score"] for a in real) == pytest.approx(
        float(np.triu(np.outer(p_start[1:], p_end[1:])).sum()), rel=1e-4
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"question": "", "context": "c"}, "`question` cannot be empty"),
        ({"question": "q", "context": None}, "question-answering needs question= and context="),
        ({"question": ["a", "b"], "context": ["c"]}, "lists of one length; got 2 and 1"),
        ({"question": "q", "context": "c", "top_k": 0}, "top_k must be an int >= 1; got 0"),
        (
            {"question": "q", "context": "c", "doc_stride": 50, "max_seq_len": 40},
            "`doc_stride` \\(50\\) is larger than",
        ),
        (
            {"question": "why " * 60, "context": "because", "max_seq_len": 48, "doc_stride": 8},
            "the question is 60 tokens",
        ),
    ],
)
def test_qa_bad_input(tok, kwargs, message):
    with pytest.raises(PipelineError, match=message):
        make(QuestionAnsweringPipeline, tok)(**kwargs)


def test_qa_context_shorter_than_question(tok):
    out = make(QuestionAnsweringPipeline, tok)(
        question="What is the name of the city where she lives now?", context="Rome."
    )
    assert out["answer"] in ("Rome", "Rome.", ".") and out["score"] > 0


# ------------------------------------------------------------------------------------------------ embeddings


def test_feature_extraction_shapes(tok):
    pipe = make(FeatureExtractionPipeline, tok)
    one = pipe("hello world")
    assert isinstance(one, list) and len(one) == 1 and len(one[0]) == 4 and len(one[0][0]) == 16
    arrays = pipe(["a", "a b c"], return_tensors=True)
    assert [a.shape for a in arrays] == [(1, 3, 16), (1, 5, 16)] and arrays[0].dtype == np.float32
    long = pipe("word " * 600, truncation=True, return_tensors=True)
    assert long.shape[1] == tok.model_max_length
    with pytest.raises(PipelineError, match="truncation is given twice"):
        pipe("a", truncation=True, tokenize_kwargs={"truncation": True})


def test_pooling_config_of_minilm(minilm_dir, tmp_path):
    assert PoolingConfig.from_directory(minilm_dir) == PoolingConfig(("mean",), True, 256, False)
    assert PoolingConfig.from_directory(tmp_path) == PoolingConfig()
    (tmp_path / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Pool", "type": "sentence_transformers.models.Pooling"},
                {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
            ]
        )
    )
    (tmp_path / "1_Pool").mkdir()
    (tmp_path / "1_Pool" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": True, "pooling_mode_max_tokens": True})
    )
    with pytest.raises(PipelineError, match="lists a sentence_transformers.models.Dense module"):
        PoolingConfig.from_directory(tmp_path)
    (tmp_path / "modules.json").write_text(json.dumps(json.loads((tmp_path / "modules.json").read_text())[:2]))
    assert PoolingConfig.from_directory(tmp_path).modes == ("cls", "max")


def test_pool_modes_by_hand():
    h = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_allclose(pool(h, ["cls"]), h[0])
    np.testing.assert_allclose(pool(h, ["mean", "max"]), np.concatenate([h.mean(0), h.max(0)]))
    np.testing.assert_allclose(pool(h, ["mean_sqrt_len"]), h.sum(0) / 2)
    np.testing.assert_allclose(pool(h, ["weightedmean"]), (h * np.arange(1, 5)[:, None]).sum(0) / 10)
    np.testing.assert_allclose(pool(h, ["lasttoken"]), h[-1])


def test_cosine_helpers():
    a = np.array([[1.0, 0.0], [1.0, 1.0]], np.float32)
    b = np.array([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]], np.float32)
    np.testing.assert_allclose(cos_sim(a, b), [[1, 0, -1], [2**-0.5, 2**-0.5, -(2**-0.5)]], atol=1e-6)
    np.testing.assert_allclose(pairwise_cos_sim(a, b[:2]), [1, 2**-0.5], atol=1e-6)
    np.testing.assert_allclose(cos_sim([0.0, 0.0], [1.0, 0.0]), [[0.0]])  # a zero vector is not a NaN
    with pytest.raises(PipelineError, match="two arrays of one shape"):
        pairwise_cos_sim(a, b)


def test_sentence_embedding(tok):
    runner = FakeRunner("BertModel", BertConfig(vocab_size=30522, hidden_size=16, num_attention_heads=4))
    pipe = SentenceEmbeddingPipeline(runner, tok, pooling=PoolingConfig(("mean",), True, 8), progress=False)
    vectors = pipe(["a cat", "a dog " * 20])
    assert vectors.shape == (2, 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, rtol=1e-6)
    assert runner.batches[-1].sum(1).max() == 8  # max_seq_length
    raw = pipe("a cat", normalize=False)
    ids, mask = _row(tok, "a cat")
    np.testing.assert_allclose(raw, runner.token_vectors(ids, mask)[0].mean(0), rtol=1e-6)
    np.testing.assert_allclose(pipe.similarity("a cat", np.stack([raw, raw * 2])), [[1, 1]], rtol=1e-6)
    assert pipe([]).shape == (0, 16)


# ------------------------------------------------------------------------------------------------ zero-shot


def test_zero_shot_math(tok, caplog):
    pipe = make(ZeroShotClassificationPipeline, tok, id2label={0: "contradiction", 1: "neutral", 2: "entailment"})
    assert pipe.entailment_id == 2
    out = pipe("I love football", candidate_labels="sport, politics ,cooking", hypothesis_template="About {}.")
    logits = np.stack(
        [
            pipe.runner.token_vectors(*_row_pair(tok, "I love football", f"About {lab}."))[0, 0] @ pipe.runner.labels
            for lab in ("sport", "politics", "cooking")
        ]
    )
    scores = softmax(logits[:, 2])
    assert out["sequence"] == "I love football" and out["labels"] == [
        ["sport", "politics", "cooking"][i] for i in np.argsort(-scores)
    ]
    np.testing.assert_allclose(out["scores"], np.sort(scores)[::-1], rtol=1e-5)
    multi = pipe("I love football", ["sport", "politics"], multi_label=True, hypothesis_template="About {}.")
    both = softmax(logits[:2][:, [0, 2]])[:, 1]
    np.testing.assert_allclose(sorted(multi["scores"]), sorted(both), rtol=1e-5)
    with caplog.at_level(logging.WARNING):
        make(ZeroShotClassificationPipeline, tok, id2label={0: "yes", 1: "no"})
    assert "Failed to determine 'entailment' label id" in caplog.text


def _row_pair(tok, a, b):
    ids = tok(a, b)["input_ids"]
    return np.array([ids]), np.ones((1, len(ids)))


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (("text",), {"candidate_labels": []}, "at least one candidate label"),
        (("",), {"candidate_labels": ["a"]}, "non-empty text"),
        (("text",), {"candidate_labels": ["a"], "hypothesis_template": "No slot."}, "has no place for the label"),
        (("text", ["a"], ["b"]), {}, "unable to understand extra arguments"),
        (("text",), {"candidate_labels": 3}, "candidate_labels must be a str 'a, b' or a list of str; got int"),
    ],
)
def test_zero_shot_bad_input(tok, args, kwargs, message):
    pipe = make(ZeroShotClassificationPipeline, tok, id2label={0: "contradiction", 1: "entailment"})
    with pytest.raises(PipelineError, match=message):
        pipe(*args, **kwargs)


# ------------------------------------------------------------------------------------------------ isolation


def test_pipelines_load_no_framework():
    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys, bert_core.pipelines, bert_core.pipelines.cli, argparse; "
        "p = argparse.ArgumentParser(); bert_core.pipelines.cli.add_parsers(p.add_subparsers()); "
        "print([m for m in ('torch', 'tensorflow', 'keras', 'jax', 'flax') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_slow_tokenizer_is_refused_for_qa(tok):
    with pytest.raises(PipelineError, match="question-answering needs a fast tokenizer"):
        QuestionAnsweringPipeline(FakeRunner("BertForQuestionAnswering", BertConfig(vocab_size=30522)), tok.to_slow())
    assert isinstance(tok.to_slow(), BertTokenizer)
