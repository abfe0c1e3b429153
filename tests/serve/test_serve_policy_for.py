"""One way from an engine profile to a batching policy: its limits, KV blocks and admission, with overrides."""

from __future__ import annotations

from dataclasses import replace

from infersim.catalog import load_catalog
from infersim.catalog.engines import load_engine
from infersim.serve.policies import ContinuousPolicy, StaticPolicy, policy_for

CAT = load_catalog()


def test_trtllm_reserves_the_whole_sequence_and_vllm_grows() -> None:
    trt = policy_for(load_engine(CAT, "trtllm-0.17"))
    vllm = policy_for(load_engine(CAT, "vllm-0.10"))
    assert isinstance(trt, ContinuousPolicy) and trt.reserve_full and trt.max_batch == 2048
    assert isinstance(vllm, ContinuousPolicy) and not vllm.reserve_full and vllm.kv_block_tokens == 16


def test_overrides_win_and_none_keeps_the_profile() -> None:
    prof = load_engine(CAT, "trtllm-0.14")
    pol = policy_for(prof, "chunked-prefill", max_batch=7, mixed_steps=None)
    assert isinstance(pol, ContinuousPolicy) and pol.chunked_prefill and pol.max_batch == 7
    assert pol.max_tokens_per_step == prof.max_tokens_per_step and pol.mixed_steps
    assert not policy_for(replace(prof, kv_admission="grow")).reserve_full


def test_static_profiles_keep_their_buckets() -> None:
    prof = load_engine(CAT, "neuron-tnx-2.18")
    pol = policy_for(prof, max_batch=4)
    assert isinstance(pol, StaticPolicy) and pol.max_batch == 4 and pol.buckets == tuple(prof.buckets)
