"""Word-level labels onto word pieces (HF ``run_ner``'s ``tokenize_and_align_labels``), shared with the pipelines."""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence

IGNORE_INDEX = -100


def b_to_i_map(label_list: Sequence[str]) -> Dict[int, int]:
    """``{id of "B-X": id of "I-X"}`` for every ``B-`` label whose ``I-`` label exists (other ids map to themselves):
    with ``label_all_tokens`` the later pieces of a word that starts an entity continue it, as in HF ``run_ner``."""
    index = {label: i for i, label in enumerate(label_list)}
    out = {}
    for i, label in enumerate(label_list):
        # str.replace, as run_ner spells it
        out[i] = index.get(label.replace("B-", "I-"), i) if label.startswith("B-") else i
    return out


def align_labels(
    word_ids: Sequence[Optional[int]],
    word_labels: Sequence[int],
    label_all_tokens: bool = False,
    b_to_i: Optional[Mapping[int, int]] = None,
) -> List[int]:
    """One label per token from one label per word.

    Args:
        word_ids: the word index of every token (``BatchEncoding.word_ids(i)``), None for special/padding tokens.
        word_labels: int label id of every word.
        label_all_tokens: False: the first piece of a word gets the word's label, the later pieces -100 (ignored by
            the loss and the metrics); True: every piece gets it (through ``b_to_i`` when given, so that a ``B-``
            word's later pieces are ``I-``).
        b_to_i: optional ``{label id: label id}`` applied to the later pieces with ``label_all_tokens``
            (:func:`b_to_i_map`).

    Returns:
        ``[seq_len]`` int labels, -100 for special and padding tokens.

    Raises:
        ValueError: a word index outside ``word_labels``.
    """
    out: List[int] = []
    previous = None
    for word in word_ids:
        if word is None:
            out.append(IGNORE_INDEX)
        elif not 0 <= word < len(word_labels):
            raise ValueError(f"word index {word} is outside the {len(word_labels)} word labels")
        elif word != previous:
            out.append(int(word_labels[word]))
        elif label_all_tokens:
            label = int(word_labels[word])
            out.append(int(b_to_i.get(label, label)) if b_to_i is not None else label)
        else:
            out.append(IGNORE_INDEX)
        previous = word
    return out


def first_piece_mask(word_ids: Sequence[Optional[int]]) -> List[bool]:
    """True at the first token of every word (the positions whose prediction is the word's), ``[seq_len]``."""
    out = []
    previous = None
    for word in word_ids:
        out.append(word is not None and word != previous)
        previous = word
    return out
