"""Step segments: their concatenation is the step's op list, and equal keys always mean equal ops (the cost
layer memoises a segment's cost by its key)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from infersim.catalog import load_catalog
from infersim.graph.batch import StepShape, decode, prefill
from infersim.graph.build import build_step, step_plan, step_segments
from infersim.graph.numerics import Numerics
from infersim.graph.shard import Parallel

CAT = load_catalog()
BF16 = Numerics("bf16", "bf16", "bf16")
PLANS = [step_plan(CAT.model(m), BF16, par) for m, par in (
    ("llama-3.1-8b", Parallel(tp=2)), ("mixtral-8x7b", Parallel(tp=4, pp=2, ep=2)), ("deepseek-v3", Parallel(tp=8)),
    ("qwen2-57b-a14b", Parallel(tp=4)), ("gpt-j-6b", Parallel()))]
SHAPES = st.builds(lambda pb, pl, past, b, c: (prefill(pb, pl, past) if pb else StepShape()) + decode(b, c),
                   st.integers(0, 3), st.integers(1, 600), st.integers(0, 300), st.integers(0, 40),
                   st.integers(0, 9000))


@given(a=SHAPES, b=SHAPES, plan=st.sampled_from(PLANS))
@settings(max_examples=60, deadline=None)
def test_equal_segment_keys_build_equal_ops(a: StepShape, b: StepShape, plan) -> None:
    seen: dict = {}
    same_tokens = [decode(a.tokens, 0), prefill(1, a.tokens, 5)] if a.tokens else []  # other splits of a's tokens
    for shape in (a, b, *same_tokens):
        for key, make in step_segments(plan, shape):
            ops = make()
            assert seen.setdefault(key, ops) == ops


@given(shape=SHAPES, plan=st.sampled_from(PLANS))
@settings(max_examples=30, deadline=None)
def test_segments_make_up_the_step(shape: StepShape, plan) -> None:
    keys = [key for key, _ in step_segments(plan, shape)]
    assert len(keys) == len(set(keys))
    ops = [op for _, make in step_segments(plan, shape) for op in make()]
    assert ops == build_step(plan.model, shape, plan.num, plan.par)
