from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np
import pytest
from validate_fakes import NEURON_RUN, FakeCoster, csv_text, fake_catalog

from infersim.analyze.validate import predict_setup
from infersim.analyze.validate_calibrate import (
    COARSE_RUNS,
    START_GRID,
    Group,
    cross_validate,
    fit_all,
    fit_one,
    grid_starts,
)
from infersim.analyze.validate_fit import (
    Param,
    Target,
    fit_group,
    geometric_default,
    group_loss,
    pattern_search,
    subsample,
)
from infersim.analyze.validate_rows import parse_rows
from infersim.analyze.validate_setup import Setup, configure, load_rules
from infersim.specs.engine import Efficiency

PARAMS = (Param("hbm", 0.2, 1.0), Param("step_overhead_s", 1e-5, 1e-1))


@dataclasses.dataclass(frozen=True)
class EffBackend:
    """Step time = step overhead + KV bytes / (bandwidth x hbm efficiency), as a fake of the cost layer."""

    eff: Efficiency

    def coster(self, setup: Setup, tp: int) -> FakeCoster:
        return FakeCoster(fixed_s=self.eff.step_overhead_s, per_token_s=2e-5, per_ctx_s=5e-7 / self.eff.hbm)

    def serve(self, setup: Setup, tp: int, coster: FakeCoster, requests: int) -> Mapping[str, float]:
        return {}

    def allowed_tp(self, setup: Setup) -> tuple[int, ...]:
        return ()

    def concurrency(self, setup: Setup, coster: FakeCoster) -> int:
        return 64


def _targets(truth: Efficiency) -> list[Target]:
    lines = [NEURON_RUN.format(id=f"r{b}-{n}", metric=m, value="1", unit="ms", notes="")
             .replace(",fixed-batch,1,,128,128,", f",fixed-batch,{b},,128,{n},")
             for b in (1, 4, 8) for n in (128, 512) for m in ("ttft_mean", "tpot_p50", "output_throughput")]
    rows, problems = parse_rows(csv_text(*lines))
    assert not problems
    out: dict[tuple, Target] = {}
    for r in rows:
        setup = configure(r.config, fake_catalog())
        assert isinstance(setup, Setup)
        value = predict_setup(setup, EffBackend(truth), load_rules()).metrics[r.config.metric]
        t = out.get(r.config.run_key(), Target(setup, ()))
        out[r.config.run_key()] = Target(setup, (*t.measured, (r.config.metric, value, r.measured.id)))
    return list(out.values())


def test_fit_recovers_known_efficiency() -> None:
    truth = Efficiency(hbm=0.55, step_overhead_s=3e-3)
    fit = fit_group(("neuron-tnx-2.18", "x"), _targets(truth), Efficiency(), PARAMS, EffBackend, load_rules())
    assert fit.loss_after < 0.02 < fit.loss_before  # mean |log error| within the search step
    assert fit.efficiency.hbm == pytest.approx(0.55, rel=0.05)
    assert fit.efficiency.step_overhead_s == pytest.approx(3e-3, rel=0.1)
    assert len(fit.row_ids) == 18 and fit.row_ids == tuple(sorted(fit.row_ids))


def test_pattern_search_stays_in_bounds() -> None:
    lo, hi = np.log([0.1, 0.1]), np.log([2.0, 2.0])
    x, best, _ = pattern_search(lambda v: float(np.sum((v - math.log(5.0)) ** 2)), np.zeros(2), lo, hi)
    assert np.allclose(x, hi) and best > 0


def test_fits_start_from_the_best_grid_point_or_the_defaults() -> None:
    truth = Efficiency(hbm=START_GRID[0], step_overhead_s=3e-3)
    targets, rules = _targets(truth), load_rules()
    both = (Param("matmul", 0.1, 1.0), *PARAMS)
    ranked, evals = grid_starts(targets, Efficiency(step_overhead_s=3e-3), both, EffBackend, rules)
    assert ranked[0].hbm == START_GRID[0] and evals == len(ranked) == 1 + len(START_GRID) ** 2
    losses = [group_loss(targets, EffBackend(e), rules) for e in ranked]
    assert losses == sorted(losses)  # best first: a large group's coarse searches start from the first few
    assert grid_starts(targets, truth, both, EffBackend, rules)[0][0] == truth  # ties keep the defaults ahead
    assert grid_starts(targets, Efficiency(), PARAMS, EffBackend, rules) == ([Efficiency()], 0)  # no matmul x hbm


