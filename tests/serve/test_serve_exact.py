"""Exact traces computed by hand with affine step times."""

import dataclasses

import numpy as np
import pytest

from infersim.serve.affine import AffineCoster
from infersim.serve.cluster import KVTransfer, disaggregated
from infersim.serve.metrics import summarize
from infersim.serve.policies import ContinuousPolicy, StaticPolicy
from infersim.serve.simulator import simulate
from infersim.serve.workload import Workload

# any step: 0.1 s + 0.01 s per prompt token + 0.001 s per KV token read by decodes
COSTER = AffineCoster(base_s=0.1, s_per_prefill_token=0.01, s_per_ctx_token=0.001, kv_capacity=10_000,
                      busy_power_w=100.0, idle_w=10.0)


def test_continuous_three_requests_by_hand(wl):
    # R0 t=0 (10 in, 3 out); R1 t=0.05 (20 in, 2 out); R2 t=1.0 (5 in, 1 out)
    w = wl([0.0, 0.05, 1.0], [10, 20, 5], [3, 2, 1])
    r = simulate(w, COSTER, ContinuousPolicy(max_batch=8))
    # t=0: R0 prefill 0.1+0.10 -> 0.2 (first token R0)
    # t=0.2: R1 prefill (20) + R0 decode reading 10 KV: 0.1+0.20+0.010 -> 0.51 (R0 token 2, R1 first token)
    # t=0.51: decode R0 (ctx 11) + R1 (ctx 20): 0.1+0.031 -> 0.641: R0 token 3 (done), R1 token 2 (done)
    # t=1.0: R2 prefill 0.1+0.05 -> 1.15 (its only token)
    assert r.first_token_s.tolist() == pytest.approx([0.2, 0.51, 1.15])
    assert r.finish_s.tolist() == pytest.approx([0.641, 0.641, 1.15])
    assert r.max_itl_s.tolist() == pytest.approx([0.31, 0.131, 0.0])
    s = summarize(r)
    assert s["ttft_mean"] == pytest.approx((200 + 460 + 150) / 3)
    assert s["tpot_mean"] == pytest.approx(((0.641 - 0.2) / 2 + 0.131) / 2 * 1e3)
    assert s["itl_mean"] == pytest.approx((0.441 + 0.131) / 3 * 1e3)
    assert s["output_throughput"] == pytest.approx(6 / 1.15)
    # energy: 100 W while busy (0.641 + 0.15 s), 10 W idle for the rest of the 1.15 s span
    assert s["energy_j"] == pytest.approx(100 * 0.791 + 10 * (1.15 - 0.791))


def test_decode_run_is_cut_by_an_arrival(wl):
    # R0 t=0 (10 in, 5 out). Decode steps after its prefill (ends 0.2) read 10, 11, 12, 13 KV tokens.
    # R1 arrives at 0.25 during the first decode step (0.2 -> 0.31) and joins at 0.31.
    w = wl([0.0, 0.25], [10, 10], [5, 1])
    r = simulate(w, COSTER, ContinuousPolicy(max_batch=8))
    # t=0.31: R1 prefill (10) + R0 decode ctx 11: 0.1 + 0.1 + 0.011 -> 0.521
    # then R0 alone: ctx 12 -> 0.633, ctx 13 -> 0.746
    assert r.first_token_s.tolist() == pytest.approx([0.2, 0.521])
    assert r.finish_s.tolist() == pytest.approx([0.746, 0.521])


def test_static_bucketed_batch_by_hand(wl):
    w = wl([0.0, 0.0], [10, 12], [3, 2])
    coster = AffineCoster(base_s=0.1, s_per_prefill_token=0.01, s_per_ctx_token=0.001)
    r = simulate(w, coster, StaticPolicy(max_batch=2, buckets=(16, 32)))
    # prefill: 2 sequences padded to bucket 16: 0.1 + 0.32 = 0.42
    # decode steps at positions 13, 14 -> bucket 16, 2 x 16 KV tokens: 0.1 + 0.032 = 0.132 each
    assert r.first_token_s.tolist() == pytest.approx([0.42, 0.42])
    assert r.finish_s.tolist() == pytest.approx([0.42 + 2 * 0.132, 0.42 + 0.132])


