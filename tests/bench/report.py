"""Summaries of samples, and the table of figures against their baselines and targets."""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-quantile (0 < q ≤ 1) of already sorted samples."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """Count, mean, min, p50/p90/p99/p99.9 and max of ``samples`` (same unit as given)."""
    ordered = sorted(samples)
    if not ordered:
        return {"count": 0}
    return {
        "count": len(ordered),
        "mean": statistics.fmean(ordered),
        "min": float(ordered[0]),
        "p50": percentile(ordered, 0.50),
        "p90": percentile(ordered, 0.90),
        "p99": percentile(ordered, 0.99),
        "p999": percentile(ordered, 0.999),
        "max": float(ordered[-1]),
    }


def _fmt_number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"


# How each unit is shown after the number.
SUFFIXES = {"us": " µs", "ms": " ms", "s": " s", "rps": " req/s", "MiB": " MiB", "B": " B"}
SUFFIXES |= {"count": "", "x": "×", "%": " %", "MBps": " MB/s"}


def fmt(value: float | None, unit: str) -> str:
    """``value`` with its unit, or ``–`` when there is none."""
    if value is None or math.isnan(value):
        return "–"
    return _fmt_number(value) + SUFFIXES[unit]


@dataclass
class Row:
    """One line of the table. ``check`` turns (value, ratio) into pass/fail when there is a
    target; ``note`` explains a missing value (for example "not observed")."""

    figure: str
    value: float | None
    unit: str
    baseline: float | None = None
    target: str = ""
    check: Callable[[float | None, float | None], bool] | None = field(default=None, repr=False)
    note: str = ""
    ratio_override: float | None = None

    @property
    def ratio(self) -> float | None:
        """``value / baseline`` (or the given ratio), when both are known."""
        if self.ratio_override is not None:
            return self.ratio_override
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def ok(self) -> bool | None:
        """Whether the target is met; ``None`` when the row has no target."""
        if self.check is None:
            return None
        try:
            return self.check(self.value, self.ratio)
        except TypeError:  # a missing value compared to a bound
            return False

    def cells(self) -> list[str]:
        """The row's cells, formatted."""
        ok = {None: "", True: "ok", False: "MISS"}[self.ok]
        value = fmt(self.value, self.unit) if self.value is not None else (self.note or "–")
        ratio = self.ratio
        return [
            self.figure,
            value,
            fmt(self.baseline, self.unit) if self.baseline is not None else "",
            "" if ratio is None else f"{ratio:.2f}×" if ratio < 100 else fmt(ratio, "x"),
            self.target,
            ok,
        ]

    def to_json(self) -> dict[str, Any]:
        """The row as JSON data."""
        return {
            "figure": self.figure,
            "value": self.value,
            "unit": self.unit,
            "baseline": self.baseline,
            "ratio": self.ratio,
            "target": self.target,
            "ok": self.ok,
            "note": self.note,
        }


HEADER = ["figure", "value", "baseline", "ratio", "target", "ok?"]


def table(rows: Sequence[Row]) -> str:
    """The rows as an aligned Markdown table."""
    cells = [HEADER, *(row.cells() for row in rows)]
    widths = [max(len(line[k]) for line in cells) for k in range(len(HEADER))]

    def line(parts: list[str]) -> str:
        return "| " + " | ".join(p.ljust(w) for p, w in zip(parts, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule, *(line(c) for c in cells[1:])])


def at_most(bound: float) -> Callable[[float | None, float | None], bool]:
    """Target: the value is at most ``bound``."""
    return lambda value, _ratio: value is not None and value <= bound


def ratio_at_most(bound: float) -> Callable[[float | None, float | None], bool]:
    """Target: the ratio to the baseline is at most ``bound``."""
    return lambda _value, ratio: ratio is not None and ratio <= bound


def ratio_at_least(bound: float) -> Callable[[float | None, float | None], bool]:
    """Target: the ratio to the baseline is at least ``bound``."""
    return lambda _value, ratio: ratio is not None and ratio >= bound


def verdict(rows: Sequence[Row], data: dict[str, Any], output: object) -> int:
    """Say where the raw numbers are, how many targets were missed, and whether the run broke
    off; the benchmark command's exit status (1: it broke off)."""
    print(f"raw numbers: {output}")
    missed = [row.figure for row in rows if row.ok is False]
    print(f"{len(missed)} target(s) missed" if missed else "every target met")
    if "error" in data:
        print(f"the run broke off: {data['error']}", file=sys.stderr)
        return 1
    return 0
