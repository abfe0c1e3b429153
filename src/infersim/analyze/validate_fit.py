"""Calibration of engine-profile efficiencies on measured rows: a small, bounded, physically meaningful parameter
set per (engine profile, chip), fitted by minimising the mean absolute log error of the predictions (the log-space
counterpart of the absolute percentage error validation reports, and robust to the few internally inconsistent
measurements that a squared loss lets pull every other row).

The optimiser is a compact pattern search in log space (each parameter moved by a multiplicative step up and
down; the step halves when no move helps), numpy only. Fitting reads measured values; prediction never does:
the fitted values are written to committed calibration files that prediction reads.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from infersim.analyze.validate import predict_setup
from infersim.analyze.validate_predict import Backend, Prediction
from infersim.analyze.validate_setup import Rules, Setup
from infersim.specs.engine import Efficiency

GroupKey = tuple[str, str]  # (engine profile, chip generation)


@dataclass(frozen=True)
class Param:
    field: str
    lo: float
    hi: float

    def clip(self, value: float) -> float:
        return min(max(value, self.lo), self.hi)


@dataclass(frozen=True)
class Target:
    """Measured rows of one run (the fitting side may read values; prediction may not)."""

    setup: Setup
    measured: tuple[tuple[str, float, str], ...]  # (metric, value, row id)


@dataclass(frozen=True)
class FitResult:
    key: GroupKey
    efficiency: Efficiency
    params: tuple[Param, ...]
    row_ids: tuple[str, ...]
    loss_before: float
    loss_after: float
    evaluations: int


def log_errors(pred: Prediction, target: Target) -> list[float]:
    out = []
    for metric, value, _ in target.measured:
        p = pred.metrics.get(metric)
        if p is not None and p > 0 and value > 0:
            out.append(math.log(p / value))
    return out


def group_loss(targets: Sequence[Target], backend: Backend, rules: Rules, penalty: float = 2.0) -> float:
    """Mean absolute log error over the rows of `targets`; a run that fails to predict costs `penalty` per row."""
    errs: list[float] = []
    for t in targets:
        try:
            errs += log_errors(predict_setup(t.setup, backend, rules), t)
        except Exception:  # an infeasible parameter point: penalise its rows
            errs += [penalty] * len(t.measured)
    return float(np.mean(np.abs(errs))) if errs else 0.0


def _clip(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.minimum(np.maximum(x, lo), hi)


def pattern_search(loss: Callable[[np.ndarray], float], x0: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                   step: float = math.log(1.6), min_step: float = math.log(1.02), max_evals: int = 200
                   ) -> tuple[np.ndarray, float, int]:
    """Minimise `loss` over a box in log space by coordinate moves of +-step, halving step when stuck."""
    x = _clip(x0, lo, hi)
    best, evals = loss(x), 1
    while step >= min_step and evals < max_evals:
        moved = False
        for i in range(len(x)):
            for sign in (1.0, -1.0):
                cand = x.copy()
                cand[i] = min(max(cand[i] + sign * step, lo[i]), hi[i])
                if cand[i] == x[i]:
                    continue
                val = loss(cand)
                evals += 1
                if val < best - 1e-12:
                    x, best, moved = cand, val, True
                    break
        if not moved:
            step /= 2.0
    return x, best, evals


def fit_group(key: GroupKey, targets: Sequence[Target], start: Efficiency, params: Sequence[Param],
              backend_for: Callable[[Efficiency], Backend], rules: Rules, max_evals: int = 200,
              step: float = math.log(1.6)) -> FitResult:
    """The efficiency of one (profile, generation) that best predicts `targets` within the parameter bounds."""
    lo = np.log([p.lo for p in params])
    hi = np.log([p.hi for p in params])
    x0 = np.log([p.clip(getattr(start, p.field)) for p in params])

    def eff_at(x: np.ndarray) -> Efficiency:
        return replace(start, **{p.field: float(np.exp(v)) for p, v in zip(params, x, strict=True)})

    def loss(x: np.ndarray) -> float:
        return group_loss(targets, backend_for(eff_at(x)), rules)

    before = group_loss(targets, backend_for(start), rules)
    x, after, evals = pattern_search(loss, x0, lo, hi, step=step, max_evals=max_evals)
    eff = eff_at(x) if after < before else start
    ids = tuple(sorted(i for t in targets for _, _, i in t.measured))
    return FitResult(key, _rounded(eff, params), tuple(params), ids, before, min(after, before), evals + 1)


def _rounded(eff: Efficiency, params: Sequence[Param]) -> Efficiency:
    """Four significant digits: calibration files stay readable and stable."""
    return replace(eff, **{p.field: float(f"{getattr(eff, p.field):.4g}") for p in params})


def subsample(targets: Sequence[Target], limit: int) -> list[Target]:
    """At most `limit` runs, evenly spread over the (deterministically ordered) list."""
    if len(targets) <= limit:
        return list(targets)
    idx = np.linspace(0, len(targets) - 1, limit).round().astype(int)
    return [targets[i] for i in sorted(set(idx.tolist()))]


def geometric_default(fits: Mapping[str, Efficiency], params: Sequence[Param], base: Efficiency,
                      weights: Mapping[str, float] | None = None) -> Efficiency:
    """The fitted values of `params` pooled over chips: their geometric mean, weighted by `weights` (equal when
    None), on top of `base` (`base` itself if nothing was fitted)."""
    if not fits:
        return base
    w = [weights[c] for c in fits] if weights else None
    vals = {p.field: float(np.exp(np.average([math.log(getattr(e, p.field)) for e in fits.values()], weights=w)))
            for p in params}
    return _rounded(replace(base, **vals), params)
