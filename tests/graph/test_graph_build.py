"""The op graph: one builder for prefill and decode, sharding invariants, numerics rules, a golden op list."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infersim.catalog import load_catalog
from infersim.errors import InputError
from infersim.graph.batch import StepShape, decode, prefill
from infersim.graph.build import build_step, experts_touched, plan_ops, step_plan
from infersim.graph.numerics import Numerics, resolve_numerics
from infersim.graph.ops import total
from infersim.graph.shard import Parallel, check_parallel
from infersim.specs.model import Attention, ModelSpec, Moe

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "graph_tiny_step_ops.json"


def tiny(moe: bool = False, kv_heads: int = 2) -> ModelSpec:
    attn = Attention(kind="gqa", num_heads=4, num_kv_heads=kv_heads, head_dim=16, v_head_dim=16)
    m = Moe(num_experts=8, experts_per_token=2, expert_intermediate_size=32) if moe else None
    return ModelSpec(name="tiny", family="llama", hidden_size=64, num_layers=2, intermediate_size=128,
                     vocab_size=100, max_position=256, tied_embeddings=False, attention=attn, mlp="swiglu",
                     norm="rmsnorm", moe=m)


BF16 = Numerics("bf16", "bf16", "bf16")
MIXED = prefill(1, 8) + decode(2, 16)


def test_golden_op_list_of_a_tiny_mixed_step() -> None:
    ops = [asdict(op) for op in build_step(tiny(), MIXED, BF16, Parallel(tp=2))]
    got = json.dumps(ops, indent=1, sort_keys=True)
    if os.environ.get("INFERSIM_UPDATE_GOLDEN"):
        GOLDEN.write_text(got + "\n")
    assert got + "\n" == GOLDEN.read_text()


def test_one_builder_covers_prefill_and_decode() -> None:
    kinds = {op.kind for op in build_step(tiny(), MIXED, BF16, Parallel())}
    assert {"attention_prefill", "attention_decode"} <= kinds
    only_decode = {op.kind for op in build_step(tiny(), decode(2, 16), BF16, Parallel())}
    assert "attention_prefill" not in only_decode and "collective" not in only_decode


def test_lm_head_runs_only_for_sequences_that_emit() -> None:
    ops = {op.name: op for op in build_step(tiny(), prefill(3, 50) + decode(2, 9), BF16, Parallel())}
    assert ops["lm_head"].shape[0] == 5 and ops["attn.qkv"].shape[0] == 152


def test_decode_attention_reads_kv_linear_in_context() -> None:
    a = next(o for o in build_step(tiny(), decode(3, 100), BF16, Parallel()) if o.kind == "attention_decode")
    b = next(o for o in build_step(tiny(), decode(3, 200), BF16, Parallel()) if o.kind == "attention_decode")
    assert b.kv_bytes == 2 * a.kv_bytes and b.flops == 2 * a.flops and a.kv_bytes == 300 * 2 * (16 + 16) * 2


def test_tp_inserts_two_all_reduces_per_layer() -> None:
    ops = build_step(tiny(), decode(1, 10), BF16, Parallel(tp=2))
    ar = [o for o in ops if o.collective == "all_reduce"]
    assert sum(o.count for o in ar) == 2 * tiny().num_layers
    assert all(o.group == 2 and o.collective_bytes == 64 * 2 for o in ar)


def test_pipeline_adds_send_recv_and_moe_adds_all_to_all() -> None:
    ops = build_step(tiny(moe=True), decode(4, 10), BF16, Parallel(tp=2, pp=2, ep=2))
    kinds = {o.collective for o in ops if o.is_collective}
    assert {"send_recv", "all_to_all"} <= kinds


@given(tp=st.sampled_from([1, 2, 4, 8]), tokens=st.integers(1, 300), moe=st.booleans())
@settings(max_examples=40, deadline=None)
def test_doubling_tp_never_increases_per_rank_weight_bytes(tp: int, tokens: int, moe: bool) -> None:
    shape = prefill(1, tokens)
    one = total(build_step(tiny(moe), shape, BF16, Parallel(tp=tp)), "weight_bytes")
    two = total(build_step(tiny(moe), shape, BF16, Parallel(tp=2 * tp)), "weight_bytes")
    assert two <= one


@given(tokens=st.integers(1, 500), ctx=st.integers(0, 4000), tp=st.sampled_from([1, 2, 4]))
@settings(max_examples=40, deadline=None)
def test_fp8_weights_never_read_more_bytes_than_bf16(tokens: int, ctx: int, tp: int) -> None:
    shape = prefill(1, tokens) + decode(2, ctx)
    bf16 = total(build_step(tiny(), shape, BF16, Parallel(tp=tp)), "bytes_read")
    fp8 = total(build_step(tiny(), shape, replace(BF16, weights="fp8"), Parallel(tp=tp)), "bytes_read")
    assert fp8 <= bf16


@given(e=st.integers(1, 256), k=st.integers(1, 8), t=st.integers(0, 5000))
def test_experts_touched_is_bounded_and_monotone(e: int, k: int, t: int) -> None:
    k = min(k, e)
    got = experts_touched(e, k, t)
    assert 0 <= got <= e + 1e-9 and experts_touched(e, k, t + 1) >= got - 1e-9
    if t >= 1:
        assert got >= k - 1e-9


def test_numerics_rules_name_chip_and_supported_formats() -> None:
    cat = load_catalog()
    with pytest.raises(InputError, match=r"a100-sxm-80g.*fp8.*supports: .*bf16"):
        resolve_numerics(cat.chip("a100-sxm-80g"), "fp8")
    weight_only = resolve_numerics(cat.chip("a100-sxm-80g"), "fp8", activations="bf16")
    assert weight_only == Numerics("fp8", "bf16", "bf16")
    assert resolve_numerics(cat.chip("inf2"), "int8") == Numerics("int8", "bf16", "bf16")
    assert resolve_numerics(cat.chip("h100-sxm"), "fp8").activations == "fp8"
    with pytest.raises(InputError, match="unknown weight dtype"):
        resolve_numerics(cat.chip("h100-sxm"), "fp9")


def test_parallel_refusals() -> None:
    with pytest.raises(InputError, match="ep=3 must divide tp=4"):
        check_parallel(tiny(moe=True), Parallel(tp=4, ep=3))
    with pytest.raises(InputError, match="pp=3 exceeds the 2 layers"):
        check_parallel(tiny(), Parallel(pp=3))


def test_empty_step_has_no_ops() -> None:
    assert build_step(tiny(), StepShape(), BF16, Parallel()) == []


def test_rope_in_attention_drops_only_the_rope_pass() -> None:
    """A stack whose attention kernel rotates Q and K (TensorRT-LLM) has no rope pass; every other op is unchanged."""
    par = Parallel(tp=2)
    apart = plan_ops(step_plan(tiny(), BF16, par), MIXED)
    fused = plan_ops(step_plan(tiny(), BF16, par, rope_in_attention=True), MIXED)
    assert [op.kind for op in apart].count("rope") == 1
    assert fused == [op for op in apart if op.kind != "rope"]
