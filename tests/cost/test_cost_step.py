"""The cost layer: Cost arithmetic, physical monotonicity, exact decode affinity, mapping vs roofline, memory
plan refusals, energy bounds, and one cost model behind both front ends."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infersim.catalog import load_catalog
from infersim.catalog.engines import load_engine
from infersim.cost.base import Cost
from infersim.cost.ops import cost_ops
from infersim.cost.roofline import roofline
from infersim.cost.step import StepCostModel, step_model
from infersim.errors import InputError
from infersim.graph.batch import decode, prefill
from infersim.graph.numerics import resolve_numerics
from infersim.graph.shard import Parallel
from infersim.specs.chip import Chip, Dma

CAT = load_catalog()
SHAPES = st.one_of(st.builds(lambda p, pl, b, c: prefill(1, pl) + decode(b, c) if p else decode(b, c),
                             st.booleans(), st.integers(1, 2048), st.integers(1, 64), st.integers(0, 8192)),
                   st.builds(prefill, st.integers(2, 8), st.integers(1, 2048)))  # a static batch's prefill


def model_on(chip: Chip, tp: int, engine: str, model: str = "llama-3.1-8b") -> StepCostModel:
    return StepCostModel(CAT.model(model), chip, None, Parallel(tp=tp), resolve_numerics(chip, "bf16"),
                         load_engine(CAT, engine))


def faster_hbm(chip: Chip, k: float) -> Chip:
    return replace(chip, hbm_bytes_per_s=chip.hbm_bytes_per_s * k,
                   dma=Dma(chip.dma.engines_per_core, chip.dma.bytes_per_s_per_core * k, chip.dma.fixed_latency_s))


def faster_flops(chip: Chip, k: float) -> Chip:
    return replace(chip, peak_flops_per_s={d: v * k for d, v in chip.peak_flops_per_s.items()},
                   vector_flops_per_s=chip.vector_flops_per_s * k)


@pytest.mark.parametrize(("chip", "tp", "engine"), [("inf2", 2, "neuron-tnx-2.18"), ("h100-sxm", 1, "vllm-0.10")])
@given(shape=SHAPES, k=st.floats(1.0, 4.0))
@settings(max_examples=25, deadline=None)
def test_more_bandwidth_or_flops_never_slows_a_step(chip: str, tp: int, engine: str, shape, k: float) -> None:
    base = CAT.chip(chip)
    t = model_on(base, tp, engine).step_time(shape)
    assert model_on(faster_hbm(base, k), tp, engine).step_time(shape) <= t * (1 + 1e-12)
    assert model_on(faster_flops(base, k), tp, engine).step_time(shape) <= t * (1 + 1e-12)


@pytest.mark.parametrize(("hw", "tp", "engine"), [("inf2.48xlarge", 24, "neuron-tnx-2.18"),
                                                  ("h100-sxm", 2, "trtllm-0.6"), ("trn2", 8, "nxdi-2.2x")])
@given(b=st.integers(1, 64), ctx=st.integers(0, 100_000))
@settings(max_examples=30, deadline=None)
def test_decode_affine_is_exact(hw: str, tp: int, engine: str, b: int, ctx: int) -> None:
    sm = step_model(CAT, "llama-3.1-8b", hw, tp=tp, engine=engine)
    base, slope = sm.decode_affine(b)
    full = sm.cost(decode(b, ctx)).total.seconds
    assert full == pytest.approx(base + slope * (b * ctx), rel=1e-9, abs=1e-15)
    assert sm.step_time(decode(b, ctx)) == base + slope * (b * ctx)
    assert slope > 0 and base > 0
    mixed = prefill(2, 300) + decode(b, ctx)
    assert sm.step_time(mixed) == pytest.approx(sm.cost(mixed).total.seconds, rel=1e-9)


@given(costs=st.lists(st.builds(Cost, st.floats(0, 1), st.floats(0, 1e12), st.floats(0, 1e9), st.floats(0, 10)),
                      min_size=1, max_size=6))
def test_costs_add_field_by_field(costs: list[Cost]) -> None:
    s = sum(costs)
    assert s.seconds == pytest.approx(sum(c.seconds for c in costs))
    assert s.flops == pytest.approx(sum(c.flops for c in costs))
    assert s.joules == pytest.approx(sum(c.joules for c in costs))
    assert s.bound == max(costs, key=lambda c: c.seconds).bound or s.seconds == 0
    assert (costs[0] + Cost()).seconds == costs[0].seconds


@pytest.mark.parametrize(("chip", "tp", "engine"), [("inf2", 2, "neuron-tnx-2.18"), ("h100-sxm", 1, "trtllm-0.17"),
                                                    ("tpu-v5e", 2, "jetstream-pt"), ("trn2", 1, "nxdi-2.2x")])
def test_mapping_never_beats_the_roofline(chip: str, tp: int, engine: str) -> None:
    sm = model_on(CAT.chip(chip), tp, engine)
    for shape in (prefill(2, 700), decode(16, 3000)):
        for oc in sm.cost(shape):
            if oc.op.kind not in ("collective", "overhead") and oc.op.bytes == oc.cost.bytes / oc.op.count:
                assert oc.cost.seconds >= roofline(oc.op, sm.device).seconds * oc.op.count * (1 - 1e-9)


def test_op_list_costing_is_the_same_model_as_the_step() -> None:
    sm = step_model(CAT, "llama-3.1-8b", "h100-sxm", engine="vllm-0.10")
    shape = prefill(1, 512) + decode(8, 1000)
    ops = sm.ops(shape)
    plain = cost_ops(ops, sm.chip, sm.eff)
    assert [c.seconds for c in plain] == [oc.cost.seconds for oc in sm.cost(shape).ops[:-1]]


def test_collectives_grow_with_bytes_and_tp() -> None:
    small = step_model(CAT, "llama-2-13b", "inf2.48xlarge", tp=8, engine="neuron-tnx-2.18")
    big = step_model(CAT, "llama-2-13b", "inf2.48xlarge", tp=24, engine="neuron-tnx-2.18")
    coll = lambda sm, s: sm.cost(s).by_class()["collective"].seconds  # noqa: E731
    assert coll(small, decode(1, 100)) < coll(small, decode(64, 100))
    assert coll(small, decode(1, 100)) < coll(big, decode(1, 100))
    assert coll(big, prefill(1, 2048)) > coll(big, decode(1, 2048))


def test_memory_plan_refuses_with_the_gap_and_a_fix() -> None:
    with pytest.raises(InputError, match=r"short by \d+\.\d GB; it would fit with tp=2 or fp8 weights"):
        step_model(CAT, "llama-2-70b", "h100-sxm", tp=1, engine="vllm-0.10")
    two = step_model(CAT, "llama-3.1-8b", "h100-sxm", tp=2, engine="vllm-0.10").kv_capacity_tokens
    one = step_model(CAT, "llama-3.1-8b", "h100-sxm", tp=1, engine="vllm-0.10").kv_capacity_tokens
    assert two > one > 0
    with pytest.raises(InputError, match="KV for 10000000 tokens"):
        step_model(CAT, "llama-3.1-8b", "h100-sxm", engine="vllm-0.10", need_tokens=10_000_000)


def test_energy_sits_between_idle_and_tdp() -> None:
    sm = step_model(CAT, "llama-3.1-8b", "h100-sxm", tp=2, engine="vllm-0.10")
    for shape in (decode(1, 100), prefill(8, 2048)):
        t, j = sm.step_time(shape), sm.step_energy(shape)
        assert sm.idle_power_w * t <= j <= 2 * CAT.chip("h100-sxm").power.tdp_w * t
    assert sm.step_energy(prefill(8, 2048)) / sm.step_time(prefill(8, 2048)) > sm.idle_power_w * 1.5


def test_warm_step_time_is_cached() -> None:
    sm = step_model(CAT, "llama-3.1-8b", "inf2.48xlarge", tp=8, engine="neuron-tnx-2.18")
    shape = prefill(2, 300) + decode(3, 900)
    assert sm.step_time(shape) == sm.step_time(shape) == pytest.approx(sm.cost(shape).total.seconds, rel=1e-12)
    assert shape in sm._times


def test_neuron_tp_and_instance_refusals() -> None:
    with pytest.raises(InputError, match="supported TP degrees: 1, 2, 4, 8, 24"):
        step_model(CAT, "llama-3.1-8b", "inf2.48xlarge", tp=16, engine="neuron-tnx-2.18")
    with pytest.raises(InputError, match=r"inf2\.xlarge offers 2 NeuronCores"):
        step_model(CAT, "llama-3.1-8b", "inf2.xlarge", tp=8, engine="neuron-tnx-2.18")
    with pytest.raises(InputError, match="runs on gpu chips, not on inf2"):
        step_model(CAT, "llama-3.1-8b", "inf2", tp=2, engine="vllm-0.10")


def test_trn2_rank_is_a_logical_core_of_two() -> None:
    sm = step_model(CAT, "llama-3.1-8b", "trn2", tp=4, engine="nxdi-2.2x")
    assert sm.device.cores_per_rank == 2 and sm.device.ranks_per_chip == 4 and sm.chips == 1


@given(tp=st.sampled_from([1, 2, 4]), weights=st.sampled_from(["bf16", "fp8"]))
@settings(max_examples=12, deadline=None)
def test_kv_capacity_never_shrinks_with_more_tp(tp: int, weights: str) -> None:
    one = step_model(CAT, "llama-3.1-8b", "p5.48xlarge", tp=tp, weights=weights, engine="vllm-0.10")
    two = step_model(CAT, "llama-3.1-8b", "p5.48xlarge", tp=2 * tp, weights=weights, engine="vllm-0.10")
    assert two.kv_capacity_tokens >= one.kv_capacity_tokens
    assert two.memory.weight_bytes <= one.memory.weight_bytes


def test_moe_efficiency_slows_expert_gemms_only() -> None:
    chip = CAT.chip("h100-sxm")
    prof = load_engine(CAT, "trtllm-0.17")
    slow = replace(prof, efficiency={k: replace(e, moe=0.5) for k, e in prof.efficiency.items()})

    def step(model: str, profile) -> float:
        sm = StepCostModel(CAT.model(model), chip, None, Parallel(tp=2), resolve_numerics(chip, "bf16"), profile)
        return sm.step_time(decode(64, 1024))

    assert step("mixtral-8x7b", slow) > 1.2 * step("mixtral-8x7b", prof)
    assert step("llama-3.1-8b", slow) == step("llama-3.1-8b", prof)


def test_fp4_weights_compute_in_fp4_only_where_the_chip_has_it() -> None:
    assert resolve_numerics(CAT.chip("b200"), "fp4").activations == "fp4"
    assert resolve_numerics(CAT.chip("h100-sxm"), "fp4").activations == "bf16"
    assert resolve_numerics(CAT.chip("h100-sxm"), "int8").activations == "bf16"


@pytest.mark.parametrize(("model", "hw", "tp", "engine"), [("mixtral-8x7b", "h100-sxm", 2, "trtllm-0.17"),
                                                          ("llama-3.1-8b", "inf2.xlarge", 2, "nxdi-2.2x")])
@given(a=SHAPES, b=SHAPES)
@settings(max_examples=20, deadline=None)
def test_cold_totals_equal_the_breakdown_exactly(model: str, hw: str, tp: int, engine: str, a, b) -> None:
    """The totals-only path (segment-memoised, no Cost objects) sums the very same floats as `cost()`."""
    sm = step_model(CAT, model, hw, tp=tp, engine=engine)
    for shape in (replace(s, decode_ctx_tokens=0) for s in (a, b, a + b)):  # later shapes reuse cached segments
        fresh = step_model(CAT, model, hw, tp=tp, engine=engine).cost(shape).total
        assert sm._totals(shape) == (fresh.seconds, fresh.joules)
