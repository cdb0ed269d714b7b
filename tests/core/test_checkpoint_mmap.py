"""read_safetensors hands out views of a private memory map: reads are lazy, writes never reach the file, and
release_pages drops the resident pages of tensors a backend has copied without changing what they read."""

import hashlib
import mmap

import numpy as np
from safetensors.numpy import save_file

from bert_core.checkpoint import BUFFER_ALIGNMENT, aligned_copy, read_safetensors, release_pages


def _write(path, tensors):
    save_file(tensors, str(path))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_arrays_are_writable_views_that_never_change_the_file(tmp_path):
    path = tmp_path / "model.safetensors"
    rng = np.random.default_rng(0)
    original = {"a": rng.standard_normal((64, 48)).astype(np.float32), "b": np.arange(10, dtype=np.int64)}
    digest = _write(path, original)
    state = read_safetensors(path)
    a = state["a"]
    assert a.flags.writeable and not a.flags.owndata  # a view, not a copy
    a[0, 0] += 1.0  # a backend that trains in place writes here
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    again = read_safetensors(path)
    np.testing.assert_array_equal(again["a"], original["a"])
    np.testing.assert_array_equal(again["b"], original["b"])
    assert a[0, 0] == original["a"][0, 0] + 1.0  # this process keeps its own write


def test_release_pages_keeps_values_and_ignores_other_arrays(tmp_path):
    path = tmp_path / "model.safetensors"
    big = np.arange(6 * mmap.PAGESIZE, dtype=np.float32).reshape(6, -1)  # several pages
    small = np.linspace(-1, 1, 7, dtype=np.float32)
    _write(path, {"big": big, "small": small})
    state = read_safetensors(path)
    assert float(state["big"].sum()) == float(big.sum())  # fault every page in
    for name in state:
        release_pages(state[name])
    np.testing.assert_array_equal(state["big"], big)  # dropped pages are read again from the file
    np.testing.assert_array_equal(state["small"], small)
    plain = np.ones(3, np.float32)
    release_pages(plain)  # not a mapped view: nothing happens
    release_pages(np.ones(3, np.float32)[1:])
    np.testing.assert_array_equal(plain, 1.0)


def test_bf16_tensors_are_widened_copies(tmp_path):
    path = tmp_path / "model.safetensors"
    values = np.array([1.0, -2.5, 3.140625], np.float32)
    bits = (values.view(np.uint32) >> 16).astype(np.uint16)
    header = b'{"x":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]}}'
    header += b" " * (-len(header) % 8)
    path.write_bytes(len(header).to_bytes(8, "little") + header + bits.tobytes())
    x = read_safetensors(path)["x"]
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, values)
    release_pages(x)  # a widened copy: nothing to drop, no error
    np.testing.assert_array_equal(x, values)


def test_aligned_copy_is_a_fresh_aligned_contiguous_copy(tmp_path):
    path = tmp_path / "model.safetensors"
    kernel = np.random.default_rng(1).standard_normal((601, 5)).astype(np.float32)  # 3 blocks of rows, a partial last
    _write(path, {"k": kernel, "b": np.arange(3, dtype=np.float32)})
    mapped = read_safetensors(path)["k"]
    for transpose, expected in ((False, kernel), (True, kernel.T)):
        out = aligned_copy(mapped, transpose=transpose)
        assert out.ctypes.data % BUFFER_ALIGNMENT == 0, transpose
        assert out.flags.c_contiguous and out.dtype == np.float32 and out.shape == expected.shape
        np.testing.assert_array_equal(out, expected)
        assert not np.shares_memory(out, mapped)
    out = aligned_copy(mapped, transpose=True)
    release_pages(mapped)  # the copy keeps its values once the checkpoint's pages are gone
    np.testing.assert_array_equal(out, kernel.T)
