"""Compiled inference in the benchmark report: ``ours_compiled_{fp32,bf16}`` (``compile_for_inference``) against
eager ``ours_{fp32,bf16}`` in workloads (a) and (b), same worker process, round-robin timing.

Compiled inference is opt-in, so these are measurements, not checks: a ratio below 1 says the option does not pay
on this machine for that model and precision.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional


def _entry(r: Dict[str, Any], key: str, name: str) -> Optional[Dict[str, Any]]:
    return (r.get(key) or {}).get(name)


def _speedup(r: Dict[str, Any], key: str, precision: str) -> Optional[float]:
    compiled, eager = _entry(r, key, f"ours_compiled_{precision}"), _entry(r, key, f"ours_{precision}")
    if not compiled or not eager or not eager.get("seq_per_s"):
        return None
    return compiled["seq_per_s"] / eager["seq_per_s"]


def compiled_targets(r: Dict[str, Any]) -> Dict[str, Optional[float]]:
    """One framework's result -> ``{a,b}_compiled_vs_eager_{fp32,bf16}`` (compiled seq/s over eager seq/s)."""
    return {
        f"{key}_compiled_vs_eager_{precision}": _speedup(r, key, precision)
        for key in ("a", "b")
        for precision in ("fp32", "bf16")
    }


def compiled_markdown(result: Dict[str, Any]) -> List[str]:
    """The "compiled inference" table: speedup over eager and compile time (first call), per framework."""
    rows = []
    for fw, r in result["frameworks"].items():
        for key in ("a", "b"):
            for precision in ("fp32", "bf16"):
                compiled = _entry(r, key, f"ours_compiled_{precision}")
                if not compiled:
                    continue
                eager = _entry(r, key, f"ours_{precision}") or {}
                speedup = _speedup(r, key, precision)
                rows.append(
                    f"| {fw} | ({key}) | {precision} | {eager.get('seq_per_s', float('nan')):.2f} | "
                    f"{compiled['seq_per_s']:.2f} | {'—' if speedup is None else f'{speedup:.2f}'} | "
                    f"{compiled.get('first_call_s', float('nan')):.1f} | "
                    f"{compiled.get('max_abs_diff_vs_ours_fp32', float('nan')):.2e} |"
                )
    if not rows:
        return []
    return [
        "## Compiled inference (opt-in `compile_for_inference`: torch inductor + freezing, tf XLA) vs eager",
        "",
        "| framework | workload | precision | eager seq/s | compiled seq/s | × eager | compile s (first call) | "
        "max |diff| vs ours fp32 |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
