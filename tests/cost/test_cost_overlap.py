"""Cross-op engine overlap (`cost/overlap.py`) and per-sequence context encoding (`prefill_per_sequence`): what a
step costs when the compiler's schedule hides one op's engines behind another's, and when a static batch's
prompts run through the context encoder one at a time."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infersim.catalog import load_catalog
from infersim.catalog.engines import load_engine
from infersim.cost.overlap import RESOURCES, Busy, busy_on, unoverlapped
from infersim.cost.step import StepCostModel
from infersim.graph.batch import StepShape, decode, prefill
from infersim.graph.numerics import resolve_numerics
from infersim.graph.shard import Parallel
from infersim.specs.engine import EngineProfile

CAT = load_catalog()
TNX = load_engine(CAT, "neuron-tnx-2.18")


def tnx(overlap: float, per_sequence: bool = True) -> EngineProfile:
    """The TNx profile with every efficiency entry's overlap set (and per-sequence prefill on or off)."""
    eff = {k: replace(e, overlap=overlap) for k, e in TNX.efficiency.items()}
    return replace(TNX, efficiency=eff, prefill_per_sequence=per_sequence)


def on_inf2(profile: EngineProfile, model: str = "llama-2-13b", tp: int = 24) -> StepCostModel:
    chip = CAT.chip("inf2")
    return StepCostModel(CAT.model(model), chip, CAT.instance("inf2.48xlarge"), Parallel(tp=tp),
                         resolve_numerics(chip, "bf16"), profile)


def test_busy_hides_the_gap_to_the_busiest_resource_in_proportion() -> None:
    a = Busy(3.0, (2.0, 1.0, 0.0, 0.0, 0.0), 0.5)  # op 1: Tensor-bound
    b = Busy(2.0, (0.0, 0.0, 0.0, 1.5, 0.0), 0.5)  # op 2: DMA-bound
    both = a + b
    assert both.serial_s == 5.0 and both.overlapped_s == 2.0 + 1.0  # busiest resource (Tensor 2.0) + fixed
    assert both.hidden_s(0.0) == 0.0
    assert both.hidden_s(1.0) == pytest.approx(2.0)
    assert both.hidden_s(0.25) == pytest.approx(0.5)
    assert (unoverlapped(4.0) + unoverlapped(1.0)).hidden_s(1.0) == 0.0  # ops on their own hide nothing
    assert len(a.engines_s) == len(RESOURCES)
    link = busy_on("collective", 1.5)  # a collective overlaps compute, never another collective
    assert (link + link).hidden_s(1.0) == 0.0 and (link + b).hidden_s(1.0) == pytest.approx(1.5)


def test_no_overlap_costs_the_ops_one_after_another() -> None:
    sm = on_inf2(tnx(0.0))
    sc = sm.cost(prefill(1, 1024))
    assert "engine overlap" not in [oc.op.name for oc in sc]
    assert sc.total.seconds == pytest.approx(sum(oc.cost.seconds for oc in sc), rel=1e-12)


@pytest.mark.parametrize("shape", [prefill(1, 128), prefill(1, 4096), decode(8, 2048), prefill(4, 512)])
def test_overlap_hides_time_and_idle_energy_and_the_breakdown_says_how_much(shape: StepShape) -> None:
    serial, half, full = (on_inf2(tnx(x)) for x in (0.0, 0.5, 1.0))
    t0, t5, t1 = (m.step_time(shape) for m in (serial, half, full))
    assert t1 < t5 < t0
    assert t5 == pytest.approx((t0 + t1) / 2, rel=1e-9)  # the hidden time is linear in the overlap share
    line = {oc.op.name: oc.cost for oc in half.cost(shape)}["engine overlap"]
    assert line.seconds == pytest.approx(t5 - t0, rel=1e-9)
    assert half.step_energy(shape) == pytest.approx(serial.step_energy(shape) + half.idle_power_w * line.seconds)
    assert half.cost(shape).total.seconds == pytest.approx(t5, rel=1e-9)


@given(b=st.integers(1, 16), ctx=st.integers(0, 60_000))
@settings(max_examples=25, deadline=None)
def test_decode_stays_affine_in_the_kv_tokens_with_overlap(b: int, ctx: int) -> None:
    sm = on_inf2(tnx(0.7))
    base, slope = sm.decode_affine(b)
    assert sm.step_time(decode(b, ctx)) == pytest.approx(base + slope * b * ctx, rel=1e-9)
    assert sm.cost(decode(b, ctx)).total.seconds == pytest.approx(base + slope * b * ctx, rel=1e-9)


@pytest.mark.parametrize("n", [2, 4, 8])
def test_per_sequence_prefill_costs_its_single_prompts_with_one_program_switch(n: int) -> None:
    sm = on_inf2(tnx(0.5))
    one, many = prefill(1, 1024), prefill(n, 1024)
    fixed = {oc.op.name: oc.cost.seconds for oc in sm.cost(one)}["step overheads"]
    assert sm.runs(many) == (one, n)
    assert sm.step_time(many) == pytest.approx(n * (sm.step_time(one) - fixed) + fixed, rel=1e-9)
    counts = {oc.op.name: oc.op.count for oc in sm.cost(many)}
    assert counts["attn.qkv"] == n * CAT.model("llama-2-13b").num_layers


def test_a_batched_encoder_shares_the_weight_stream_that_a_per_sequence_one_repeats() -> None:
    per_seq, batched = on_inf2(tnx(0.0)), on_inf2(tnx(0.0, per_sequence=False))
    shape = prefill(8, 128)  # weight-bound: 1,024 tokens, each weight read once when batched
    assert batched.runs(shape) == (shape, 1)
    assert per_seq.step_time(shape) > batched.step_time(shape)
    assert per_seq.cost(shape).total.bytes > 3 * batched.cost(shape).total.bytes  # the weights are read 8x
    assert per_seq.step_time(prefill(1, 128)) == batched.step_time(prefill(1, 128))


@pytest.mark.parametrize("shape", [prefill(1, 64) + decode(3, 100), StepShape(300, 2, 30_000),
                                   prefill(4, 256, past=128)])
def test_mixed_or_uneven_steps_run_whole(shape: StepShape) -> None:
    sm = on_inf2(tnx(0.5))
    unit, n = sm.runs(shape)
    if shape.decode_seqs or shape.prefill_attn_pairs % shape.prefill_seqs:
        assert (unit, n) == (shape, 1)
    else:
        assert unit.prefill_seqs == 1 and n * unit.prefill_tokens == shape.prefill_tokens


def test_the_tnx_profile_runs_prompts_one_at_a_time_and_others_do_not() -> None:
    assert TNX.prefill_per_sequence
    assert not load_engine(CAT, "nxdi-2.2x").prefill_per_sequence
    assert not load_engine(CAT, "vllm-0.10").prefill_per_sequence
    assert load_engine(CAT, "vllm-0.10").eff("hopper", "h100-sxm").overlap == 0.0
