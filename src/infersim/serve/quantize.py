"""A caching wrapper that evaluates a StepCoster on shapes rounded up to a geometric grid.

A detailed step model can take a millisecond per uncached shape, and a busy server sees a new mixed
(prefill + decode) shape at almost every step. Rounding the token counts *up* to `per_octave` grid points per
doubling bounds the number of distinct shapes and makes each prediction conservative: a step is costed as if it
processed at most 1/per_octave more tokens (3.1% at the default 32; counts up to 2 * per_octave are exact),
and at most about 6/per_octave more prefill query-key pairs (pairs are rounded on a grid four times coarser:
attention over the prompt is a minor share of a prefill step, so this moves step time far less than 1%).
Pure-decode runs are unaffected: they use `decode_affine`, which is exact.

KV tokens read by the decodes of a mixed step are not rounded when the wrapped model's step time is affine in
them with the decode slope (`decode_affine`): this is checked on a probe shape at the two decode-batch grid points
around the step's batch size (so the number of cold costings stays bounded), and where it does not hold the
KV-token count is rounded like the others. The decode batch size of a mixed step
is interpolated linearly between neighbours on a grid of two points per octave (1, 2, 3, 4, 6, 8, 12, ...):
exact when step time is affine in it, and a small error where the model bends (a roofline max()).

The simulator asks for a mixed step's time and energy in one call (`step_time_and_energy`, from the five
StepShape counts without building the shape); the rounding and interpolation of a step less its decodes' KV
tokens is remembered by the exact counts, so a repeated prompt length at a repeated batch size costs one lookup.
"""

from __future__ import annotations

from infersim.cost.protocol import StepCoster, WrappedCoster
from infersim.graph.batch import StepShape

PARTS_LIMIT = 1 << 17  # entries of QuantizedCoster.parts kept before it starts over (tens of MB at most)