def test_static_decode_changes_bucket(wl):
    w = wl([0.0], [15], [4])
    coster = AffineCoster(base_s=0.1, s_per_ctx_token=0.001)
    r = simulate(w, coster, StaticPolicy(max_batch=1, buckets=(16, 32)))
    # prefill 0.1; decode positions 16 (bucket 16), 17, 18 (bucket 32): 0.116 + 2 x 0.132
    assert r.finish_s[0] == pytest.approx(0.1 + 0.116 + 2 * 0.132)
    assert r.max_itl_s[0] == pytest.approx(0.132)


def test_static_batch_waits_for_the_running_batch(wl):
    w = wl([0.0, 0.01], [10, 10], [2, 2])
    coster = AffineCoster(base_s=0.1)
    r = simulate(w, coster, StaticPolicy(max_batch=4, buckets=(16,)))
    # batch 1 = R0 alone: 0.1 prefill + 0.1 decode; R1 starts at 0.2
    assert r.finish_s.tolist() == pytest.approx([0.2, 0.4])


def test_disaggregated_handoff_by_hand(wl):
    w = wl([0.0], [100], [3])
    transfer = KVTransfer(kv_bytes_per_token=1000.0, bytes_per_s=1e6, latency_s=0.05)  # 100 tokens: 0.15 s
    cluster = disaggregated(COSTER, COSTER, ContinuousPolicy(), 1, 1, transfer)
    r = simulate(w, cluster)
    # prefill 0.1 + 1.0 = 1.1 (first token); KV arrives 1.25; decode ctx 100 then 101: 0.2, 0.201
    assert r.first_token_s[0] == pytest.approx(1.1)
    assert r.finish_s[0] == pytest.approx(1.25 + 0.2 + 0.201)
    assert r.replica[0] == 1


def test_closed_loop_users_send_after_finishing(wl):
    w = wl([0.0, 0.0, 0.0], [10, 10, 10], [1, 1, 1], users=1)
    r = simulate(w, COSTER, ContinuousPolicy())
    # one user: each request (0.2 s prefill, one token) starts when the previous finishes
    assert r.arrival_s.tolist() == pytest.approx([0.0, 0.2, 0.4])
    assert r.finish_s.tolist() == pytest.approx([0.2, 0.4, 0.6])


def test_chunked_prefill_by_hand(wl):
    w = wl([0.0, 0.55], [20, 4], [2, 1])
    r = simulate(w, COSTER, ContinuousPolicy(max_tokens_per_step=8, chunked_prefill=True))
    # chunks of 8, 8, 4 tokens: 0.18 + 0.18 + 0.14 -> first token at 0.50; decode ctx 20: 0.12 -> 0.62
    # R1 arrives at 0.55 and is prefilled after R0's last step: 0.62 + 0.14
    assert r.first_token_s.tolist() == pytest.approx([0.50, 0.76])
    assert r.finish_s.tolist() == pytest.approx([0.62, 0.76])


def test_chunks_share_the_budget_with_decodes(wl):
    # R0 decodes while R1 (12 tokens) is chunked with budget 8: 7 prompt tokens + 1 decode, then 5 + 1
    w = wl([0.0, 0.15], [2, 12], [4, 1])
    r = simulate(w, COSTER, ContinuousPolicy(max_tokens_per_step=8, chunked_prefill=True))
    # t=0: R0 prefill 0.12 -> 0.12; R1 arrives 0.15 during decode step 0.12->0.222 (ctx 2)
    # t=0.222: chunk 7 + decode ctx 3: 0.1+0.07+0.003 -> 0.395; chunk 5 + decode ctx 4: 0.154 -> 0.549
    assert r.first_token_s.tolist() == pytest.approx([0.12, 0.549])
    assert r.finish_s.tolist() == pytest.approx([0.549, 0.549])


