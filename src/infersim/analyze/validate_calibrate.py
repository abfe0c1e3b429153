"""Calibration over a whole measurements table: targets per (engine profile, chip), one fit per group, the
per-generation and profile-wide "*" fallbacks, and leave-one-source-out / leave-one-hardware-out
cross-validation.

Used by `calibration/fit.py`; the backend is any object with `with_efficiency(profile, key, eff)` (the real one is
`validate_backend.CatalogBackend` on an uncalibrated catalog). A key is a chip name, a chip generation or "*":
the step model looks a chip's efficiency up in that order.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Protocol

from infersim.analyze.validate import predict_setup
from infersim.analyze.validate_fit import (
    FitResult,
    GroupKey,
    Param,
    Target,
    fit_group,
    geometric_default,
    group_loss,
    subsample,
)
from infersim.analyze.validate_predict import Backend
from infersim.analyze.validate_rows import TruthRow
from infersim.analyze.validate_setup import CLOSED_FORM_SCENARIOS, Rules, Setup, configure
from infersim.analyze.validate_stats import RowResult, block
from infersim.catalog import Catalog
from infersim.specs.chip import Chip
from infersim.specs.engine import EFFICIENCY_FIELDS, Efficiency

# The fitted parameters per chip family: few, bounded, each with a physical meaning.
PARAMS: dict[str, tuple[Param, ...]] = {
    "neuron": (Param("hbm", 0.15, 0.95), Param("matmul", 0.05, 0.95), Param("attention", 0.02, 0.9),
               Param("kv_read", 0.03, 0.95), Param("collective_latency_s", 1e-6, 1e-4),
               Param("step_overhead_s", 1e-5, 2e-2), Param("prefill_overhead_s", 1e-4, 5e-2),
               Param("kv_row_half_bytes", 16.0, 4096.0), Param("overlap", 0.01, 1.0)),
    "gpu": (Param("hbm", 0.3, 0.95), Param("matmul", 0.1, 0.95), Param("kv_read", 0.05, 0.95),
            Param("op_overhead_s", 1e-7, 2e-5), Param("step_overhead_s", 1e-5, 2e-2)),
    "tpu": (Param("hbm", 0.3, 0.95), Param("matmul", 0.1, 0.95), Param("step_overhead_s", 1e-5, 2e-2)),
}


# A simulated group with more runs than this is first searched on this many of them (evenly spread), then refined on
# all: the coarse search affords more evaluations, the refinement sees every run.
COARSE_RUNS = 24
# Coarse searches of such a group, one from each of this many best grid starts: the loss of a large serving group
# has more than one basin, and a single search ended in whichever its start fell into (a small graph change moved
# trtllm-0.17 on h100-sxm from MALE 0.080 to 0.090 though the old point still reached 0.081).
COARSE_STARTS = 2
# Fitted only on groups that hold MoE models: grouped expert GEMMs against dense ones (Efficiency.moe).
MOE_PARAM = Param("moe", 0.15, 1.0)
# Fitted only on groups with client-measured latencies of served runs (offline / server TTFT, ITL, E2E): the
# serving frontend's share of them (Efficiency.frontend_s).
FRONTEND_PARAM = Param("frontend_s", 1e-4, 0.05)
SERVED_LATENCY = ("ttft", "itl", "e2e")


class TunableBackend(Backend, Protocol):
    def with_efficiency(self, profile: str, key: str, eff: Efficiency) -> TunableBackend: ...

    def base_efficiency(self, profile: str, key: str) -> Efficiency: ...


@dataclass(frozen=True)
class Group:
    key: GroupKey  # (engine profile, chip name)
    family: str
    generation: str
    targets: tuple[Target, ...]
    rows: tuple[tuple[str, str], ...]  # (source, hardware) of each target, same order
    moe: bool = False  # some target runs an MoE model
    served_latency: bool = False  # some offline / server target measures a client-side latency

    @property
    def params(self) -> tuple[Param, ...]:
        return PARAMS[self.family] + ((MOE_PARAM,) if self.moe else ()) + \
            ((FRONTEND_PARAM,) if self.served_latency else ())


def build_groups(rows: Sequence[TruthRow], catalog: Catalog, rules: Rules) -> dict[GroupKey, Group]:
    """Targets (one per run, with its measured rows) grouped by (engine profile, chip)."""
    runs: dict[tuple[Any, ...], tuple[Setup, list[tuple[str, float, str]], tuple[str, str]]] = {}
    for r in rows:
        setup = configure(r.config, catalog, rules)
        if not isinstance(setup, Setup):
            continue
        entry = runs.setdefault(r.config.run_key(), (setup, [], (r.config.source, r.config.hardware)))
        entry[1].append((r.config.metric, r.measured.value, r.measured.id))
    groups: dict[GroupKey, list[tuple[Target, tuple[str, str]]]] = {}
    for setup, measured, origin in runs.values():
        key = (setup.profile, setup.chip)
        groups.setdefault(key, []).append((Target(setup, tuple(measured)), origin))
    return {k: Group(k, catalog.chips[k[1]].family, catalog.chips[k[1]].generation, tuple(t for t, _ in v),
                     tuple(o for _, o in v), any(catalog.model(t.setup.model).moe is not None for t, _ in v),
                     any(_served_latency(t) for t, _ in v))
            for k, v in sorted(groups.items())}


def _served_latency(t: Target) -> bool:
    served = t.setup.scenario not in CLOSED_FORM_SCENARIOS
    return served and any(m.startswith(SERVED_LATENCY) for m, _, _ in t.measured)


def without(group: Group, drop: Callable[[tuple[str, str]], bool]) -> Group:
    keep = [i for i, o in enumerate(group.rows) if not drop(o)]
    return replace(group, targets=tuple(group.targets[i] for i in keep), rows=tuple(group.rows[i] for i in keep))


def fit_one(group: Group, backend: TunableBackend, rules: Rules, max_runs: int, max_evals: int,
            log: Callable[[str], None] = print) -> FitResult:
    """The group's fit, searched from `grid_starts`: closed-form groups get a wide search with five times the
    evaluations; simulated groups of at most COARSE_RUNS runs twice the evaluations; larger ones a coarse search
    on COARSE_RUNS runs (evenly spread) from each of the COARSE_STARTS best grid points, the one that ends best
    on every run refined there with a finer first step."""
    profile, chip = group.key
    start = backend.base_efficiency(profile, chip)

    def backend_for(eff: Efficiency) -> Backend:
        return backend.with_efficiency(profile, chip, eff)

    closed = [t for t in group.targets if t.setup.scenario in CLOSED_FORM_SCENARIOS]
    simulated = [t for t in group.targets if t.setup.scenario not in CLOSED_FORM_SCENARIOS]
    targets = closed + subsample(simulated, max_runs)  # closed-form runs are cheap: all of them

    def search(on: list[Target], begin: Efficiency, evals: int, step: float) -> FitResult:
        return fit_group(group.key, on, begin, group.params, backend_for, rules, evals, math.log(step))

    first = targets if len(simulated) <= COARSE_RUNS else closed + subsample(simulated, COARSE_RUNS)
    ranked, grid_evals = grid_starts(first, start, group.params, backend_for, rules)
    if not simulated:
        fit = search(targets, ranked[0], 5 * max_evals, 4.0)
    elif len(simulated) <= COARSE_RUNS:
        fit = search(targets, ranked[0], 2 * max_evals, 1.6)
    else:
        coarse = [search(first, begin, 2 * max_evals, 1.6) for begin in ranked[:COARSE_STARTS]]
        best = min(coarse, key=lambda c: group_loss(targets, backend_for(c.efficiency), rules))  # on every run
        fit = search(targets, best.efficiency, max_evals * 3 // 5, 1.25)
        grid_evals += sum(c.evaluations + 1 for c in coarse)
    fit = _refined(fit, start, group_loss(targets, backend_for(start), rules), grid_evals)
    log(f"fitted {fit.key}: {len(fit.row_ids)} rows, MALE {fit.loss_before:.4f} -> {fit.loss_after:.4f}")
    return fit


# The search starts from the best point of this grid over (matmul, hbm), the two efficiencies behind most step
# times, or from the engine defaults when none beats them: a pattern search from the defaults alone stalls where
# a group's loss is jagged (server-run latencies near saturation swing with every small move). A large serving
# group's coarse searches start from its COARSE_STARTS best points.
START_GRID = (0.35, 0.6, 0.9)


def grid_starts(on: Sequence[Target], start: Efficiency, params: Sequence[Param],
                backend_for: Callable[[Efficiency], Backend], rules: Rules) -> tuple[list[Efficiency], int]:
    """The engine defaults and the distinct START_GRID points, best first (ties keep the defaults ahead), and the
    evaluations spent ranking them; the defaults alone when the group does not fit matmul and hbm."""
    bounds = {p.field: p for p in params}
    if not {"matmul", "hbm"} <= bounds.keys():
        return [start], 0
    mm, hb = bounds["matmul"], bounds["hbm"]
    cands = list(dict.fromkeys([start] + [replace(start, matmul=mm.clip(m), hbm=hb.clip(h))
                                          for m in START_GRID for h in START_GRID]))
    losses = [group_loss(on, backend_for(e), rules) for e in cands]
    order = sorted(range(len(cands)), key=lambda i: (losses[i], i))
    return [cands[i] for i in order], len(cands)


def _refined(fine: FitResult, start: Efficiency, start_loss: float, earlier_evals: int) -> FitResult:
    """A fit reported against the engine defaults (kept when the search ended no better than them), counting the
    evaluations of the grid start and of a coarse search before it."""
    evals = fine.evaluations + earlier_evals + 1
    if start_loss <= fine.loss_after:
        return replace(fine, efficiency=start, loss_before=start_loss, loss_after=start_loss, evaluations=evals)
    return replace(fine, loss_before=start_loss, evaluations=evals)


def fit_all(groups: Mapping[GroupKey, Group], backend: TunableBackend, rules: Rules, max_runs: int = 40,
            max_evals: int = 150, log: Callable[[str], None] = lambda s: None, workers: int = 1
            ) -> dict[GroupKey, FitResult]:
    """One fit per non-empty group (groups are independent: spread over `workers` forked processes)."""
    todo = [g for g in groups.values() if g.targets]
    fit = partial(fit_one, backend=backend, rules=rules, max_runs=max_runs, max_evals=max_evals, log=log)
    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            results = list(pool.map(fit, todo))
    else:
        results = [fit(g) for g in todo]
    return {r.key: r for r in results}


def defaults(fits: Mapping[GroupKey, FitResult], groups: Mapping[GroupKey, Group], backend: TunableBackend,
             chips: Mapping[str, Chip]) -> dict[GroupKey, Efficiency]:
    """Fallbacks for chips without a fit of their own, per profile: each catalog chip of a fitted generation gets
    the fitted chips of its generation, weighted by how alike their specs are (`kin_weights`); each fitted
    generation and "*" get, per parameter, the plain geometric mean over the fitted chips (of that generation; of
    the profile) that fitted it, for chips the catalog does not know yet or whose generation has no fit."""
    out: dict[GroupKey, Efficiency] = {}
    for profile in sorted({p for p, _ in fits}):
        mine = {c: f for (p, c), f in fits.items() if p == profile}
        gens = {c: groups[(profile, c)].generation for c in mine}
        for key in [*sorted(set(gens.values()) - set(mine)), "*"]:
            members = {c: f for c, f in mine.items() if key in ("*", gens[c])}
            out[(profile, key)] = _mean_efficiency(members, backend.base_efficiency(profile, key))
        for name, chip in sorted(chips.items()):
            kin = fitted_kin(chip, mine, chips)
            if name not in mine and kin:
                start = backend.base_efficiency(profile, name)
                out[(profile, name)] = _mean_efficiency({c: mine[c] for c in kin}, start, kin_weights(chip, kin))
    return out


def fitted_kin(chip: Chip, fitted: Iterable[str], chips: Mapping[str, Chip]) -> dict[str, Chip]:
    """The fitted catalog chips of `chip`'s generation, by name."""
    return {c: chips[c] for c in fitted if c in chips and chips[c].generation == chip.generation}