def round_up(x: int, per_octave: int) -> int:
    """The smallest grid value >= x; the grid is exact up to 2*per_octave, then per_octave points per doubling."""
    if x <= 2 * per_octave:
        return x
    step = 1 << (x.bit_length() - 1 - per_octave.bit_length() + 1)  # spacing: 2^e / per_octave (power of two)
    return -(-x // step) * step


def batch_grid(b: int) -> tuple[int, int]:
    """Neighbouring points of the grid 1, 2, 3, 4, 6, 8, 12, 16, ... around b (equal when b is on it)."""
    if b <= 4:
        return b, b
    p = 1 << (b.bit_length() - 1)  # p <= b < 2p; grid points p, 1.5p, 2p
    mid = p + p // 2
    return (p, p) if b == p else ((p, mid) if b <= mid else (mid, 2 * p))


class QuantizedCoster(WrappedCoster):
    """`coster` with step time and energy cached on rounded-up shapes (decode_affine, capacity and power pass)."""

    def __init__(self, coster: StepCoster, per_octave: int = 32) -> None:
        super().__init__(coster)
        self.per_octave = per_octave
        self.cache: dict[tuple[int, int, int, int, int], tuple[float, float]] = {}  # rounded shape -> (s, J)
        self.ctx_slopes: dict[int, tuple[float, float] | None] = {}  # decode batch -> (s, J) per KV token
        self.last: tuple[StepShape | None, tuple[float, float]] = (None, (0.0, 0.0))  # time, then energy
        # exact step (less its decodes' KV tokens) -> _part(): most steps repeat one, so one lookup costs them
        self.parts: dict[tuple[int, int, int, int], tuple] = {}

    def _slopes(self, b: int) -> tuple[float, float] | None:
        """(s, J) per KV token read if step time is affine in it with the decode slope at both decode-batch grid
        points around b (mixed steps are interpolated between them; checking the grid, not every b, keeps the
        number of cold step costings bounded), else None."""
        lo, hi = batch_grid(b)
        at_lo, at_hi = self._grid_slopes(lo), self._grid_slopes(hi)
        if at_lo is None or at_hi is None or abs(at_lo[0] - at_hi[0]) > 1e-9 * abs(at_lo[0]):
            return None
        return at_lo

    def _grid_slopes(self, b: int) -> tuple[float, float] | None:
        if b not in self.ctx_slopes:
            slope = self.inner.decode_affine(b)[1]
            probe, far = StepShape(256, 1, 256 * 257 // 2, b, 0), StepShape(256, 1, 256 * 257 // 2, b, 1 << 16)
            t0, t1 = self.inner.step_time(probe), self.inner.step_time(far)
            exact = abs(t1 - t0 - slope * (1 << 16)) <= 1e-9 * max(t1, 1e-12)
            e0, e1 = self.inner.step_energy(probe), self.inner.step_energy(far)
            self.ctx_slopes[b] = (slope, (e1 - e0) / (1 << 16)) if exact else None
        return self.ctx_slopes[b]

    def _prefill_key(self, prefill_tokens: int, prefill_attn_pairs: int) -> tuple[int, int]:
        """Prompt tokens rounded up; prefill pairs scaled with the square of that rounding (so one rounded prompt
        length maps to one pair count), then rounded up on a grid four times coarser."""
        q = self.per_octave
        tokens = round_up(prefill_tokens, q)
        pairs = prefill_attn_pairs
        if tokens != prefill_tokens:
            pairs = -(-pairs * tokens * tokens // (prefill_tokens * prefill_tokens))
        return tokens, round_up(pairs, max(q // 4, 2))

    def _at(self, key: tuple[int, int, int, int, int]) -> tuple[float, float]:
        got = self.cache.get(key)
        if got is None:
            shape = StepShape(*key)
            got = self.cache[key] = (self.inner.step_time(shape), self.inner.step_energy(shape))
        return got

    def _part(self, prefill_tokens: int, n: int, prefill_attn_pairs: int, b: int) \
            -> tuple[float, float, tuple[float, float] | None, tuple[int, ...]]:
        """What a step costs apart from its decodes' KV tokens: (s, J, (s, J) per KV token, ()) where the step is
        affine in those tokens, else (0, 0, None, rounded key without the KV tokens)."""
        tokens, pairs = self._prefill_key(prefill_tokens, prefill_attn_pairs)
        slopes = self._slopes(b) if b else None
        if slopes is None:
            return 0.0, 0.0, None, (tokens, n, pairs, b)
        lo, hi = batch_grid(b)
        t, e = self._at((tokens, n, pairs, lo, 0))
        if hi != lo:  # linear in the decode batch between grid points
            t1, e1 = self._at((tokens, n, pairs, hi, 0))
            f = (b - lo) / (hi - lo)
            t, e = t + f * (t1 - t), e + f * (e1 - e)
        return t, e, slopes, ()

    def step_time_and_energy(self, prefill_tokens: int, prefill_seqs: int, prefill_attn_pairs: int,
                             decode_seqs: int, decode_ctx_tokens: int) -> tuple[float, float]:
        """(step_time, step_energy) of the step of this StepShape, in one call and without building the shape:
        the serving simulator's fast path (it uses it when a coster has it)."""
        parts = self.parts
        key = (prefill_tokens, prefill_seqs, prefill_attn_pairs, decode_seqs)
        part = parts.get(key)
        if part is None:
            if len(parts) >= PARTS_LIMIT:  # bounds memory on long runs; entries are recomputed identically
                parts.clear()
            part = parts[key] = self._part(*key)
        t, e, slopes, rounded = part
        c = decode_ctx_tokens
        if slopes is None:
            return self._at((*rounded, round_up(c, self.per_octave)))
        return t + slopes[0] * c, e + slopes[1] * c

    def _lookup(self, shape: StepShape) -> tuple[float, float]:
        if shape is self.last[0]:  # step_time then step_energy of the same step
            return self.last[1]
        got = self.step_time_and_energy(shape.prefill_tokens, shape.prefill_seqs, shape.prefill_attn_pairs,
                                        shape.decode_seqs, shape.decode_ctx_tokens)
        self.last = (shape, got)
        return got

    def step_time(self, shape: StepShape) -> float:
        return self._lookup(shape)[0]

    def step_energy(self, shape: StepShape) -> float:
        return self._lookup(shape)[1]
