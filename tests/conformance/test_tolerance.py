"""The one tolerance policy and comparison function."""

import math

import numpy as np
import pytest

from conformance.tolerance import DEFAULT_TOLERANCE, Tolerance, compare, compare_exact, parse_tolerance


def test_policy_is_relative_to_the_reference_peak():
    ref = np.array([0.0, -200.0, 3.0], np.float32)
    limit = 1e-5 * (1 + 200.0)
    assert DEFAULT_TOLERANCE.limit(ref) == pytest.approx(limit)
    assert compare(ref, ref + np.float32(limit * 0.9)).passed
    res = compare(ref, ref + np.array([0, 0, limit * 1.5], np.float32))
    assert not res.passed and res.max_abs == pytest.approx(limit * 1.5, rel=1e-3)


def test_override_and_grad_factor():
    tol = parse_tolerance("1e-3")
    assert tol.rtol == 1e-3 and tol.for_grads().rtol == pytest.approx(1e-2)
    assert compare(np.zeros(3), np.full(3, 5e-4), tol).passed
    assert not compare(np.zeros(3), np.full(3, 5e-4)).passed
    with pytest.raises(ValueError, match="--tolerance"):
        parse_tolerance("tight")
    with pytest.raises(ValueError):
        Tolerance(rtol=-1.0)


def test_shape_nan_and_integer_mismatches_fail():
    shape = compare(np.zeros((2, 3)), np.zeros((3, 2)))
    assert not shape.passed and math.isinf(shape.max_abs) and "shape" in shape.note
    nan = compare(np.zeros(3), np.array([0.0, np.nan, 0.0]))
    assert not nan.passed and "NaN" in nan.note
    assert compare(np.array([1, 2]), np.array([1, 2])).passed
    assert not compare(np.array([1, 2]), np.array([1, 3]), Tolerance(rtol=1.0)).passed  # ints are exact


def test_exact_comparison_is_bitwise():
    a = np.arange(4, dtype=np.float32)
    assert compare_exact(a, a.copy()).passed
    assert not compare_exact(a, a.astype(np.float64)).passed
    b = a.copy()
    b[1] = np.nextafter(b[1], np.float32(2))
    assert not compare_exact(a, b).passed