def spec_distance(a: Chip, b: Chip) -> float:
    """How unlike two chips are: the Euclidean distance between their (log dense bf16 FLOP/s, log HBM bandwidth,
    log TDP), the roofline's two rates and the power envelope that caps the clocks under load."""
    def point(c: Chip) -> tuple[float, float, float]:
        return math.log(c.peak("bf16")), math.log(c.hbm_bytes_per_s), math.log(c.power.tdp_w)
    return math.dist(point(a), point(b))


def kin_weights(chip: Chip, kin: Mapping[str, Chip]) -> dict[str, float]:
    """Weights (summing to 1) of fitted chips for a chip without a fit: inverse squared spec distance (Shepard's
    interpolation), so an SXM H200 leans on the SXM H100 more than on the 350 W PCIe card; chips with the same
    specs as `chip` share all the weight."""
    dist = {name: spec_distance(chip, c) for name, c in sorted(kin.items())}
    twins = [name for name, d in dist.items() if d == 0.0]
    raw = {name: 1.0 for name in twins} if twins else {name: d ** -2 for name, d in dist.items()}
    total = sum(raw.values())
    return {name: w / total for name, w in raw.items()}


def _mean_efficiency(fits: Mapping[str, FitResult], start: Efficiency,
                     weights: Mapping[str, float] | None = None) -> Efficiency:
    for param in dict.fromkeys(q for f in fits.values() for q in f.params):
        having = {c: f.efficiency for c, f in fits.items() if param in f.params}
        start = geometric_default(having, (param,), start, weights)
    return start


