"""`infersim validate`: predict every row of a measurements table and compare.

Rows that describe the same run (same configuration columns, different metric) share one prediction. Prediction
sees only `RowConfig` objects: the id, value and notes of a row never reach it (see `predict_runs`).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from infersim.analyze.validate_predict import Backend, Buckets, Prediction, choose_coster, served, static_batch
from infersim.analyze.validate_rows import RowConfig, TruthRow
from infersim.analyze.validate_setup import CLOSED_FORM_SCENARIOS, Rules, Setup, Unsupported, configure, load_rules
from infersim.analyze.validate_stats import RowResult, repeated_configurations
from infersim.catalog import Catalog

RunKey = tuple[Any, ...]
Outcome = Prediction | Unsupported


@dataclass(frozen=True)
class RunOutcome:
    setup: Setup | None
    outcome: Outcome
    diagnosis: str = ""


def predict_setup(setup: Setup, backend: Backend, rules: Rules) -> Prediction:
    """All schema metrics of one run (raises InputError when the model does not fit any allowed TP)."""
    tp, coster = choose_coster(setup, backend, rules.min_concurrent_requests)
    if setup.scenario in CLOSED_FORM_SCENARIOS:
        buckets = Buckets(setup.compiled_len, rules.min_bucket_tokens)
        return static_batch(setup, coster, tp, buckets)
    return served(setup, coster, tp, backend, rules)


def diagnose(setup: Setup, pred: Prediction) -> str:
    """One line on what dominates the prediction: parallel plan, time split, the bound of its steps, assumptions."""
    parts = [f"TP{pred.tp} x{pred.replicas} replicas"]
    b = pred.breakdown
    if "prefill_s" in b:
        share = b["prefill_s"] / max(1e-12, b["prefill_s"] + b["decode_s"])
        parts.append(f"prefill {share:.0%} of E2E")
    if "simulated_requests" in b:
        parts.append(f"{b['simulated_requests']:.0f} requests simulated per replica")
    parts += [n for n in pred.notes if n]
    parts += list(setup.assumptions)
    return "; ".join(parts)


def run_one(cfg: RowConfig, catalog: Catalog, backend: Backend, rules: Rules) -> RunOutcome:
    setup = configure(cfg, catalog, rules)
    if isinstance(setup, Unsupported):
        return RunOutcome(None, setup)
    try:
        pred = predict_setup(setup, backend, rules)
    except Exception as exc:  # a failed prediction is reported on its rows; the other runs go on
        return RunOutcome(setup, Unsupported(f"{type(exc).__name__}: {exc}"))
    return RunOutcome(setup, pred, diagnose(setup, pred))


def run_many(cfgs: Sequence[RowConfig], catalog: Catalog, backend: Backend, rules: Rules,
             progress: Callable[[int, int], None] | None = None) -> list[RunOutcome]:
    out = []
    for i, cfg in enumerate(cfgs):
        out.append(run_one(cfg, catalog, backend, rules))
        if progress:
            progress(i + 1, len(cfgs))
    return out


def run_parallel(cfgs: Sequence[RowConfig], catalog: Catalog, backend: Backend, rules: Rules,
                 workers: int) -> list[RunOutcome]:
    """Runs spread over `workers` forked processes (interleaved slices, order restored); each run is
    deterministic on its own, so the result does not depend on the split."""
    slices = [list(cfgs[i::workers]) for i in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        parts = list(pool.map(partial(run_many, catalog=catalog, backend=backend, rules=rules), slices))
    out: list[RunOutcome] = [None] * len(cfgs)  # type: ignore[list-item]
    for i, part in enumerate(parts):
        out[i::workers] = part
    return out


def predict_runs(configs: Sequence[RowConfig], catalog: Catalog, backend: Backend,
                 rules: Rules | None = None, progress: Callable[[int, int], None] | None = None,
                 workers: int = 1) -> dict[RunKey, RunOutcome]:
    """One prediction per distinct run among `configs` (configuration columns only)."""
    rules = rules or load_rules()
    firsts: dict[RunKey, RowConfig] = {}
    for cfg in configs:
        firsts.setdefault(cfg.run_key(), cfg)
    cfgs = list(firsts.values())
    if workers > 1 and len(cfgs) >= 4 * workers:
        outcomes = run_parallel(cfgs, catalog, backend, rules, workers)
    else:
        outcomes = run_many(cfgs, catalog, backend, rules, progress)
    return dict(zip(firsts, outcomes, strict=True))


def row_result(row: TruthRow, run: RunOutcome) -> RowResult:
    cfg, m = row.config, row.measured
    base = dict(line=m.line, id=m.id, source=cfg.source, hardware=cfg.hardware, scenario=cfg.scenario,
                metric=cfg.metric, measured=m.value)
    if isinstance(run.outcome, Unsupported):
        return RowResult(**base, predicted=None, status=f"unsupported: {run.outcome.reason}")
    value = run.outcome.metrics.get(cfg.metric)
    if value is None:
        return RowResult(**base, predicted=None, status=f"unsupported: metric {cfg.metric} not predicted "
                                                        f"for scenario {cfg.scenario}")
    return RowResult(**base, predicted=float(value), status="ok", diagnosis=run.diagnosis)


def validate_rows(rows: Sequence[TruthRow], catalog: Catalog, backend: Backend, rules: Rules | None = None,
                  progress: Callable[[int, int], None] | None = None, workers: int = 1) -> list[RowResult]:
    """Predicted vs measured for every row, in input order."""
    runs = predict_runs([r.config for r in rows], catalog, backend, rules, progress, workers)
    notes = inconsistencies(rows, runs)
    for group in repeated_configurations(rows):
        for rid in group.ids:
            notes[rid] = "; ".join(filter(None, (notes.get(rid), group.note())))
    return [_noted(row_result(r, runs[r.config.run_key()]), notes.get(r.measured.id, "")) for r in rows]


def _noted(result: RowResult, note: str) -> RowResult:
    return replace(result, diagnosis=f"{note}; {result.diagnosis}") if note and result.status == "ok" else result


def inconsistencies(rows: Sequence[TruthRow], runs: Mapping[RunKey, RunOutcome]) -> dict[str, str]:
    """Report-only notes (row id -> text) on closed-form runs whose published throughput disagrees by more than a
    third with batch x output / (TTFT + (output - 1) x TPOT) from the same run's published latencies: such
    measurements contradict each other, and no prediction can match all of them. Reads measured values, so it is
    computed after prediction and feeds only the diagnosis text."""
    by_run: dict[RunKey, dict[str, float]] = {}
    for r in rows:
        by_run.setdefault(r.config.run_key(), {})[r.config.metric] = r.measured.value
    notes = {}
    for r in (r for r in rows if r.config.metric == "output_throughput"):
        cfg = r.config
        implied = _implied_throughput(cfg, by_run[cfg.run_key()], runs[cfg.run_key()].outcome)
        if implied and not 0.75 <= r.measured.value / implied <= 4 / 3:
            notes[r.measured.id] = (f"inconsistent measurements: published throughput is "
                                    f"{r.measured.value / implied:.2f}x the {implied:.4g} tok/s that the run's own "
                                    f"TTFT and TPOT imply")
    return notes


def _implied_throughput(cfg: RowConfig, measured: Mapping[str, float], outcome: Outcome) -> float | None:
    ttft = measured.get("ttft_p50", measured.get("ttft_mean"))
    tpot = measured.get("tpot_mean", measured.get("tpot_p50"))
    if cfg.scenario not in CLOSED_FORM_SCENARIOS or not isinstance(outcome, Prediction) or not ttft or not tpot \
            or cfg.output_len is None:
        return None
    e2e_s = (ttft + (cfg.output_len - 1) * tpot) / 1e3
    return outcome.replicas * (cfg.batch or 1) * cfg.output_len / e2e_s


def filter_rows(rows: Sequence[TruthRow], source: str | None, hardware: str | None) -> list[TruthRow]:
    return [r for r in rows if (source is None or r.config.source == source)
            and (hardware is None or r.config.hardware == hardware)]
