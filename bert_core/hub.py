"""Resolve a local directory or a Hugging Face hub repo id to a local directory of files.

Shared by configs, tokenizers and checkpoints so that revision, cache_dir, token, local_files_only and
``HF_HUB_OFFLINE`` behave the same everywhere. Only ``huggingface_hub`` is used; no framework is imported.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional, Sequence, Union

PathLike = Union[str, os.PathLike]

# one part of a repo id ("org" or "name"): 1-96 of [A-Za-z0-9_.-], starting and ending with [A-Za-z0-9_]
_REPO_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.\-]{0,94}[A-Za-z0-9_])?"
_REPO_ID = re.compile(rf"(?:{_REPO_PART}/)?{_REPO_PART}")


def looks_like_hub_id(text: str) -> bool:
    """Whether ``text`` has the form of a Hugging Face hub repo id (the rules of huggingface_hub's
    ``validate_repo_id``): ``name`` or ``org/name``, each part 1-96 characters of ``[A-Za-z0-9-_.]`` that neither
    starts nor ends with ``-`` or ``.``, no ``--`` or ``..``, not ending in ``.git``. The hub is not contacted.
    """
    return (
        isinstance(text, str)
        and _REPO_ID.fullmatch(text) is not None
        and "--" not in text
        and ".." not in text
        and not text.endswith(".git")
    )


def _offline_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().upper() in {"1", "ON", "YES", "TRUE"}


def resolve_model_dir(
    name_or_path: PathLike,
    *,
    allow_patterns: Optional[Sequence[str]] = None,
    revision: Optional[str] = None,
    cache_dir: Optional[PathLike] = None,
    token: Optional[Union[str, bool]] = None,
    local_files_only: bool = False,
) -> Path:
    """Return a local directory holding the files of ``name_or_path``.

    Args:
        name_or_path: a local directory, or a hub repo id such as ``"sentence-transformers/all-MiniLM-L6-v2"``.
        allow_patterns: glob patterns of the files wanted from the hub (ignored for a local directory).
        revision: branch, tag or commit hash on the hub.
        cache_dir: huggingface_hub cache directory (default: the hub's own default, ``HF_HUB_CACHE``).
        token: hub token, passed through.
        local_files_only: never touch the network; ``HF_HUB_OFFLINE=1`` implies it.

    Returns:
        The directory (a snapshot directory inside the hub cache for a repo id).

    Raises:
        FileNotFoundError: a path that looks local does not exist, or the repo is not in the cache while offline.
        OSError: the hub could not be reached or the repo id is unknown.
    """
    path = Path(os.fspath(name_or_path)).expanduser()
    if path.is_dir():
        return path
    text = os.fspath(name_or_path)
    if path.exists():
        raise NotADirectoryError(f"{text!r} is a file; expected a model directory or a hub repo id")
    if not looks_like_hub_id(text):
        raise FileNotFoundError(f"model directory {text!r} does not exist (and it is not a hub repo id 'org/name')")

    from huggingface_hub import snapshot_download

    offline = local_files_only or _offline_env()
    try:
        snapshot = snapshot_download(
            repo_id=text,
            revision=revision,
            cache_dir=os.fspath(cache_dir) if cache_dir is not None else None,
            token=token,
            local_files_only=offline,
            allow_patterns=list(allow_patterns) if allow_patterns else None,
        )
    except Exception as err:  # huggingface_hub raises several classes across versions
        where = "in the local hub cache" if offline else "on the hub"
        cache = os.fspath(cache_dir) if cache_dir is not None else "the default hub cache"
        raise FileNotFoundError(
            f"could not resolve {text!r} (revision={revision!r}) {where}; cache_dir={cache}. "
            f"It is neither a local directory nor a resolvable hub repo id: {type(err).__name__}: {err}"
        ) from err
    return Path(snapshot)