def apply(backend: TunableBackend, effs: Mapping[GroupKey, Efficiency]) -> TunableBackend:
    for (profile, gen), eff in effs.items():
        backend = backend.with_efficiency(profile, gen, eff)
    return backend


def predict_targets(targets: Sequence[Target], origins: Sequence[tuple[str, str]], backend: Backend,
                    rules: Rules) -> list[RowResult]:
    out = []
    for t, (source, hw) in zip(targets, origins, strict=True):
        try:
            metrics = predict_setup(t.setup, backend, rules).metrics
        except Exception:
            metrics = {}
        out += [RowResult(0, rid, source, hw, t.setup.scenario, m, v, metrics.get(m),
                          "ok" if m in metrics else "unsupported") for m, v, rid in t.measured]
    return out


@dataclass(frozen=True)
class HeldOut:
    kind: str  # "source" | "hardware"
    name: str
    cross_validated: dict[str, Any]  # block() of the held-out rows predicted after refitting without them
    in_sample: dict[str, Any]  # block() of the same rows with the full fit
    # block() of the cross-validated rows without the latencies of server runs: an arrival rate set just under
    # the system's capacity (MLPerf server) makes those latencies ~ step / (1 - utilisation), so a few per cent of
    # capacity error on an unseen chip changes them several-fold; this column shows what the rest carries
    without_server_latency: dict[str, Any] = field(default_factory=dict)


