"""A small Python API for notebooks: thin wrappers over the layers, with the CLI's defaults.

    import infersim.api as ix
    c = ix.compare(instances="inf2,inf4,p5")          # analyze.compare.Comparison: c.rows ranked by $/M tokens
    ix.report(c, "report.html")
    ix.plan(c, qps=50)                                # instances needed per type, monthly $ and kWh
    ix.whatif("inf2.xlarge", "hbm_bw", [1, 2, 4])     # goodput and $/M tokens as one chip resource scales
    ix.step("llama-3.1-8b", "inf2.xlarge", tp=2).cost(decode(8, 1024))
    ix.simulate("llama-3.1-8b", "inf2.xlarge", tp=2, qps=2.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from infersim.analyze import compare as _cmp
from infersim.analyze import whatif as _whatif
from infersim.analyze.backend import LayersBackend
from infersim.analyze.report import write_report
from infersim.analyze.search import SearchSpace, Slo
from infersim.catalog import Catalog, load_catalog
from infersim.cost.step import StepCostModel, step_model
from infersim.errors import InputError
from infersim.serve.policies import policy_for
from infersim.serve.simulator import SimResult
from infersim.serve.simulator import simulate as _simulate
from infersim.serve.workload import preset


def _instances(cat: Catalog, spec: str | Sequence[str] | None) -> list:
    names = spec.split(",") if isinstance(spec, str) else list(spec or [])
    items = sorted(cat.instances.values(), key=lambda i: (i.family, i.chips, i.name))
    if not names:
        return items
    picked = [i for i in items if {i.name, i.family, i.chip} & set(names)]
    if not picked:
        raise InputError(f"no instance matches {', '.join(names)}")
    return picked


def compare(model: str = "llama-3.1-8b", workload: str = "chat", trace: str | None = None, ttft_p99_s: float = 1.0,
            tpot_p99_s: float = 0.050, instances: str | Sequence[str] | None = None, dtype: str = "auto",
            pricing: str = "on-demand", engine: str | None = None, seed: int = 0, requests: int = 400,
            workers: int = 1) -> _cmp.Comparison:
    """`infersim compare` as a function."""
    slo = Slo(ttft_p99_s, tpot_p99_s)
    backend = LayersBackend(model, workload, trace, engine, seed, slo=slo)
    backend.catalog.model(model)
    labels: dict[str, str | int] = {"model": model, "workload": trace or workload,
                                    "engine": engine or "default per chip family", "seed": seed}
    return _cmp.compare(backend, _instances(backend.catalog, instances), slo,
                        SearchSpace(dtype_policy=dtype, requests=requests), pricing, labels, workers=workers)


def report(comparison: _cmp.Comparison, path: str | Path) -> Path:
    return write_report(comparison, path)


def plan(comparison: _cmp.Comparison, qps: float) -> list[_cmp.PlanRow]:
    """Instances of each type for `qps` requests/s within the comparison's SLOs, with monthly $ and kWh."""
    return _cmp.plan(comparison, qps)


def whatif(instance: str, resource: str, factors: Sequence[float], model: str = "llama-3.1-8b",
           workload: str = "chat", ttft_p99_s: float = 1.0, tpot_p99_s: float = 0.050, seed: int = 0,
           pricing: str = "on-demand") -> list[_whatif.Point]:
    """The best configuration of `instance` with one chip resource scaled by each factor."""
    slo = Slo(ttft_p99_s, tpot_p99_s)
    backend = LayersBackend(model, workload, None, None, seed, slo=slo)
    return _whatif.sweep(backend, backend.catalog.instance(instance), resource, factors, slo, SearchSpace(), pricing)


def step(model: str, hw: str, tp: int = 1, weights: str = "bf16", kv: str | None = None,
         engine: str | None = None) -> StepCostModel:
    """The step cost model of one replica (`.step_time(shape)`, `.cost(shape)`, `.memory`)."""
    return step_model(load_catalog(), model, hw, tp=tp, weights=weights, kv=kv, engine=engine)


def simulate(model: str, instance: str, tp: int = 1, qps: float = 2.0, workload: str = "chat",
             requests: int = 1000, batching: str | None = None, max_batch: int | None = None,
             weights: str = "bf16", engine: str | None = None, seed: int = 0) -> SimResult:
    """One replica serving `requests` requests of a preset at `qps` (see `infersim.serve.metrics.summarize`)."""
    sm = step(model, instance, tp=tp, weights=weights, engine=engine)
    w = preset(workload).with_rate(qps=qps).generate(requests, np.random.default_rng(seed))
    return _simulate(w, sm, policy_for(sm.profile, batching, max_batch=max_batch))
