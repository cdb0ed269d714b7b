"""``bert_core.hub``: the one rule for "is this a hub repo id" and what resolve_model_dir does with non-ids."""

from __future__ import annotations

import pytest

from bert_core.hub import looks_like_hub_id, resolve_model_dir

ACCEPTED = [
    "bert-base-uncased",
    "sentence-transformers/all-MiniLM-L6-v2",
    "google/bert_uncased_L-2_H-128_A-2",
    "Foo-BAR_foo.bar123",
    "123",
    "a",
    "_private",
    "org/_name_",
    "a" * 96,
    "o" * 96 + "/" + "n" * 96,
    "a.gitx",
]
REFUSED = [
    "",
    "a" * 97,
    "org/" + "n" * 97,
    "a/b/c",
    "/abs/path",
    "./relative",
    "../up",
    "~/models/bert",
    "org/",
    "/name",
    "-name",
    "name-",
    ".name",
    "name.",
    "org/-name",
    "a--b",
    "a..b",
    "repo.git",
    "org/repo.git",
    "with space",
    "windows\\path",
    "café/bert",
    "org:name",
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_accepted_hub_ids(text):
    assert looks_like_hub_id(text)


@pytest.mark.parametrize("text", REFUSED)
def test_refused_hub_ids(text):
    assert not looks_like_hub_id(text)


def test_agrees_with_huggingface_hub_validate_repo_id():
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    for text in ACCEPTED + REFUSED:
        try:
            validate_repo_id(text)
            valid = True
        except HFValidationError:
            valid = False
        assert looks_like_hub_id(text) == valid, text


def test_non_str_is_not_an_id(tmp_path):
    assert not looks_like_hub_id(tmp_path)
    assert not looks_like_hub_id(None)


def test_resolve_refuses_what_is_neither_a_directory_nor_an_id(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for text in (str(tmp_path / "absent"), "a--b", "with space", "org/name/extra"):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            resolve_model_dir(text, cache_dir=tmp_path / "hub")
    # an id (one part or two) goes to the hub cache: offline and absent, that is a different error
    for text in ("bert-base-uncased", "nobody/missing"):
        with pytest.raises(FileNotFoundError, match="could not resolve"):
            resolve_model_dir(text, cache_dir=tmp_path / "hub")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(NotADirectoryError):
        resolve_model_dir(tmp_path / "file.txt")