def test_unmixed_steps_pause_decodes_during_prefill(wl):
    w = wl([0.0, 0.05], [10, 20], [3, 2])
    r = simulate(w, COSTER, ContinuousPolicy(max_batch=8, mixed_steps=False))
    # t=0: R0 prefill -> 0.2; t=0.2: R1 prefill alone (R0 waits): 0.1 + 0.2 -> 0.5
    # t=0.5: decode R0 (ctx 10) + R1 (ctx 20): 0.13 -> 0.63; then R0 (ctx 11) alone: 0.111 -> 0.741
    assert r.first_token_s.tolist() == pytest.approx([0.2, 0.5])
    assert r.finish_s.tolist() == pytest.approx([0.741, 0.63])
    assert r.max_itl_s.tolist() == pytest.approx([0.43, 0.13])  # R0: token 1 at 0.2, token 2 at 0.63


def test_beams_share_one_context_phase_and_read_the_prompt_once():
    # four beams of one sample (same prefix id, 10-token prompt shared, 3 output tokens) arrive together. Plain:
    # the first step prefills all four (0.1 + 40 x 0.01 = 0.5 s). Shared: one context phase, the other beams only
    # their last prompt token (0.1 + 13 x 0.01 = 0.23 s). Decode step k (k = 0, 1) reads 4 x (10 + k) KV tokens,
    # or, with the prompt read once, 10 + 4k: each of the two decode steps is 3 x 10 x 0.001 = 0.03 s shorter.
    w = Workload(np.zeros(4), np.full(4, 10), np.full(4, 3), np.zeros(4, np.int64), np.full(4, 10))
    plain = simulate(w, COSTER, ContinuousPolicy(max_batch=8, prefix_caching=True))
    shared = simulate(w, COSTER, ContinuousPolicy(max_batch=8, prefix_caching=True, shared_prefix_kv=True,
                                                  shared_prefix_reads=True))
    assert plain.first_token_s.tolist() == pytest.approx([0.5] * 4)
    assert shared.first_token_s.tolist() == pytest.approx([0.23] * 4)
    # plain: 0.5 + (0.1 + 0.040) + (0.1 + 0.044); shared: 0.23 + (0.1 + 0.010) + (0.1 + 0.014)
    assert plain.finish_s.tolist() == pytest.approx([0.784] * 4)
    assert shared.finish_s.tolist() == pytest.approx([0.454] * 4)


def test_beams_store_their_shared_prompt_once_under_reservation():
    # four beams (prompt 40, output 3) in a 64-token cache of 8-token blocks, whole sequences reserved, step 0.1 s +
    # 0.01 s per prompt token. A beam needs 6 blocks (43 tokens). Alone, one beam runs at a time: 0.1 + 0.4 s of
    # prefill, two 0.1 s decodes (finish 0.7), then each later beam hits the prefix cache (0.11 s prefill).
    # Shared: the prompt's 5 whole blocks are stored once, so beams 2 and 3 need 1 block each (6 + 1 + 1 = 8) and
    # join the one context phase with one prompt token each (0.1 + 42 x 0.01 = 0.52); beam 4 waits for the blocks.
    coster = AffineCoster(base_s=0.1, s_per_prefill_token=0.01, s_per_ctx_token=0.0, kv_capacity=64)
    w = Workload(np.zeros(4), np.full(4, 40), np.full(4, 3), np.zeros(4, np.int64), np.full(4, 40))
    policy = ContinuousPolicy(max_batch=8, kv_block_tokens=8, reserve_full=True, prefix_caching=True)
    alone = simulate(w, coster, policy)
    shared = simulate(w, coster, dataclasses.replace(policy, shared_prefix_kv=True))
    assert alone.finish_s.tolist() == pytest.approx([0.7, 1.01, 1.32, 1.63])
    assert shared.first_token_s.tolist() == pytest.approx([0.52, 0.52, 0.52, 0.83])
    assert shared.finish_s.tolist() == pytest.approx([0.72, 0.72, 0.72, 1.03])
