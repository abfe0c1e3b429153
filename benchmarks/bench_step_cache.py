"""Warm and cold cost of StepCostModel.step_time (the serving simulator's hot path).

    .venv/bin/python benchmarks/bench_step_cache.py

Cold shapes: every mixed shape (prefill chunk + decode batch) is costed once on a fresh StepCostModel, so each
call builds and costs the op list of a step it has never seen (what `infersim validate` and the serving
simulator pay for new shapes).
"""

from __future__ import annotations

import time

from infersim.catalog import load_catalog
from infersim.cost.step import step_model
from infersim.graph.batch import StepShape, decode, prefill

COLD_CASES = (("mixtral-8x7b", "h100-sxm", 2), ("llama-3.1-8b", "inf2.xlarge", 2))


def per_call(fn, args, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for a in args:
            fn(a)
        best = min(best, (time.perf_counter() - t0) / len(args))
    return best


def cold_shapes(n: int) -> list[StepShape]:
    """n distinct shapes: pure prefill, and prefill chunks riding with decode batches of varied size."""
    return [prefill(1 + i % 2, 64 + 7 * i) + (decode(1 + i % 48, (1 + i % 48) * (300 + i)) if i % 3 else StepShape())
            for i in range(n)]


def cold_per_shape(cat, model: str, hw: str, tp: int, n: int = 2000, repeat: int = 5) -> float:
    """Best-of-`repeat` CPU seconds per never-seen shape, each repeat on a fresh model (empty caches). CPU time,
    not wall time: the figure stays comparable on a shared machine."""
    shapes = cold_shapes(n)
    best = float("inf")
    for _ in range(repeat):
        sm = step_model(cat, model, hw, tp=tp)
        sm.ctx_slopes_at(1)  # paid once per model, not per shape
        t0 = time.process_time()
        for s in shapes:
            sm.step_time(s)
        best = min(best, (time.process_time() - t0) / n)
    return best


def main() -> None:
    cat = load_catalog()
    for hw, tp, engine in (("inf2.48xlarge", 24, "neuron-tnx-2.18"), ("h100-sxm", 1, "vllm-0.10")):
        sm = step_model(cat, "llama-3.1-8b", hw, tp=tp, engine=engine)
        mixed = [prefill(1, 256 + i) + decode(16, 16 * (1000 + i)) for i in range(2000)]
        decodes = [decode(1 + i % 64, (1 + i % 64) * (500 + i)) for i in range(20000)]
        cold_mixed = per_call(sm.step_time, mixed, repeat=1)
        cold_decode = per_call(sm.step_time, decodes, repeat=1)
        warm = per_call(sm.step_time, mixed)
        print(f"{hw:14s} tp={tp:<3d} warm step_time {warm * 1e6:6.2f} us | cold mixed step {cold_mixed * 1e6:7.1f} us"
              f" | cold pure-decode step (affine path) {cold_decode * 1e6:5.2f} us")
    for model, hw, tp in COLD_CASES:
        print(f"cold distinct mixed shapes  {model:14s} {hw:12s} tp={tp}: "
              f"{cold_per_shape(cat, model, hw, tp) * 1e6:7.1f} us CPU per shape")


if __name__ == "__main__":
    main()