def cross_validate(kind: str, name: str, groups: Mapping[GroupKey, Group], full: Mapping[GroupKey, FitResult],
                   backend: TunableBackend, rules: Rules, fit_rules: Rules, max_runs: int, max_evals: int,
                   chips: Mapping[str, Chip], workers: int = 1) -> HeldOut:
    """Refit every group holding rows of the held-out source or chip without them, then predict those rows."""
    idx = 0 if kind == "source" else 1
    affected = {k: g for k, g in groups.items() if any(o[idx] == name for o in g.rows)}
    refits = {k: f for k, f in full.items() if k not in affected}
    refits.update(fit_all({k: without(g, lambda o: o[idx] == name) for k, g in affected.items()}, backend,
                          fit_rules, max_runs, max_evals, workers=workers))
    effs = {k: f.efficiency for k, f in refits.items()}
    cv_backend = apply(backend, {**defaults(refits, groups, backend, chips), **effs})
    full_effs = {k: f.efficiency for k, f in full.items()}
    full_backend = apply(backend, {**defaults(full, groups, backend, chips), **full_effs})
    held = [without(g, lambda o: o[idx] != name) for g in affected.values()]
    targets = [t for g in held for t in g.targets]
    origins = [o for g in held for o in g.rows]
    predicted = predict_targets(targets, origins, cv_backend, rules)
    queue_free = [r for r in predicted if not (r.scenario == "server" and r.kind == "latency")]
    return HeldOut(kind, name, block(predicted), block(predict_targets(targets, origins, full_backend, rules)),
                   block(queue_free))


