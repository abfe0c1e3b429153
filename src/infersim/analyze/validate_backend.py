"""The real backend of validation: catalog engine profiles (calibration merged), the cost layer's step model and
the serving simulator. `with_efficiency` swaps one (profile, chip or generation) efficiency for calibration; step models
are cached per configuration and efficiency in a bounded (least recently used) cache the derived backends share.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np

from infersim.analyze.validate_setup import Setup
from infersim.analyze.validate_tuning import bench_limits
from infersim.catalog import Catalog
from infersim.catalog.engines import load_engine
from infersim.cost.step import StepCostModel, resolve_hw
from infersim.errors import InputError
from infersim.graph.numerics import resolve_numerics
from infersim.graph.shard import Parallel, check_parallel
from infersim.serve.policies import Policy, policy_for
from infersim.serve.quantize import QuantizedCoster
from infersim.serve.simulator import SimResult, simulate
from infersim.serve.workload import LogNormal, Poisson, Workload
from infersim.specs.engine import Efficiency, EngineProfile

SEED = 20240601  # one fixed seed: validation output is byte-identical run to run
Override = Mapping[tuple[str, str], Efficiency]  # (profile, chip / generation / "*") -> efficiency
K = TypeVar("K")
V = TypeVar("V")


CACHE_ENTRIES = 256  # per cache: more than the (model, chip, TP, dtype) configurations of one efficiency


class Lru(OrderedDict[K, V]):
    """A dict that keeps its `limit` most recently used entries. Calibration tries hundreds of efficiencies and
    never returns to most of them: unbounded, their step models (with their step caches) held gigabytes."""

    def __init__(self, limit: int = CACHE_ENTRIES) -> None:  # a default: worker processes unpickle it
        super().__init__()
        self.limit = limit

    def get_or_build(self, key: K, build: Callable[[], V]) -> V:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = build()
        if len(self) > self.limit:
            self.popitem(last=False)
        return value


@dataclass
class Caches:
    profiles: Lru[tuple[str, tuple], EngineProfile] = field(default_factory=Lru)
    costers: Lru[tuple, StepCostModel] = field(default_factory=Lru)
    quantized: Lru[tuple, QuantizedCoster] = field(default_factory=Lru)  # keys of `costers`


@dataclass
class CatalogBackend:
    catalog: Catalog
    overrides: Override = field(default_factory=dict)
    caches: Caches = field(default_factory=Caches)

    def with_efficiency(self, profile: str, key: str, eff: Efficiency) -> CatalogBackend:
        """This backend with `eff` for one (profile, chip name / generation / "*")."""
        return CatalogBackend(self.catalog, {**self.overrides, (profile, key): eff}, self.caches)

    def profile(self, name: str) -> EngineProfile:
        mine = tuple(sorted((g, e) for (p, g), e in self.overrides.items() if p == name))
        def build() -> EngineProfile:
            base = load_engine(self.catalog, name)
            return replace(base, efficiency={**base.efficiency, **dict(mine)}) if mine else base

        return self.caches.profiles.get_or_build((name, mine), build)

    def base_efficiency(self, profile: str, key: str) -> Efficiency:
        """The efficiency this backend's catalog gives a chip, generation or "*" (overrides not applied)."""
        chip = self.catalog.chips.get(key)
        return load_engine(self.catalog, profile).eff(chip.generation if chip else key, key)

    def allowed_tp(self, setup: Setup) -> tuple[int, ...]:
        return tuple(self.profile(setup.profile).tp_degrees.get(setup.chip, ()))

    def _key(self, setup: Setup, tp: int) -> tuple:
        profile = self.profile(setup.profile)
        chip = self.catalog.chip(setup.chip)
        return (setup.model, setup.chip, tp, setup.pp, setup.weights, setup.kv, profile.name,
                profile.eff(chip.generation, chip.name))

    def coster(self, setup: Setup, tp: int) -> StepCostModel:
        return self.caches.costers.get_or_build(self._key(setup, tp),
                                                lambda: self._build(setup, tp, self.profile(setup.profile)))

    def _quantized(self, setup: Setup, tp: int) -> QuantizedCoster:
        """The replica's step model on the shape grid every `infersim simulate` and `compare` run uses."""
        return self.caches.quantized.get_or_build(self._key(setup, tp), lambda: QuantizedCoster(self.coster(setup, tp)))

    def _build(self, setup: Setup, tp: int, profile: EngineProfile) -> StepCostModel:
        spec = self.catalog.model(setup.model)
        par = check_parallel(spec, Parallel(tp, setup.pp, 1))
        chip, inst = resolve_hw(self.catalog, setup.chip, par.ranks, dict(profile.lnc))
        if chip.family not in profile.families:
            raise InputError(f"engine {profile.name} does not run on {chip.family} chips")
        allowed = profile.tp_degrees.get(chip.name)
        if allowed and tp not in allowed:
            raise InputError(f"tp={tp} is not supported by {profile.name} on {chip.name}")
        numerics = resolve_numerics(chip, setup.weights, None, setup.kv)
        return StepCostModel(spec, chip, inst, par, numerics, profile)

    def concurrency(self, setup: Setup, coster: StepCostModel) -> int:
        per_seq = setup.input_len + setup.output_len
        return max(1, min(self.profile(setup.profile).max_batch, coster.kv_capacity_tokens // per_seq))

    def serve(self, setup: Setup, tp: int, coster: StepCostModel, requests: int) -> Mapping[str, float]:
        profile = self.profile(setup.profile)
        limits = bench_limits(self.catalog.model(setup.model), self.catalog.chip(setup.chip), setup.weights,
                              setup.kv, tp, setup.pp, setup.input_len, setup.output_len) if setup.bench_tuned else None
        result = simulate(workload(setup, requests, setup.replicas(tp)), self._quantized(setup, tp),
                          policy(profile, setup.beams, limits))
        return sim_metrics(result, coster.eff.frontend_s)


def policy(profile: EngineProfile, beams: int = 1, limits: tuple[int, int] | None = None) -> Policy:
    """The profile's batching, under the (max batch, max tokens per step) the benchmark built the engine with when
    given. Beam search (beams > 1): the beams of a sample share one context phase and one stored copy of the
    prompt's KV, and each beam's decode reads that copy (a sample's prompt KV, hundreds of MB for GPT-J, is far
    larger than a GPU's L2, so beams read by separate thread blocks each stream it). Static batching takes the
    batch limit only."""
    batch, tokens = limits or (profile.max_batch, profile.max_tokens_per_step)
    return policy_for(profile, max_batch=batch, max_tokens_per_step=tokens, prefix_caching=beams > 1,
                      prefix_cache_entries=max(64, batch), shared_prefix_kv=beams > 1)


def workload(setup: Setup, requests: int, replicas: int) -> Workload:
    """Fixed lengths; all at t = 0 (offline), Poisson at the row's qps split over replicas, or `batch` users.
    A beam-search sample is `beams` sequences arriving together that share the prompt (one prefix id)."""
    rng = np.random.default_rng(SEED)
    beams = setup.beams
    samples = max(1, requests // beams)
    arrivals = np.zeros(samples)
    users = 0
    if setup.scenario == "server" and setup.qps:
        arrivals = Poisson(setup.qps / replicas).times(rng, samples)
    elif setup.scenario in ("server", "single-stream") and setup.batch:
        users = max(1, setup.batch // replicas)
    n = samples * beams
    cv, (max_in, max_out) = (s.cv, (s.max_input_len, s.max_output_len)) if (s := setup.spread) else (0.0, (0, 0))
    inputs = np.repeat(lengths(rng, samples, setup.input_len, cv, max_in), beams)
    outputs = np.repeat(lengths(rng, samples, setup.output_len, cv, max_out), beams)
    prefix = np.repeat(np.arange(samples, dtype=np.int64), beams) if beams > 1 else np.full(n, -1, np.int64)
    return Workload(np.repeat(arrivals, beams), inputs, outputs, prefix,
                    inputs if beams > 1 else np.zeros(n, np.int64), users=users, name=setup.scenario)


def lengths(rng: np.random.Generator, n: int, mean: int, cv: float, high: int) -> np.ndarray:
    """`n` request lengths: all `mean` (cv 0), or log-normal with coefficient of variation `cv`, clipped to
    [1, high] and rescaled so that their mean is `mean` (a published length is the request set's mean)."""
    if cv <= 0 or n < 2:
        return np.full(n, mean, np.int64)
    x = LogNormal(mean, math.sqrt(math.log1p(cv**2)), 1, high).sample(rng, n).astype(np.float64)
    return np.clip(np.rint(x * (mean / x.mean())), 1, high).astype(np.int64)


def sim_metrics(r: SimResult, frontend_s: float = 0.0) -> dict[str, float]:
    """Schema metrics of one simulated replica as its clients see them (latencies in ms; the serving frontend's
    `frontend_s` added to TTFT and E2E)."""
    ttft = (r.first_token_s - r.arrival_s + frontend_s) * 1e3
    e2e = (r.finish_s - r.arrival_s + frontend_s) * 1e3
    gaps = np.maximum(r.output_tokens - 1, 0)
    decode_ms = (r.finish_s - r.first_token_s) * 1e3
    multi = gaps > 0
    tpot = decode_ms[multi] / gaps[multi] if multi.any() else np.zeros(1)
    span_s = float(np.max(r.finish_s) - np.min(r.arrival_s))
    out_tok, in_tok = float(r.output_tokens.sum()), float(r.input_tokens.sum())
    return {
        "ttft_mean": float(ttft.mean()), "ttft_p50": float(np.percentile(ttft, 50)),
        "ttft_p99": float(np.percentile(ttft, 99)), "tpot_mean": float(tpot.mean()),
        "tpot_p50": float(np.percentile(tpot, 50)), "tpot_p99": float(np.percentile(tpot, 99)),
        "itl_mean": float(decode_ms[multi].sum() / max(1, gaps.sum())),
        "e2e_latency_mean": float(e2e.mean()), "e2e_latency_p50": float(np.percentile(e2e, 50)),
        "output_throughput": out_tok / span_s, "total_throughput": (out_tok + in_tok) / span_s,
        "request_throughput": r.n / span_s,
    }


def real_backend(catalog: Catalog) -> CatalogBackend:
    return CatalogBackend(catalog)
