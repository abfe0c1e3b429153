"""The search's view of the real layers: the cost layer's step model and the serving simulator.

`LayersBackend` is a frozen, picklable description (catalog folders, model, workload or trace, engine, seed,
chip overrides for what-if runs); worker processes rebuild the catalog from it. One simulated load point serves
one replica: with `replicas` copies behind a router that splits a Poisson stream at random, each replica sees a
Poisson stream of rate / replicas, so the instance's figures are one replica's times `replicas` (a random split
is conservative: a least-outstanding router does a little better).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from infersim.analyze.search import Binding, Bound, Config, Probe, Slo
from infersim.catalog import Catalog, load_catalog
from infersim.catalog.engines import load_engine
from infersim.cost.device import make_device
from infersim.cost.step import DEFAULT_ENGINE, StepCostModel, step_model
from infersim.errors import InputError
from infersim.graph.batch import decode
from infersim.serve import metrics
from infersim.serve.policies import Policy, policy_for
from infersim.serve.quantize import QuantizedCoster
from infersim.serve.simulator import SimResult, simulate
from infersim.serve.trace_io import read_trace
from infersim.serve.workload import Workload, preset
from infersim.specs.chip import Chip
from infersim.specs.engine import EngineProfile
from infersim.specs.instance import Instance

GRID_PER_OCTAVE = 16  # mixed prefill steps costed on token counts rounded up by at most 1/16 (serve.quantize)
KV_FULL = 0.8  # a mean decode batch holding this share of the KV cache makes memory capacity the binding resource
LENGTH_SAMPLE = 4000  # requests drawn to estimate a preset's mean lengths (the bound's inputs)
BOUND_NAMES = {"compute": "compute", "vector": "compute", "memory": "HBM bandwidth", "link": "interconnect",
               "latency": "interconnect", "overhead": "overhead"}


@dataclass(frozen=True)
class LayersBackend:
    model: str = "llama-3.1-8b"
    workload: str = "chat"
    trace: str | None = None
    engine_name: str | None = None  # None: the default engine of each chip family
    seed: int = 0
    catalog_dirs: tuple[str, ...] = ()
    overrides: tuple[Chip, ...] = ()  # what-if chips replacing catalog chips of the same name
    slo: Slo = field(default_factory=Slo)

    # ----- catalog -----
    @functools.cached_property
    def catalog(self) -> Catalog:
        cat = load_catalog(self.catalog_dirs)
        if not self.overrides:
            return cat
        return replace(cat, chips={**cat.chips, **{c.name: c for c in self.overrides}})

    def with_chip(self, chip: Chip) -> LayersBackend:
        return replace(self, overrides=(*[c for c in self.overrides if c.name != chip.name], chip))

    def chip(self, inst: Instance) -> Chip:
        return self.catalog.chip(inst.chip)

    @functools.cached_property
    def _engines(self) -> dict[str, EngineProfile]:
        return {}

    def profile(self, name: str) -> EngineProfile:
        if name not in self._engines:
            self._engines[name] = load_engine(self.catalog, name)
        return self._engines[name]

    def engine(self, inst: Instance) -> EngineProfile:
        return self.profile(self.engine_for(self.chip(inst)))

    def engine_for(self, chip: Chip) -> str:
        """The chosen engine where it runs on this chip family, else the family's default."""
        if self.engine_name:
            prof = self.profile(self.engine_name)
            if chip.family in prof.families:
                return self.engine_name
        return DEFAULT_ENGINE.get(chip.family, "")

    def units(self, inst: Instance) -> int:
        """TP ranks the instance offers: chips x (NeuronCores / LNC) on Neuron, chips elsewhere."""
        chip = self.chip(inst)
        return inst.chips * make_device(chip, self.engine(inst).cores_per_rank(chip.generation)).ranks_per_chip

    # ----- workload -----
    @functools.cached_property
    def _trace(self) -> Workload | None:
        if self.trace is None:
            return None
        if not Path(self.trace).exists():
            raise InputError(f"{self.trace}: trace file not found")
        return read_trace(Path(self.trace))

    def mean_lengths(self) -> tuple[float, float]:
        w = self._trace or preset(self.workload).generate(LENGTH_SAMPLE, np.random.default_rng(self.seed))
        return float(np.mean(w.input_tokens)), float(np.mean(w.output_tokens))

    def requests(self, rate_rps: float, n: int) -> Workload:
        """`n` requests of one replica's share of the load, `rate_rps` requests/s."""
        rng = np.random.default_rng(self.seed)
        if self._trace is None:
            return preset(self.workload).with_rate(qps=rate_rps).generate(n, rng)
        w = self._trace
        span = float(w.arrival_s[-1] - w.arrival_s[0]) or 1.0
        scaled = replace(w, arrival_s=(w.arrival_s - w.arrival_s[0]) * (w.n / span) / rate_rps)
        return scaled.take(min(n, w.n))

    # ----- cost and simulation -----
    @functools.cached_property
    def _memo(self) -> dict[tuple, object]:
        """Step models and runs shared by instance sizes with the same replica (this process only)."""
        return {}

    def replica_key(self, inst: Instance, cfg: Config) -> tuple:
        """What a replica's step cost depends on: the chip, engine and configuration, and the instance's chip
        topology only when the replica spans several chips."""
        chip = self.chip(inst)
        per_chip = self.units(inst) // inst.chips
        topo = (inst.topology,) if cfg.tp > per_chip else ()
        return (chip.name, self.engine_for(chip), cfg.tp, cfg.weights, cfg.kv, *topo)

    def coster(self, inst: Instance, cfg: Config) -> ReplicaCoster:
        key = ("coster", *self.replica_key(inst, cfg))
        if key not in self._memo:
            try:
                sm = step_model(self.catalog, self.model, inst.name, tp=cfg.tp, weights=cfg.weights, kv=cfg.kv,
                                engine=self.engine_for(self.chip(inst)))
            except InputError as exc:
                self._memo[key] = exc
                raise
            self._memo[key] = ReplicaCoster(sm)
        got = self._memo[key]
        if isinstance(got, InputError):
            raise got
        return got  # type: ignore[return-value]

    def policy(self, inst: Instance, cfg: Config) -> Policy:
        return policy_for(self.engine(inst), cfg.batching, max_batch=cfg.max_batch)

    def run(self, inst: Instance, cfg: Config, coster: ReplicaCoster, rate_rps: float, requests: int,
            energy: bool = False) -> Probe:
        """Every run costs energy (it comes with the step time), so `energy` needs no run of its own."""
        key = ("run", *self.replica_key(inst, cfg), cfg.batching, cfg.max_batch, rate_rps, requests)
        if key not in self._memo:
            res = simulate(self.requests(rate_rps, requests), coster, self.policy(inst, cfg))
            self._memo[key] = probe(res, rate_rps, self.slo)
        return self._memo[key]  # type: ignore[return-value]

    def explain(self, inst: Instance, cfg: Config, coster: ReplicaCoster, bound: Bound, point: Probe) -> Binding:
        return explain(coster.sm, bound, self.mean_lengths(), point, self.slo)


