"""Error statistics of a validation: coverage, MAPE, median and p90 absolute percentage error, by group; and
the error floor of rows that repeat a configuration with different measurements."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from infersim.analyze.validate_rows import LATENCY_METRICS, RowConfig, TruthRow


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


# Scenarios whose rows depend on the step-cost layer alone (no batching policy, no arrival process).
STEP_LAYER_SCENARIOS: tuple[str, ...] = ("fixed-batch", "single-stream")


def step_layer(results: Sequence[RowResult]) -> dict[str, Any]:
    """Totals of the rows of STEP_LAYER_SCENARIOS, and the same per hardware and per source."""
    mine = [r for r in results if r.scenario in STEP_LAYER_SCENARIOS]
    out = block(mine)
    out["by_hardware"] = grouped(mine, lambda r: r.hardware)
    out["by_source"] = grouped(mine, lambda r: r.source)
    return out


def summarize(results: Sequence[RowResult]) -> dict[str, Any]:
    """The validation summary: totals and the same per hardware, per source and per scenario, and the step-cost
    layer's rows on their own (`step_layer`)."""
    out = block(results)
    out["by_hardware"] = grouped(results, lambda r: r.hardware)
    out["by_source"] = grouped(results, lambda r: r.source)
    out["by_scenario"] = grouped(results, lambda r: r.scenario)
    out["step_layer"] = step_layer(results)
    return out


def worst(results: Sequence[RowResult], n: int = 10) -> list[RowResult]:
    covered = [r for r in results if r.ape is not None]
    return sorted(covered, key=lambda r: (-(r.ape or 0.0), r.line))[:n]


@dataclass(frozen=True)
class RepeatGroup:
    """Rows whose configuration columns (metric included) are identical but whose measured values differ: no
    prediction, which reads only those columns, can tell them apart."""

    ids: tuple[str, ...]
    metric: str
    values: tuple[float, ...]

    @property
    def floor_ape(self) -> float:
        """Lowest mean APE (percent) one prediction reaches over the group; the mean is piecewise linear and
        convex in the prediction, so its minimum lies at one of the measured values."""
        return min(sum(abs(p - v) / v for v in self.values) for p in self.values) / len(self.values) * 100.0

    def note(self) -> str:
        return (f"repeated configuration: {len(self.ids)} rows with these configuration columns measured "
                f"{min(self.values):.4g}-{max(self.values):.4g}; no prediction gets below {self.floor_ape:.1f}% "
                f"mean APE on them")


def repeated_configurations(rows: Sequence[TruthRow]) -> list[RepeatGroup]:
    """Groups of rows that share every configuration column and differ in measured value, in input order.
    Reads measured values, so it feeds only the report, never a prediction."""
    by_config: dict[RowConfig, list[TruthRow]] = {}
    for r in rows:
        by_config.setdefault(r.config, []).append(r)
    return [RepeatGroup(tuple(r.measured.id for r in same), cfg.metric, tuple(r.measured.value for r in same))
            for cfg, same in by_config.items()
            if len({r.measured.value for r in same}) > 1 and all(r.measured.value > 0 for r in same)]
