"""Error statistics of a validation: coverage, MAPE, median and p90 absolute percentage error, by group."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from infersim.analyze.validate_rows import LATENCY_METRICS


@dataclass(frozen=True)
class RowResult:
    line: int
    id: str
    source: str
    hardware: str
    scenario: str
    metric: str
    measured: float
    predicted: float | None
    status: str  # "ok" or "unsupported: <reason>"
    diagnosis: str = ""

    @property
    def ape(self) -> float | None:
        """Absolute percentage error (percent), None when not predicted."""
        if self.predicted is None or self.measured == 0:
            return None
        return abs(self.predicted - self.measured) / abs(self.measured) * 100.0

    @property
    def kind(self) -> str:
        return "latency" if self.metric in LATENCY_METRICS else "throughput"

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "id": self.id, "source": self.source, "hardware": self.hardware,
                "scenario": self.scenario, "metric": self.metric, "measured": self.measured,
                "predicted": self.predicted, "ape": self.ape, "status": self.status, "diagnosis": self.diagnosis}


def error_stats(apes: Sequence[float]) -> dict[str, float | int | None]:
    """n, MAPE, median APE and p90 APE (percent) of absolute percentage errors; None when empty."""
    if not apes:
        return {"n": 0, "mape": None, "median_ape": None, "p90_ape": None}
    arr = np.asarray(apes, dtype=float)
    return {"n": len(arr), "mape": float(arr.mean()), "median_ape": float(np.median(arr)),
            "p90_ape": float(np.percentile(arr, 90))}


def block(results: Sequence[RowResult]) -> dict[str, Any]:
    """Coverage and error statistics of a set of rows, overall and split into latency and throughput."""
    covered = [r for r in results if r.ape is not None]
    return {
        "rows": len(results), "covered": len(covered),
        "coverage": len(covered) / len(results) if results else None,
        "all": error_stats([r.ape for r in covered if r.ape is not None]),
        "latency": error_stats([r.ape for r in covered if r.kind == "latency" and r.ape is not None]),
        "throughput": error_stats([r.ape for r in covered if r.kind == "throughput" and r.ape is not None]),
    }


def pooled_mape(blocks: Sequence[dict[str, Any]], kind: str) -> float | None:
    """MAPE of the `kind` rows ("all", "latency" or "throughput") of several `block()`s taken together."""
    parts = [(b[kind]["n"], b[kind]["mape"]) for b in blocks if b[kind]["n"]]
    n = sum(k for k, _ in parts)
    return sum(k * m for k, m in parts) / n if n else None


def grouped(results: Iterable[RowResult], key: Callable[[RowResult], str]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[RowResult]] = {}
    for r in results:
        groups.setdefault(key(r), []).append(r)
    return {k: block(v) for k, v in sorted(groups.items())}


def summarize(results: Sequence[RowResult]) -> dict[str, Any]:
    """The validation summary: totals and the same per hardware, per source and per scenario."""
    out = block(results)
    out["by_hardware"] = grouped(results, lambda r: r.hardware)
    out["by_source"] = grouped(results, lambda r: r.source)
    out["by_scenario"] = grouped(results, lambda r: r.scenario)
    return out


def worst(results: Sequence[RowResult], n: int = 10) -> list[RowResult]:
    covered = [r for r in results if r.ape is not None]
    return sorted(covered, key=lambda r: (-(r.ape or 0.0), r.line))[:n]