class ReplicaCoster(QuantizedCoster):
    """What the search simulates one replica with: the step model on the serve layer's shape grid. The step
    model prices a step's time and energy together, so one grid serves the probes and the chosen point."""

    def __init__(self, sm: StepCostModel) -> None:
        super().__init__(sm, GRID_PER_OCTAVE)
        self.sm = sm


def probe(res: SimResult, rate_rps: float, slo: Slo) -> Probe:
    """One replica's load point from its run. Rates are steady-state: the replica serves `rate_rps` requests/s
    (a load meeting the SLOs is sustainable), so output tokens/s = rate x mean output tokens, goodput = rate x the
    share of requests meeting every SLO, and the mean decode batch = rate x mean decode time (Little's law);
    dividing run totals by the run's span would count the drain after the last arrival as serving time.
    Energy and tokens are run totals (their ratio, tokens per joule, includes the drain: slightly pessimistic)."""
    done = metrics.completed(res)
    span = metrics.span_s(res)
    energy = metrics.energy_j([r.busy_s for r in res.replicas], [r.energy_j for r in res.replicas],
                              [r.idle_power_w for r in res.replicas], span)
    ok = metrics.meets_slo(res, metrics.SLO(slo.ttft_p99_s * 1e3, slo.tpot_p99_s * 1e3))
    out = int(np.sum(res.output_tokens[done]))
    decode_s = float(np.mean(res.finish_s[done] - res.first_token_s[done]))
    return Probe(rate_rps, metrics.percentile(metrics.ttft_s(res), 99), _p99_or_zero(metrics.tpot_s(res)),
                 rate_rps * float(np.mean(ok)), rate_rps * out / max(int(np.count_nonzero(done)), 1), energy, span,
                 out, int(np.count_nonzero(done)), rate_rps * decode_s)


def _p99_or_zero(x: np.ndarray) -> float:
    """p99 of TPOT; 0 when every request produced a single token (there is no TPOT to miss)."""
    return metrics.percentile(x, 99) if len(x) else 0.0


def _context(lengths: tuple[float, float]) -> int:
    return max(1, round(lengths[0] + lengths[1] / 2))


def explain(sm: StepCostModel, bound: Bound, lengths: tuple[float, float], point: Probe, slo: Slo) -> Binding:
    """What bounds the configuration at the load point: memory capacity when the KV cache is nearly full at the
    mean decode batch, else the resource that takes most of a decode step at that batch; with the step's
    breakdowns by op class and engine and the memory plan, for the report."""
    batch, context = max(1, round(point.decode_batch_mean) or bound.batch), _context(lengths)
    step = sm.cost(decode(batch, context))
    by_resource: dict[str, float] = {}
    for oc in step.ops:
        name = BOUND_NAMES.get(oc.cost.bound, oc.cost.bound)
        by_resource[name] = by_resource.get(name, 0.0) + oc.cost.seconds
    total = step.total.seconds or 1e-12
    kv_use = batch * context / max(sm.kv_capacity_tokens, 1)
    resource = "memory capacity" if kv_use >= KV_FULL else max(sorted(by_resource), key=by_resource.__getitem__)
    numbers = {"batch": float(batch), "step_ms": total * 1e3, "kv_capacity_tokens": float(sm.kv_capacity_tokens),
               "kv_in_use": kv_use, "hbm_GB_per_s": step.total.bytes * sm.parallel.ranks / total / 1e9,  # per rank
               "hbm_peak_GB_per_s": sm.device.hbm_bytes_per_s * sm.parallel.ranks / 1e9,
               **{f"share.{k}": v / total for k, v in sorted(by_resource.items())}}
    note = (f"at this load TTFT p99 is {point.ttft_p99_s / slo.ttft_p99_s:.0%} and TPOT p99 "
            f"{point.tpot_p99_s / slo.tpot_p99_s:.0%} of the SLOs")
    classes = step.by_class()
    return Binding(resource, numbers, note, {k: c.seconds for k, c in classes.items()},
                   {k: c.joules for k, c in classes.items()}, dict(step.total.engines), memory_per_chip(sm))


def memory_per_chip(sm: StepCostModel) -> dict[str, float]:
    m, per = sm.memory, sm.device.ranks_per_chip
    return {"weights": m.weight_bytes * per, "activations": m.activation_bytes * per, "KV cache": m.kv_bytes * per,
            "runtime reserve": (m.capacity_bytes - m.usable_bytes) * per}