def test_subsample_and_default() -> None:
    assert subsample(list(range(10)), 4) == [0, 3, 6, 9]
    fits = {"a": Efficiency(hbm=0.4), "b": Efficiency(hbm=0.9)}
    assert geometric_default(fits, PARAMS[:1], Efficiency()).hbm == pytest.approx(0.6)


@dataclasses.dataclass(frozen=True)
class ServingBackend(EffBackend):
    """A tunable fake whose simulated runs complete 1 / (100 x step overhead + output_len x 1e-4 / hbm) per s."""

    def serve(self, setup: Setup, tp: int, coster: FakeCoster, requests: int) -> Mapping[str, float]:
        rate = 1.0 / (100 * self.eff.step_overhead_s + setup.output_len * 1e-4 / self.eff.hbm)
        return {"request_throughput": rate, "output_throughput": rate * setup.output_len,
                "total_throughput": rate * (setup.input_len + setup.output_len)}

    def base_efficiency(self, profile: str, key: str) -> Efficiency:
        return Efficiency(step_overhead_s=1e-3)

    def with_efficiency(self, profile: str, key: str, eff: Efficiency) -> ServingBackend:
        return ServingBackend(eff)


def test_large_simulated_group_is_fitted_coarse_then_on_every_run() -> None:
    truth = ServingBackend(Efficiency(hbm=0.45, step_overhead_s=2e-3))
    setups = [dataclasses.replace(_targets(truth.eff)[0].setup, scenario="offline", output_len=32 * (k + 1),
                                  requests=1) for k in range(COARSE_RUNS + 6)]
    targets = tuple(Target(s, (("output_throughput", truth.serve(s, 1, FakeCoster(), 1)["output_throughput"],
                                f"r{k}"),)) for k, s in enumerate(setups))
    group = Group(("neuron-tnx-2.18", "x"), "neuron", "g", targets, tuple(("S", "x") for _ in targets))
    fit = fit_one(group, ServingBackend(Efficiency()), load_rules(), 100, 80, log=lambda s: None)
    assert len(fit.row_ids) == len(setups) and fit.evaluations > 2 * 80
    assert fit.loss_after < 0.02 < fit.loss_before
    assert fit.efficiency.hbm == pytest.approx(0.45, rel=0.1)


@dataclasses.dataclass(frozen=True)
class QueueBackend(ServingBackend):
    """ServingBackend whose simulated runs also report a TTFT (ms) of 1000 x the step overhead."""

    def serve(self, setup: Setup, tp: int, coster: FakeCoster, requests: int) -> Mapping[str, float]:
        return {**super().serve(setup, tp, coster, requests), "ttft_mean": 1e3 * self.eff.step_overhead_s}

    def with_efficiency(self, profile: str, key: str, eff: Efficiency) -> QueueBackend:
        return QueueBackend(eff)


def test_cross_validation_reports_the_rows_without_server_latencies() -> None:
    truth = QueueBackend(Efficiency(hbm=0.45, step_overhead_s=2e-3))
    base = dataclasses.replace(_targets(truth.eff)[0].setup, scenario="server", qps=1.0, requests=1)

    def group(chip: str) -> Group:
        setups = [dataclasses.replace(base, output_len=32 * (k + 1)) for k in range(6)]
        targets = tuple(Target(s, (("request_throughput", truth.serve(s, 1, FakeCoster(), 1)["request_throughput"],
                                    f"{chip}-thr{k}"), ("ttft_mean", 10.0, f"{chip}-ttft{k}")))
                        for k, s in enumerate(setups))
        return Group(("neuron-tnx-2.18", chip), "neuron", "g", targets, tuple(("S", chip) for _ in targets))

    groups = {g.key: g for g in (group("x"), group("y"))}
    backend, rules = QueueBackend(Efficiency()), load_rules()
    full = fit_all(groups, backend, rules, 10, 10)
    held = cross_validate("hardware", "x", groups, full, backend, rules, rules, 10, 10, chips={})
    assert held.cross_validated["latency"]["n"] == 6 and held.cross_validated["throughput"]["n"] == 6
    assert held.without_server_latency["latency"]["n"] == 0
    assert held.without_server_latency["throughput"] == held.cross_validated["throughput"]
    assert held.without_server_latency["all"]["mape"] < held.cross_validated["all"]["mape"]
