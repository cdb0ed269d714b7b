"""benchmarks.compiled_report: compiled-vs-eager ratios and the report table from a worker result."""

from __future__ import annotations

from benchmarks.compiled_report import compiled_markdown, compiled_targets


def _result():
    a = {
        "ours_fp32": {"seq_per_s": 2.0},
        "ours_bf16": {"seq_per_s": 4.0},
        "ours_compiled_fp32": {"seq_per_s": 3.0, "first_call_s": 41.5, "max_abs_diff_vs_ours_fp32": 2e-6},
        "ours_compiled_bf16": {"seq_per_s": 2.0, "first_call_s": 30.0, "max_abs_diff_vs_ours_fp32": 0.05},
    }
    return {"frameworks": {"torch": {"a": a, "b": {"ours_fp32": {"seq_per_s": 9.0}}}}}


def test_targets_are_compiled_over_eager_seq_per_s():
    t = compiled_targets(_result()["frameworks"]["torch"])
    assert t == {
        "a_compiled_vs_eager_fp32": 1.5,
        "a_compiled_vs_eager_bf16": 0.5,
        "b_compiled_vs_eager_fp32": None,  # no compiled variant measured
        "b_compiled_vs_eager_bf16": None,
    }


def test_markdown_has_one_row_per_measured_variant():
    lines = compiled_markdown(_result())
    rows = [line for line in lines if line.startswith("| torch")]
    assert rows == [
        "| torch | (a) | fp32 | 2.00 | 3.00 | 1.50 | 41.5 | 2.00e-06 |",
        "| torch | (a) | bf16 | 4.00 | 2.00 | 0.50 | 30.0 | 5.00e-02 |",
    ]
    assert compiled_markdown({"frameworks": {"torch": {"a": {"ours_fp32": {"seq_per_s": 1.0}}}}}) == []
