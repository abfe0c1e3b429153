"""Attention traffic of a serving stack's kernels: GQA KV re-reads per query head (kv_repeat), prefill score
matrices materialised in device memory (score_hbm_bytes) and the DMA rows of a position-major KV cache
(kv_row_half_bytes)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infersim.catalog import load_catalog
from infersim.catalog.engines import load_engine
from infersim.cost.step import StepCostModel
from infersim.cost.traffic import attention_extra_bytes, bandwidth_share, hbm_bytes
from infersim.graph.batch import decode, prefill
from infersim.graph.build import build_step
from infersim.graph.numerics import resolve_numerics
from infersim.graph.shard import Parallel
from infersim.specs.engine import EFFICIENCY_FIELDS, Efficiency

CAT = load_catalog()


def sm_with(model: str, hw: str, tp: int, engine: str, **eff: float) -> StepCostModel:
    """A step model with the generic Efficiency defaults plus `eff`: the physics under test must not depend on
    whatever the calibration files currently hold."""
    chip = CAT.chip(hw)
    profile = replace(load_engine(CAT, engine), efficiency={chip.generation: Efficiency(**eff)})
    return StepCostModel(CAT.model(model), chip, None, Parallel(tp=tp), resolve_numerics(chip, "bf16"), profile)


def attn(model: str, shape, tp: int = 1):
    num = resolve_numerics(CAT.chip("h100-sxm"), "bf16")
    return next(o for o in build_step(CAT.model(model), shape, num, Parallel(tp=tp)) if o.kind.startswith("attention"))


def test_kv_repeat_reads_each_kv_head_once_per_query_head_of_its_group() -> None:
    op = attn("llama-3.1-8b", decode(4, 1000))  # 32 query heads over 8 KV heads: groups of 4
    assert op.kv_group == 4.0
    assert attention_extra_bytes(op, Efficiency(kv_repeat=1.0)) == pytest.approx(3.0 * op.kv_bytes)
    assert attention_extra_bytes(op, Efficiency(kv_repeat=0.5)) == pytest.approx(1.5 * op.kv_bytes)
    assert hbm_bytes(op, Efficiency()) == op.bytes
    mha = attn("llama-2-7b", decode(4, 1000))  # one query head per KV head: nothing to repeat
    assert mha.kv_group == 1.0 and attention_extra_bytes(mha, Efficiency(kv_repeat=1.0)) == 0.0


def test_materialised_scores_are_quadratic_in_the_prompt() -> None:
    eff = Efficiency(score_hbm_bytes=24.0)
    short, long = attn("llama-3.1-8b", prefill(1, 1024)), attn("llama-3.1-8b", prefill(1, 2048))
    assert attention_extra_bytes(short, eff) == pytest.approx(short.shape[0] * short.shape[1] * 24.0)
    assert attention_extra_bytes(long, eff) / attention_extra_bytes(short, eff) == pytest.approx(4.0, rel=1e-3)
    assert attention_extra_bytes(short, Efficiency()) == 0.0


@pytest.mark.parametrize(("hw", "tp", "engine"), [("inf2", 2, "neuron-tnx-2.18"), ("h100-sxm", 1, "trtllm-0.6")])
@given(b=st.integers(1, 64), ctx=st.integers(1, 16384), lo=st.floats(0.0, 1.0), hi=st.floats(0.0, 1.0))
@settings(max_examples=20, deadline=None)
def test_more_kv_repetition_never_speeds_decode(hw: str, tp: int, engine: str, b: int, ctx: int, lo: float,
                                                hi: float) -> None:
    lo, hi = min(lo, hi), max(lo, hi)
    fast = sm_with("llama-3.1-8b", hw, tp, engine, kv_repeat=lo).step_time(decode(b, ctx))
    assert sm_with("llama-3.1-8b", hw, tp, engine, kv_repeat=hi).step_time(decode(b, ctx)) >= fast * (1 - 1e-12)


@pytest.mark.parametrize(("hw", "tp", "engine"), [("inf2", 2, "neuron-tnx-2.18"), ("h100-sxm", 1, "trtllm-0.6")])
@given(b=st.integers(1, 8), s=st.integers(1, 8192), k=st.floats(1.0, 8.0))
@settings(max_examples=20, deadline=None)
def test_more_score_traffic_never_speeds_prefill(hw: str, tp: int, engine: str, b: int, s: int, k: float) -> None:
    fast = sm_with("llama-3.1-8b", hw, tp, engine, score_hbm_bytes=8.0).step_time(prefill(b, s))
    assert sm_with("llama-3.1-8b", hw, tp, engine, score_hbm_bytes=8.0 * k).step_time(prefill(b, s)) >= fast


def test_the_mapping_models_pay_for_the_extra_traffic() -> None:
    """Long-context GQA decode and long-prompt prefill are memory-heavy enough for the knobs to show."""
    for hw, tp, engine in (("inf2", 2, "neuron-tnx-2.18"), ("h100-sxm", 1, "trtllm-0.6")):
        grouped = sm_with("llama-3.1-8b", hw, tp, engine, kv_repeat=0.0).step_time(decode(64, 8192))
        assert sm_with("llama-3.1-8b", hw, tp, engine, kv_repeat=1.0).step_time(decode(64, 8192)) > 1.5 * grouped
        flash = sm_with("llama-3.1-8b", hw, tp, engine, score_hbm_bytes=0.0).step_time(prefill(4, 8192))
        assert sm_with("llama-3.1-8b", hw, tp, engine, score_hbm_bytes=24.0).step_time(prefill(4, 8192)) > flash


def test_shipped_profiles_keep_attention_knobs_in_their_physical_bounds() -> None:
    assert {"kv_repeat", "score_hbm_bytes", "kv_row_half_bytes"} <= set(EFFICIENCY_FIELDS)
    for name in CAT.engine_files:
        for gen, eff in load_engine(CAT, name).efficiency.items():
            assert 0.0 <= eff.kv_repeat <= 1.0, (name, gen)
            assert 0.0 <= eff.score_hbm_bytes <= 96.0, (name, gen)
            assert eff.kv_row_half_bytes >= 0.0, (name, gen)


def test_position_major_kv_rows_stream_at_row_over_row_plus_half() -> None:
    one, eight = attn("llama-2-7b", decode(1, 4096)), attn("llama-2-7b", decode(8, 4096))
    assert (one.seqs, eight.seqs) == (1, 8)
    row = one.kv_bytes / one.shape[0] / 2.0  # one sequence's K (or V) of one position on this rank
    eff = Efficiency(kv_read=0.8, kv_row_half_bytes=512.0)
    assert bandwidth_share(one, eff) == pytest.approx(0.8 * row / (row + 512.0))
    assert bandwidth_share(eight, eff) == pytest.approx(0.8 * 8 * row / (8 * row + 512.0))
    assert bandwidth_share(eight, Efficiency(kv_read=0.8)) == 0.8  # sequence-major cache: the full kv_read rate
    assert bandwidth_share(attn("llama-2-7b", prefill(1, 64)), eff) == eff.hbm


@given(b=st.integers(1, 16), ctx=st.integers(1, 8192))
@settings(max_examples=20, deadline=None)
def test_position_major_rows_keep_each_decode_batch_affine_in_its_context(b: int, ctx: int) -> None:
    """The cached step time (zero-context twin + the batch's slope x KV tokens) is the op-by-op cost exactly."""
    sm = sm_with("llama-2-13b", "inf2", 24, "neuron-tnx-2.18", kv_read=0.8, kv_row_half_bytes=512.0)
    base, slope = sm.decode_affine(b)
    assert sm.step_time(decode(b, ctx)) == pytest.approx(base + slope * b * ctx, rel=1e-9)
    assert sm.step_time(decode(b, ctx)) == pytest.approx(sm.cost(decode(b, ctx)).total.seconds, rel=1e-9)


def test_wider_rows_stream_each_kv_token_faster() -> None:
    rows = sm_with("llama-2-13b", "inf2", 24, "neuron-tnx-2.18", kv_read=0.8, kv_row_half_bytes=512.0)
    assert rows.decode_affine(8)[1] < rows.decode_affine(1)[1]  # per KV token: batch-8 rows are 8x wider
    flat = sm_with("llama-2-13b", "inf2", 24, "neuron-tnx-2.18", kv_read=0.8)
    assert flat.decode_affine(8)[1] == flat.decode_affine(1)[1]
    assert flat.decode_affine(1)[1] < rows.decode_affine(1)[1]