def _num(x: float) -> float:
    return float(f"{x:.4g}")


def calibration_doc(profile: str, fits: Mapping[GroupKey, FitResult], fallbacks: Mapping[str, Efficiency],
                    script: str, chips: Mapping[str, Chip]) -> dict[str, Any]:
    """The catalog calibration file of one profile: fitted fields by chip, the fallbacks (`defaults`: chips of a
    fitted generation by their kin, generations and "*" by geometric means of the fitted chips), provenance."""
    params = [p.field for p in dict.fromkeys(q for f in fits.values() for q in f.params)]
    star = fallbacks.get("*", Efficiency())
    eff = {c: _differing(f.efficiency, star, [p.field for p in f.params]) for (_, c), f in fits.items()}
    prov = {c: f"fitted by {script} on {len(f.row_ids)} rows of data/truth/truth_dev.csv (MALE "
               f"{f.loss_before:.4f} -> {f.loss_after:.4f}); row ids in calibration/records/{profile}.yaml"
            for (_, c), f in fits.items()}
    for key, e in fallbacks.items():
        if key in chips:  # the loader merges a chip entry over "*"
            eff[key] = _differing(e, star, params)
            prov[key] = _kin_provenance(chips[key], fitted_kin(chips[key], [c for _, c in fits], chips), script)
        else:
            eff[key] = {f: _num(getattr(e, f)) for f in params}
            prov[key] = f"geometric mean of the fitted chips{'' if key == '*' else ' of generation ' + key} by {script}"
    return {"efficiency": eff, "provenance": prov}


def _kin_provenance(chip: Chip, kin: Mapping[str, Chip], script: str) -> str:
    shares = ", ".join(f"{c} {w:.2f}" for c, w in sorted(kin_weights(chip, kin).items(), key=lambda x: -x[1]))
    return (f"no fit of its own: geometric mean of the fitted {chip.generation} chips weighted {shares} (inverse "
            f"squared distance of log dense bf16 FLOP/s, HBM bandwidth and TDP) by {script}")


def _differing(eff: Efficiency, star: Efficiency, fitted: list[str]) -> dict[str, float]:
    """The fitted fields, plus every other field that differs from the profile's "*" (the loader merges a chip
    entry over "*", not over the chip's generation)."""
    keep = [f for f in EFFICIENCY_FIELDS if f in fitted or getattr(eff, f) != getattr(star, f)]
    return {f: _num(getattr(eff, f)) for f in keep}


def record_doc(profile: str, fits: Mapping[GroupKey, FitResult], script: str) -> dict[str, Any]:
    """What each fit used: bounds, losses, evaluations and the ids of the rows it was fitted on."""
    return {"profile": profile, "generated_by": script, "data": "data/truth/truth_dev.csv",
            "chips": {c: {"bounds": {p.field: [p.lo, p.hi] for p in f.params},
                                "male_before": round(f.loss_before, 6), "male_after": round(f.loss_after, 6),
                                "evaluations": f.evaluations, "fitted_on": list(f.row_ids)}
                            for (_, c), f in fits.items()}}
