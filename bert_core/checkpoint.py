"""Checkpoint I/O at the numpy level, shared by every backend.

Reads ``model.safetensors`` (single or sharded with ``model.safetensors.index.json``) and the HF 4.x formats
``pytorch_model.bin`` (only through ``torch.load(weights_only=True)``; nothing pickled is executed), ``tf_model.h5``
(h5py) and ``flax_model.msgpack`` (msgpack) into canonical ``{name: np.ndarray}`` dicts. Writes ``model.safetensors``
with ``{"format": "pt"}`` metadata, sharded above ``max_shard_size``, atomically.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import struct
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from .config import CONFIG_NAME, BertConfig
from .hub import resolve_model_dir
from .io_utils import atomic_path, atomic_write_text, recover_directory, staged_directory
from .weights import LoadingInfo, match_state_dict

PathLike = Union[str, os.PathLike]

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
PT_WEIGHTS_NAME = "pytorch_model.bin"
PT_WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"
TF_WEIGHTS_NAME = "tf_model.h5"
FLAX_WEIGHTS_NAME = "flax_model.msgpack"
#: In order of preference.
WEIGHT_FILES = (
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    PT_WEIGHTS_INDEX_NAME,
    PT_WEIGHTS_NAME,
    TF_WEIGHTS_NAME,
    FLAX_WEIGHTS_NAME,
)
HUB_PATTERNS = ["*.json", "*.safetensors", "*.bin", "*.h5", "*.msgpack", "*.txt"]


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupted, or disagrees with its config. The message names the file."""


# ------------------------------------------------------------------------------------------------ safetensors

_ST_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
    "U16": np.uint16,
    "U32": np.uint32,
    "U64": np.uint64,
}


