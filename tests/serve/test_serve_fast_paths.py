"""The simulator's fast paths give the same bytes as the plain ones they stand for."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from infersim.cost.protocol import WrappedCoster
from infersim.graph.batch import StepShape, prefill_pairs
from infersim.serve import quantize
from infersim.serve.affine import AffineCoster
from infersim.serve.policies import ContinuousPolicy
from infersim.serve.quantize import QuantizedCoster, batch_grid, round_up
from infersim.serve.replica import SuffixMax
from infersim.serve.simulator import SimResult, simulate
from infersim.serve.workload import preset


class BentCoster(AffineCoster):
    """Step time with a roofline-like bend in the token count, so rounding and interpolation matter."""

    def step_time(self, shape: StepShape) -> float:
        return max(super().step_time(shape), 2e-4 * shape.tokens + 1e-7 * shape.decode_ctx_tokens)


class ProtocolOnly(WrappedCoster):
    """The same coster seen through the StepCoster protocol alone (no combined `step_time_and_energy`)."""

    def step_time(self, shape: StepShape) -> float:
        return self.inner.step_time(shape)

    def step_energy(self, shape: StepShape) -> float:
        return self.inner.step_energy(shape)


def _coster() -> QuantizedCoster:
    return QuantizedCoster(BentCoster(base_s=0.02, s_per_prefill_token=1e-4, s_per_attn_pair=1e-9,
                                      s_per_decode_seq=1e-4, s_per_ctx_token=2e-7, kv_capacity=60_000,
                                      busy_power_w=100.0, idle_w=20.0), per_octave=8)


def _run(coster, mixed: bool = True) -> SimResult:
    w = preset("chat").with_rate(qps=12.0).generate(600, np.random.default_rng(3))
    policy = ContinuousPolicy(max_batch=24, max_tokens_per_step=2048, kv_block_tokens=16, mixed_steps=mixed)
    return simulate(w, coster, policy, replicas=2, record_limit=10_000)


def _same(a: SimResult, b: SimResult) -> None:
    for field in ("first_token_s", "finish_s", "max_itl_s", "replica"):
        assert getattr(a, field).tobytes() == getattr(b, field).tobytes()
    assert a.records == b.records
    assert [(s.busy_s, s.energy_j, s.steps, s.tokens_out, s.kv) for s in a.replicas] == \
        [(s.busy_s, s.energy_j, s.steps, s.tokens_out, s.kv) for s in b.replicas]


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=60))
def test_suffix_max_is_the_max_of_every_suffix(values):
    s = SuffixMax()
    for v in values:
        s.append(v)
    assert s.count == len(values)
    assert [s.max_from(j) for j in range(len(values))] == [max(values[j:]) for j in range(len(values))]


@pytest.mark.parametrize("mixed", [True, False])
def test_combined_time_and_energy_equals_the_protocol_calls(mixed):
    fast = _run(_coster(), mixed)
    assert np.all(np.isfinite(fast.finish_s)) and len(fast.records) > 600
    _same(fast, _run(ProtocolOnly(_coster()), mixed))


def test_emptying_the_step_part_cache_changes_nothing(monkeypatch):
    full = _run(_coster())
    monkeypatch.setattr(quantize, "PARTS_LIMIT", 3)
    small = _coster()
    _same(full, _run(small))
    assert len(small.parts) <= 3


AFFINE = AffineCoster(base_s=0.02, s_per_prefill_token=1e-4, s_per_attn_pair=1e-9, s_per_decode_seq=1e-4,
                      s_per_ctx_token=2e-7, busy_power_w=100.0)


def _by_the_docstring(shape: StepShape, per_octave: int) -> tuple[float, float]:
    """quantize's rule written out for a coster affine in the KV tokens: prompt tokens rounded up, pairs scaled
    and rounded on a grid four times coarser, the decode batch interpolated between grid points, the KV tokens
    exact at the slopes of the grid point below."""
    p = shape.prefill_tokens
    tokens = round_up(p, per_octave)
    pairs = -(-shape.prefill_attn_pairs * tokens * tokens // (p * p)) if tokens != p else shape.prefill_attn_pairs
    pairs = round_up(pairs, max(per_octave // 4, 2))
    lo, hi = batch_grid(shape.decode_seqs)
    at = [StepShape(tokens, shape.prefill_seqs, pairs, b) for b in (lo, hi)]
    t, e = AFFINE.step_time(at[0]), AFFINE.step_energy(at[0])
    if hi != lo:
        f = (shape.decode_seqs - lo) / (hi - lo)
        t, e = t + f * (AFFINE.step_time(at[1]) - t), e + f * (AFFINE.step_energy(at[1]) - e)
    probe = StepShape(256, 1, 256 * 257 // 2, lo)  # joules per KV token, probed at the grid point below
    far = StepShape(256, 1, 256 * 257 // 2, lo, 1 << 16)
    j_per_token = (AFFINE.step_energy(far) - AFFINE.step_energy(probe)) / (1 << 16)
    c = shape.decode_ctx_tokens
    return t + AFFINE.s_per_ctx_token * c, e + j_per_token * c


@given(st.lists(st.tuples(st.integers(1, 8192), st.integers(0, 4096), st.integers(1, 256), st.integers(0, 4096)),
                min_size=1, max_size=8))
def test_time_and_energy_follows_the_documented_rule(steps):
    q = QuantizedCoster(AFFINE, per_octave=16)
    for p, past, b, ctx in steps * 2:  # the second pass reads the caches
        shape = StepShape(p, 1, prefill_pairs(p, past), b, b * ctx)
        want = _by_the_docstring(shape, 16)
        assert q.step_time_and_energy(p, 1, shape.prefill_attn_pairs, b, b * ctx) == want
        assert (q.step_time(shape), q.step_energy(shape)) == want