def read_safetensors(path: PathLike) -> "OrderedDict[str, np.ndarray]":
    """Read one safetensors file into numpy arrays (BF16 is widened to float32 exactly).

    The arrays are views into a private (copy-on-write) memory map of the file, as ``safetensors``' own loaders
    give them: nothing is read until a tensor is used, a backend that can hold the buffer (PyTorch) holds it without
    a copy, and writing to an array changes this process's pages only, never the file. A backend that copies the
    values into its own buffers drops the mapped pages behind it with :func:`release_pages`.

    The header is validated by the ``safetensors`` library itself (offsets contiguous and in bounds, sizes matching
    dtype x shape, well-typed entries) before any tensor is read.

    Raises:
        CheckpointError: the file is truncated or corrupted, naming the file and what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {os.fspath(path)!r} does not exist")
    where = os.fspath(path)
    with open(path, "rb") as handle:
        try:
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
        except ValueError:  # an empty file cannot be mapped
            data = b""
    try:
        _check_lengths(data, where)
        _validate_header(path, where)
        return _parse_safetensors(data, where)
    except BaseException:
        if isinstance(data, mmap.mmap):
            try:
                data.close()
            except BufferError:  # views still held by an exception's traceback: the GC unmaps it later
                pass
        raise


def release_pages(array: np.ndarray) -> None:
    """Drop the resident pages under ``array`` when it is a view of a checkpoint map from :func:`read_safetensors`
    (a no-op for any other array), so that a backend copying tensor by tensor into its own buffers holds about
    one copy of the weights at its peak instead of two.

    Only for arrays nobody has written to: the map is private, and dropped pages are read again from the file.
    """
    base = array
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    if not isinstance(base, memoryview) or not isinstance(base.obj, mmap.mmap) or base.obj.closed:
        return
    mapped = base.obj
    start = array.ctypes.data - np.frombuffer(mapped, np.uint8, count=1).ctypes.data
    first = start - start % mmap.PAGESIZE  # whole pages only: the neighbours' shared edge pages are read again
    end = start + array.nbytes
    end -= end % mmap.PAGESIZE
    if end > first:
        mapped.madvise(mmap.MADV_DONTNEED, first, end - first)


#: Bytes. A host buffer aligned to this is adopted without a copy by XLA:CPU (``jax.device_put(may_alias=True)``)
#: and by TensorFlow (through DLPack), whose CPU kernels assume it (Eigen's widest SIMD alignment).
BUFFER_ALIGNMENT = 64


def aligned_copy(array: np.ndarray, transpose: bool = False) -> np.ndarray:
    """A fresh C-contiguous copy of ``array`` (of ``array.T`` when ``transpose``), same dtype, its first byte on a
    :data:`BUFFER_ALIGNMENT` boundary, so that a framework can take it as its own tensor memory: the one copy a
    backend makes of a checkpoint tensor (numpy's own allocations are only 16-byte aligned, which costs another)."""
    source = array.T if transpose else array
    raw = np.empty(source.nbytes + BUFFER_ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % BUFFER_ALIGNMENT
    out = raw[start : start + source.nbytes].view(source.dtype).reshape(source.shape)
    if transpose and array.ndim == 2:
        # A few hundred source rows at a time: each block is read in order (the mapped pages fault in sequentially)
        # and written as short contiguous runs; one strided copy of the whole matrix is ~1.4x slower on bert-base.
        for row in range(0, array.shape[0], _TRANSPOSE_BLOCK_ROWS):
            np.copyto(out[:, row : row + _TRANSPOSE_BLOCK_ROWS], array[row : row + _TRANSPOSE_BLOCK_ROWS].T)
    else:
        np.copyto(out, source)
    return out


_TRANSPOSE_BLOCK_ROWS = 256


def _check_lengths(data, where: str) -> None:
    """The two ways a file is cut short, named plainly (the library's message is less direct)."""
    if len(data) < 8:
        raise CheckpointError(f"{where}: truncated safetensors file ({len(data)} bytes, no header)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8:
        raise CheckpointError(
            f"{where}: truncated or corrupted safetensors file (header claims {header_len} bytes, "
            f"file has {len(data) - 8} after the length field)"
        )


def _validate_header(path: Path, where: str) -> None:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(os.fspath(path), framework="numpy") as handle:
            handle.keys()
    except SafetensorError as err:
        reason = str(err)
        if "incomplete" in reason.lower() or "buffer" in reason.lower():
            raise CheckpointError(f"{where}: truncated safetensors file ({reason})") from err
        raise CheckpointError(f"{where}: corrupted safetensors header ({reason})") from err


def _parse_safetensors(data, where: str) -> "OrderedDict[str, np.ndarray]":
    """Tensors of a file whose header ``safetensors`` has validated (the checks below are belts and braces)."""
    (header_len,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8 : 8 + header_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{where}: corrupted safetensors header: {err}") from err
    if not isinstance(header, dict):
        raise CheckpointError(f"{where}: corrupted safetensors header (not a JSON object)")
    body = memoryview(data)[8 + header_len :]
    out: "OrderedDict[str, np.ndarray]" = OrderedDict()
    entries = sorted(
        ((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"][0]
    )
    for name, entry in entries:
        try:
            dtype_name, shape, (start, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{where}: corrupted header entry for {name!r}: {entry!r}") from err
        if end > len(body) or start > end:
            raise CheckpointError(
                f"{where}: truncated safetensors file: tensor {name!r} needs bytes [{start}, {end}) "
                f"but the data section has {len(body)} bytes"
            )
        raw = body[start:end]
        if dtype_name == "BF16":
            bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            array = bits.view(np.float32)
        elif dtype_name in _ST_DTYPES:
            array = np.frombuffer(raw, dtype=_ST_DTYPES[dtype_name])
        else:
            raise CheckpointError(f"{where}: tensor {name!r} has unsupported dtype {dtype_name}")
        expected = int(np.prod(shape)) if shape else 1
        if array.size != expected:
            raise CheckpointError(f"{where}: tensor {name!r} has {array.size} values for shape {shape}")
        out[name] = array.reshape(shape)
    return out


def _write_safetensors(target: Path, tensors: Mapping[str, np.ndarray], metadata: Dict[str, str]) -> None:
    from safetensors.numpy import save_file

    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    with atomic_path(target) as tmp:
        save_file(arrays, os.fspath(tmp), metadata=metadata)


# ------------------------------------------------------------------------------------------------ other formats


def read_pytorch_bin(path: PathLike) -> "OrderedDict[str, np.ndarray]":
    """``pytorch_model.bin`` through ``torch.load(weights_only=True)``: tensors only, no arbitrary unpickling."""
    try:
        import torch
    except ImportError as err:
        raise CheckpointError(
            f"{os.fspath(path)}: reading pytorch_model.bin needs PyTorch (pip install 'multi-bert[torch]'); "
            f"or convert it to safetensors where torch is installed"
        ) from err
    try:
        state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{os.fspath(path)}: cannot be read as a tensors-only PyTorch checkpoint: {err}") from err
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{os.fspath(path)}: expected a state dict, got {type(state).__name__}")
    out: "OrderedDict[str, np.ndarray]" = OrderedDict()
    for k, v in state.items():
        if v.dtype == torch.bfloat16:
            v = v.float()
        out[k] = v.detach().cpu().numpy()
    return out


_H5_RENAMES = (
    (re.compile(r"/layer_\._(\d+)/"), r"/layer/\1/"),
    (re.compile(r"^mlm___cls/"), "cls/"),
    (re.compile(r"^nsp___cls/"), "cls/"),
)


def read_tf_h5(path: PathLike) -> "OrderedDict[str, np.ndarray]":
    """HF 4.x ``tf_model.h5`` (Keras 2 ``save_weights``) -> canonical names, PyTorch layout."""
    try:
        import h5py
    except ImportError as err:
        raise CheckpointError(f"{os.fspath(path)}: reading tf_model.h5 needs h5py (pip install h5py)") from err
    raw: "OrderedDict[str, np.ndarray]" = OrderedDict()
    try:
        with h5py.File(os.fspath(path), "r") as handle:

            def visit(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    raw[name] = np.asarray(obj[()])

            handle.visititems(visit)
    except OSError as err:
        raise CheckpointError(f"{os.fspath(path)}: not a readable HDF5 file: {err}") from err
    out: "OrderedDict[str, np.ndarray]" = OrderedDict()
    for name, value in raw.items():
        key = name.split(":")[0]
        parts = key.split("/")
        # Keras 2 h5: "<layer>/<model_name>/<layer>/<path...>"; drop the group and model-name prefix
        if len(parts) > 2 and parts[0] == parts[2]:
            parts = parts[2:]
        roots = ("bert", "cls", "mlm___cls", "nsp___cls", "classifier", "qa_outputs", "embeddings", "encoder", "pooler")
        idx = next((i for i, p in enumerate(parts) if p in roots), None)
        if idx is None:
            continue
        key = "/".join(parts[idx:])
        for pattern, repl in _H5_RENAMES:
            key = pattern.sub(repl, key)
        parts = key.split("/")
        leaf = parts[-1]
        transpose = False
        if leaf == "kernel":
            parts[-1], transpose = "weight", True
        elif leaf in ("gamma",):
            parts[-1] = "weight"
        elif leaf in ("beta",):
            parts[-1] = "bias"
        elif leaf == "embeddings":
            parts[-1] = "weight"
        canonical = ".".join(parts)
        # TF BERT keeps the word embeddings as ".../word_embeddings/weight" already
        out[canonical] = np.ascontiguousarray(value.T) if transpose else value
    return out


def read_flax_msgpack(path: PathLike) -> "OrderedDict[str, np.ndarray]":
    """HF 4.x ``flax_model.msgpack`` (flax.serialization) -> canonical names, PyTorch layout, without flax."""
    try:
        import msgpack
    except ImportError as err:
        raise CheckpointError(
            f"{os.fspath(path)}: reading flax_model.msgpack needs msgpack (pip install msgpack)"
        ) from err

    def ext_hook(code: int, data: bytes) -> Any:
        if code == 1:  # ndarray: (shape, dtype name, bytes)
            shape, dtype_name, buffer = msgpack.unpackb(data)
            if dtype_name == "bfloat16":
                bits = np.frombuffer(buffer, np.uint16).astype(np.uint32) << 16
                return bits.view(np.float32).reshape(shape)
            return np.frombuffer(buffer, dtype=np.dtype(dtype_name)).reshape(shape).copy()
        if code == 3:  # numpy scalar
            shape, dtype_name, buffer = msgpack.unpackb(data)
            return np.frombuffer(buffer, dtype=np.dtype(dtype_name)).reshape(shape)[()]
        raise CheckpointError(f"{os.fspath(path)}: unsupported msgpack extension type {code}")

    try:
        tree = msgpack.unpackb(Path(path).read_bytes(), ext_hook=ext_hook, raw=False, strict_map_key=False)
    except CheckpointError:
        raise
    except Exception as err:
        raise CheckpointError(f"{os.fspath(path)}: corrupted flax msgpack file: {err}") from err
    if not isinstance(tree, dict):
        raise CheckpointError(f"{os.fspath(path)}: expected a nested dict of parameters")
    if "params" in tree and isinstance(tree["params"], dict) and len(tree) == 1:
        tree = tree["params"]
    out: "OrderedDict[str, np.ndarray]" = OrderedDict()

    def walk(node: Any, prefix: List[str]) -> None:
        if isinstance(node, dict):
            if "__msgpack_chunked_array__" in node:
                raise CheckpointError(f"{os.fspath(path)}: chunked msgpack arrays (> 2 GiB tensors) are not supported")
            for k, v in node.items():
                walk(v, prefix + [str(k)])
            return
        parts = list(prefix)
        leaf = parts[-1]
        value = np.asarray(node)
        if leaf == "kernel":
            parts[-1], value = "weight", np.ascontiguousarray(value.T)
        elif leaf in ("scale", "embedding"):
            parts[-1] = "weight"
        out[".".join(parts)] = value

    walk(tree, [])
    return out


# ------------------------------------------------------------------------------------------------ directory level


def find_weights_file(directory: PathLike) -> Tuple[Path, str]:
    """The weights file of ``directory`` in order of preference, and its format name."""
    directory = Path(directory)
    for name in WEIGHT_FILES:
        candidate = directory / name
        if candidate.is_file():
            return candidate, name
    present = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    raise FileNotFoundError(
        f"no weights in {os.fspath(directory)!r}: expected one of {list(WEIGHT_FILES)}; found {present}"
    )


def read_state_dict(directory: PathLike) -> Tuple["OrderedDict[str, np.ndarray]", str]:
    """Every tensor of the checkpoint in ``directory`` as numpy, with the file name it came from."""
    path, name = find_weights_file(directory)
    if name in (SAFE_WEIGHTS_INDEX_NAME, PT_WEIGHTS_INDEX_NAME):
        return read_sharded(path), name
    readers = {
        SAFE_WEIGHTS_NAME: read_safetensors,
        PT_WEIGHTS_NAME: read_pytorch_bin,
        TF_WEIGHTS_NAME: read_tf_h5,
        FLAX_WEIGHTS_NAME: read_flax_msgpack,
    }
    return readers[name](path), name


def read_sharded(index_path: PathLike) -> "OrderedDict[str, np.ndarray]":
    """Every tensor of a sharded checkpoint, checked against its index.

    Raises:
        CheckpointError: naming the index or shard: not a valid index, a shard name that leaves the directory
            (absolute, ``..``, a separator), a missing shard, or a shard without the tensors the index gives it.
    """
    path = Path(index_path)
    where = os.fspath(path)
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{where}: not a valid shard index ({err})") from err
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{where}: not a valid shard index (needs a 'weight_map' object of tensor -> file name)")
    by_shard: Dict[str, List[str]] = {}
    for tensor, shard in weight_map.items():
        by_shard.setdefault(shard, []).append(tensor)
    state: "OrderedDict[str, np.ndarray]" = OrderedDict()
    for shard in sorted(by_shard):
        if not shard or Path(shard).name != shard or shard in (".", ".."):
            raise CheckpointError(f"{where}: shard name {shard!r} is not a file name in the checkpoint directory")
        shard_path = path.parent / shard
        if not shard_path.is_file():
            raise CheckpointError(f"{where}: lists shard {shard!r}, which does not exist")
        part = read_safetensors(shard_path) if shard.endswith(".safetensors") else read_pytorch_bin(shard_path)
        missing = sorted(set(by_shard[shard]) - set(part))
        if missing:
            raise CheckpointError(
                f"{os.fspath(shard_path)}: the index {path.name} puts {len(missing)} tensors in this shard that it "
                f"does not hold (e.g. {missing[:3]}): the checkpoint is incomplete or mixed"
            )
        state.update((k, part[k]) for k in by_shard[shard])
    return state


_SIZE_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_size(size: Union[int, str]) -> int:
    """``5GB`` / ``500MB`` / ``2GiB`` / bytes -> bytes."""
    if isinstance(size, int) and not isinstance(size, bool):
        if size <= 0:
            raise ValueError(f"max_shard_size must be positive, got {size}")
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B|B)\s*", str(size), flags=re.IGNORECASE)
    if not match:
        raise ValueError(f"max_shard_size {size!r} is not a size like '5GB', '500MB' or a number of bytes")
    value = float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()]
    if value <= 0:
        raise ValueError(f"max_shard_size must be positive, got {size!r}")
    return int(value)


#: entries of a checkpoint directory that a save replaces (everything else in the directory is kept)
CHECKPOINT_ENTRIES = (CONFIG_NAME, SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, "model-*-of-*.safetensors")


def save_state_dict(
    state: Mapping[str, np.ndarray],
    save_directory: PathLike,
    *,
    max_shard_size: Union[int, str] = "5GB",
    metadata: Optional[Dict[str, str]] = None,
) -> List[Path]:
    """Write ``state`` as ``model.safetensors`` (or shards + index) into ``save_directory``, all or nothing.

    The weight files are written into a staged copy of the directory that is swapped in whole
    (:func:`bert_core.io_utils.staged_directory`): an interrupted save (kill, full disk) leaves the previous
    checkpoint exactly as it was, never a mix of old and new shards. Returns the files written.
    """
    with staged_directory(save_directory, replace=CHECKPOINT_ENTRIES[1:]) as stage:
        names = _write_weights(state, stage, max_shard_size, metadata)
    return [Path(os.path.realpath(save_directory)) / n for n in names]


def _write_weights(
    state: Mapping[str, np.ndarray],
    directory: Path,
    max_shard_size: Union[int, str],
    metadata: Optional[Dict[str, str]],
) -> List[str]:
    meta = {"format": "pt"}
    meta.update(metadata or {})
    limit = parse_size(max_shard_size)
    shards: List[Dict[str, np.ndarray]] = [{}]
    size = 0
    for name, value in state.items():
        nbytes = np.asarray(value).nbytes
        if shards[-1] and size + nbytes > limit:
            shards.append({})
            size = 0
        shards[-1][name] = np.asarray(value)
        size += nbytes
    if len(shards) == 1:
        _write_safetensors(directory / SAFE_WEIGHTS_NAME, shards[0], meta)
        return [SAFE_WEIGHTS_NAME]
    total = len(shards)
    weight_map: Dict[str, str] = {}
    names = []
    for i, shard in enumerate(shards, 1):
        file_name = f"model-{i:05d}-of-{total:05d}.safetensors"
        _write_safetensors(directory / file_name, shard, meta)
        names.append(file_name)
        weight_map.update({k: file_name for k in shard})
    index = {
        "metadata": {"total_size": int(sum(np.asarray(v).nbytes for v in state.values()))},
        "weight_map": weight_map,
    }
    atomic_write_text(directory / SAFE_WEIGHTS_INDEX_NAME, json.dumps(index, indent=2, sort_keys=True) + "\n")
    return names + [SAFE_WEIGHTS_INDEX_NAME]


# ------------------------------------------------------------------------------------------------ model level


def load_checkpoint(
    name_or_path: PathLike,
    *,
    revision: Optional[str] = None,
    cache_dir: Optional[PathLike] = None,
    token: Optional[Union[str, bool]] = None,
    local_files_only: bool = False,
    config: Optional[BertConfig] = None,
    **config_overrides: Any,
) -> Tuple[BertConfig, "OrderedDict[str, np.ndarray]", Path, str]:
    """Resolve ``name_or_path`` and read its config and every tensor.

    Returns:
        (config, raw state dict as stored, directory, weights file name).
    """
    if not str(os.fspath(name_or_path)).strip():
        raise ValueError("name_or_path is empty: pass a checkpoint directory or a hub id like 'org/name'")
    if Path(name_or_path).parent.is_dir():
        recover_directory(name_or_path)  # a save killed mid-swap (portable fallback only) is undone first
    directory = resolve_model_dir(
        name_or_path,
        allow_patterns=HUB_PATTERNS,
        revision=revision,
        cache_dir=cache_dir,
        token=token,
        local_files_only=local_files_only,
    )
    if config is None:
        if not (directory / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"no {CONFIG_NAME} in {os.fspath(directory)!r}: cannot build the model")
        config = BertConfig.from_pretrained(directory, **config_overrides)
    elif config_overrides:
        config = config.copy(**config_overrides)
    state, file_name = read_state_dict(directory)
    return config, state, directory, file_name


def load_head_weights(
    name_or_path: PathLike,
    head: str,
    *,
    config: Optional[BertConfig] = None,
    add_pooling_layer: Optional[bool] = None,
    ignore_mismatched_sizes: bool = False,
    revision: Optional[str] = None,
    cache_dir: Optional[PathLike] = None,
    token: Optional[Union[str, bool]] = None,
    local_files_only: bool = False,
    **config_overrides: Any,
) -> Tuple[BertConfig, "OrderedDict[str, np.ndarray]", LoadingInfo]:
    """What every backend's ``from_pretrained`` does before touching its framework.

    Returns:
        (config, canonical weights present in the checkpoint for ``head``, loading info). Missing head weights are
        left for the caller to initialise (see :func:`bert_core.init.complete_weights`).

    Raises:
        CheckpointError: the config and the weights disagree (e.g. word embeddings vs vocab_size), naming both.
        ValueError: a shape mismatch, unless ``ignore_mismatched_sizes``.
    """
    config, state, directory, file_name = load_checkpoint(
        name_or_path,
        revision=revision,
        cache_dir=cache_dir,
        token=token,
        local_files_only=local_files_only,
        config=config,
        **config_overrides,
    )
    check_config_agrees(config, state, directory / file_name)
    weights, info = match_state_dict(
        state, config, head, add_pooling_layer=add_pooling_layer, ignore_mismatched_sizes=ignore_mismatched_sizes
    )
    check_float_weights(weights, directory / file_name)
    if not any(k.startswith(("embeddings.", "encoder.", "bert.embeddings.", "bert.encoder.")) for k in weights):
        raise CheckpointError(
            f"{os.fspath(directory / file_name)}: no BERT weights found (keys like {list(state)[:3]})"
        )
    if info.missing_keys:
        warnings.warn(
            f"Some weights of {head} were not in the checkpoint at {os.fspath(name_or_path)} and are newly "
            f"initialised: {info.missing_keys}. Train the model before using it for predictions.",
            stacklevel=3,
        )
    if info.mismatched_keys:
        shapes = ", ".join(f"{n}: checkpoint {a} vs model {b}" for n, a, b in info.mismatched_keys)
        warnings.warn(
            f"Some weights of {head} are newly initialised because their shapes did not match the checkpoint: {shapes}",
            stacklevel=3,
        )
    if info.unexpected_keys:
        warnings.warn(f"Weights of the checkpoint not used by {head}: {info.unexpected_keys}", stacklevel=3)
    return config, weights, info


def check_float_weights(weights: Mapping[str, np.ndarray], where: PathLike) -> None:
    """Refuse integer/bool tensors where BERT has float weights (HF refuses them; a cast would hide a broken file).

    Raises:
        CheckpointError: naming ``where`` and the first offending tensors with their dtypes.
    """
    not_float = [f"{n} ({np.asarray(a).dtype})" for n, a in weights.items() if np.asarray(a).dtype.kind != "f"]
    if not_float:
        raise CheckpointError(
            f"{os.fspath(where)}: BERT weights must be floating point, got integer or bool tensors: {not_float[:5]}"
        )


def check_config_agrees(config: BertConfig, state: Mapping[str, np.ndarray], where: Path) -> None:
    """Raise CheckpointError (naming ``where``, the field and the tensor) when sizes in ``config`` contradict ``state``."""
    checks = [
        ("embeddings.word_embeddings.weight", 0, "vocab_size", config.vocab_size),
        ("embeddings.word_embeddings.weight", 1, "hidden_size", config.hidden_size),
        ("embeddings.position_embeddings.weight", 0, "max_position_embeddings", config.max_position_embeddings),
        ("embeddings.token_type_embeddings.weight", 0, "type_vocab_size", config.type_vocab_size),
        ("encoder.layer.0.intermediate.dense.weight", 0, "intermediate_size", config.intermediate_size),
    ]
    for suffix, axis, field_name, value in checks:
        for key in (suffix, "bert." + suffix):
            if key in state:
                got = np.shape(state[key])
                if len(got) > axis and got[axis] != value:
                    raise CheckpointError(
                        f"config and weights disagree in {os.fspath(where)}: config.{field_name}={value} but "
                        f"{key} has shape {tuple(got)}"
                    )
    layers = {int(m.group(1)) for k in state for m in [re.search(r"encoder\.layer\.(\d+)\.", k)] if m}
    if layers and max(layers) + 1 != config.num_hidden_layers:
        raise CheckpointError(
            f"config and weights disagree in {os.fspath(where)}: config.num_hidden_layers={config.num_hidden_layers} "
            f"but the weights have {max(layers) + 1} layers"
        )


def save_pretrained(
    save_directory: PathLike,
    config: BertConfig,
    state: Mapping[str, np.ndarray],
    *,
    architecture: Optional[str] = None,
    max_shard_size: Union[int, str] = "5GB",
) -> Path:
    """Write ``config.json`` and the canonical ``state`` (tied weights excluded by the caller), all or nothing.

    Config and weights land together (one directory swap, :func:`bert_core.io_utils.staged_directory`); other files
    already in the directory (tokenizer files, logs, training checkpoints) are kept.
    """
    with staged_directory(save_directory, replace=CHECKPOINT_ENTRIES) as stage:
        write_checkpoint_files(stage, config, state, architecture=architecture, max_shard_size=max_shard_size)
    return Path(save_directory)


def write_checkpoint_files(
    directory: PathLike,
    config: BertConfig,
    state: Mapping[str, np.ndarray],
    *,
    architecture: Optional[str] = None,
    max_shard_size: Union[int, str] = "5GB",
) -> List[Path]:
    """``config.json`` + weights into ``directory`` as they are (no staging: for callers that stage a whole
    directory themselves, like ``bert convert``). Returns the files written."""
    directory = Path(directory)
    if architecture is not None:
        config = config.copy(architectures=[architecture])
    names = _write_weights(state, directory, max_shard_size, None)
    config.save_pretrained(directory)
    return [directory / CONFIG_NAME] + [directory / n for n in names]
