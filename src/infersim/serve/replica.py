"""One replica under continuous (iteration-level) batching, with chunked prefill, prefix caching, speculative
decoding, paged-KV preemption and the prefill/decode roles of a disaggregated cluster.

Time advances in *segments*: either one step that holds prefill work (a prompt or a chunk, plus the running
decodes), or a run of k pure-decode steps. While only decodes run, the batch is fixed until the next arrival or
completion, and the protocol's `decode_affine(b) -> (base, slope)` makes step j of the run cost
`base + slope * (C0 + g*j)` (C0: KV tokens read at the first step, g: tokens the batch adds per step), so k steps
cost `k*base + slope*(k*C0 + g*k*(k-1)/2)`. A run is cut at the first completion, at the first step that would
need more KV blocks than are free, and (when a request arrives that could join) at the step boundary after the
arrival. Results equal stepping one step at a time (`macro_steps=False`), up to floating-point rounding.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from heapq import heappop, heappush

from infersim.cost.protocol import StepCoster
from infersim.graph.batch import StepShape, prefill_pairs
from infersim.serve.kvcache import PagedKV
from infersim.serve.policies import ContinuousPolicy, SpeculativeCoster

PRI_ARRIVAL, PRI_HANDOFF, PRI_STEP = 0, 1, 2  # event priorities at equal times: arrivals join the next step


class Book:
    """Per-request inputs and results shared by all replicas of one run (plain lists: fast scalar access)."""

    def __init__(self, input_tokens: list[int], output_tokens: list[int], prefix_id: list[int],
                 prefix_tokens: list[int]) -> None:
        n = len(input_tokens)
        self.input_tokens, self.output_tokens = input_tokens, output_tokens
        self.prefix_id, self.prefix_tokens = prefix_id, prefix_tokens
        self.first_token_s = [math.nan] * n
        self.finish_s = [math.nan] * n
        self.max_itl_s = [0.0] * n
        self.replica = [-1] * n


class Seq:
    """A request inside a replica: its progress and the KV it holds."""

    __slots__ = ("done", "end_step", "join_seg", "kv_len", "last_s", "max_gap_s", "off", "order", "output",
                 "pf_left", "pf_past", "prefix_id", "prompt", "reserved", "resume_s", "rid")

    def __init__(self, rid: int, prompt: int, output: int, prefix_id: int = -1) -> None:
        self.rid, self.prompt, self.output, self.prefix_id = rid, prompt, output, prefix_id
        self.done = 0  # output tokens generated so far (while running: derived from end_step)
        self.kv_len = 0  # KV tokens held outside this replica's pool (swapped out / handed off); 0: recompute
        self.resume_s = 0.0  # seconds to bring that KV back into the pool
        self.pf_left = self.pf_past = 0  # prefill tokens still to process / already cached
        self.off = 0.0  # running: KV length = off + tokens_per_step * S
        self.end_step = -1  # running: the replica step count at which the last token is produced
        self.order = -1  # admission order on this replica (the most recent is preempted first)
        self.reserved = 0  # blocks held (whole-sequence layout, or while prefilling)
        self.join_seg = 0
        self.last_s = math.nan  # time of the latest token
        self.max_gap_s = 0.0


class SuffixMax:
    """Values appended in order, and the largest of those from the j-th on in O(log n): only the values larger
    than every later one are kept (a decreasing stack), with their positions."""

    __slots__ = ("count", "positions", "values")

    def __init__(self) -> None:
        self.count = 0
        self.positions: list[int] = []
        self.values: list[float] = []

    def append(self, value: float) -> None:
        positions, values = self.positions, self.values
        while values and values[-1] <= value:
            values.pop()
            positions.pop()
        positions.append(self.count)
        values.append(value)
        self.count += 1

    def max_from(self, j: int) -> float:
        """max(all values[j:]) for 0 <= j < count."""
        return self.values[bisect_left(self.positions, j)]


@dataclass(frozen=True)
class StepRecord:
    """One segment for the timeline: a step with prefill work, or a run of `steps` decode steps."""

    replica: int
    start_s: float
    duration_s: float
    kind: str  # "prefill" (may include decodes) or "decode"
    steps: int
    batch: int
    prefill_tokens: int


class Replica:
    """A model copy on TP x PP chips: waiting queue, running batch, paged KV, and the segment in progress."""

    def __init__(self, index: int, coster: StepCoster, policy: ContinuousPolicy, book: Book, role: str = "both",
                 sample_period_s: float = 1.0, record_limit: int = 0) -> None:
        self.index, self.policy, self.book, self.role = index, policy, book, role
        spec = policy.speculative
        self.coster: StepCoster = SpeculativeCoster(coster, spec) if spec else coster
        self.tps = spec.tokens_per_step if spec else 1.0  # output tokens per decode step per sequence
        self.kv = PagedKV(coster.kv_capacity_tokens, policy.kv_block_tokens)
        self.grow = policy.kv_block_tokens > 0 and not policy.reserve_full  # blocks allocated as tokens come
        self.mixed = policy.mixed_steps or policy.chunked_prefill  # decodes ride along with prefill steps
        self.pauses: list[int] = []  # segments (unmixed prefill steps) since running decodes last produced a token
        # With one token per step, lengths are integers and a sequence starts a new block whenever its length
        # is a multiple of the block size: counting running sequences by (-length) mod block at S = 0 replaces
        # per-sequence loops (doubled so that any window of residues is one slice).
        self.unit = self.grow and self.tps == 1.0
        self.residues = [0] * (2 * policy.kv_block_tokens) if self.unit else []
        self.idle_power_w = coster.idle_power_w
        self.waiting: deque[Seq] = deque()
        self.prefilling: list[Seq] = []
        self.running: list[Seq] = []
        self.fin_heap: list[tuple[int, int, Seq]] = []
        self.prefixes: OrderedDict[int, None] = OrderedDict()
        self.S = 0  # decode steps taken by this replica (a shared clock for the running sequences)
        self.sum_off = 0.0
        # shared_prefix_reads: running sequences per prefix id, and the prefix tokens not re-read (all but one
        # member's prefix), subtracted from the decode context
        self.prefix_members: dict[int, int] = {}
        self.shared_excess = 0
        # shared_prefix_kv: admitted sequences per prefix id (later members skip the prefix's prefill and, under
        # whole-sequence reservation, its blocks: the first one admitted reserves them)
        self.track_holders = policy.shared_prefix_kv
        self.share_kv = policy.shared_prefix_kv and not self.grow
        self.kv_holders: dict[int, int] = {}
        self.run_blocks = 0
        self.orders = 0
        # The longest step of each segment, for per-request max ITL: every segment's where steps are unmixed
        # (`seg_max`: pauses rewrite entries), else only what the longest from a segment on needs (`seg_peaks`).
        self.segments = 0
        self.seg_max = array("d")
        self.seg_peaks = SuffixMax()
        self.busy_s = self.energy_j = 0.0
        self.tokens_out = 0.0  # output tokens produced (expected tokens under speculative decoding)
        self.steps = 0
        self.version = 0
        self.active = self.waking = False
        self.seg: tuple = ()
        self.sample_period_s, self.next_sample_s = sample_period_s, 0.0
        self.kv_samples = array("d")  # (time, occupancy) pairs
        self.record_limit, self.records = record_limit, []
        self.affine: dict[int, tuple[float, float, float, float]] = {}
        self.macro_steps = policy.macro_steps
        # (seconds, joules) of the step of StepShape(*five counts), in one call where the coster offers one
        self.time_and_energy: Callable[[int, int, int, int, int], tuple[float, float]] = \
            getattr(self.coster, "step_time_and_energy", None) or partial(_protocol_time_and_energy, self.coster)

    # ------------------------------------------------------------------ queries used by routers
    def free_kv_fraction(self) -> float:
        return self.kv.free_blocks / max(self.kv.capacity_blocks, 1)

    def has_prefix(self, prefix_id: int) -> bool:
        return prefix_id in self.prefixes

    # ------------------------------------------------------------------ events
    def enqueue(self, seq: Seq, t: float) -> tuple | None:
        """A request (or a handed-off / swapped sequence) joins the queue at time t; returns a new step event."""
        self.waiting.append(seq)
        self.book.replica[seq.rid] = self.index
        if not self.active:
            return self._wake(t)
        return self._cut_run(t)

    def _wake(self, t: float) -> tuple | None:
        """An idle replica starts its next step at t, after every arrival at t (step events sort after them)."""
        if self.waking:
            return None
        self.waking = True
        self.version += 1
        return (t, PRI_STEP, self.index, self.version)

    def on_step_end(self, t: float, version: int) -> tuple[tuple | None, Sequence[Seq], Sequence[Seq]]:
        """The segment ended at t: (next step event, finished sequences, sequences handed off to decode)."""
        if version != self.version:
            return None, (), ()
        if self.waking:
            self.waking = False
            return self._start(t), (), ()
        finished, handed = self._end_segment(t)
        return self._start(t), finished, handed

    # ------------------------------------------------------------------ segment end
    def _end_segment(self, t: float) -> tuple[list[Seq], list[Seq]]:
        seg = self.seg
        k, work = seg[2], seg[3]
        if seg[0] == "prefill":
            self._account_prefill(t, seg)
        else:
            self._account_decode(t, seg)
        self.steps += k if k > 1 else 1
        S = self.S = self.S + k
        if self.grow:
            self._grow_blocks(k)
        finished: list[Seq] = []
        handed: list[Seq] = []
        for seq, chunk in work:  # empty for decode runs
            seq.pf_left -= chunk
            seq.pf_past += chunk
            if seq.pf_left == 0:
                self.prefilling.remove(seq)
                self._prefill_done(seq, t, finished, handed)
        self.active = False
        heap = self.fin_heap
        while heap and heap[0][0] <= S:
            end, order, seq = heappop(heap)
            if seq.end_step == end and seq.order == order:
                self._leave_running(seq)
                self._finish(seq, t, finished)
        return finished, handed

    def _prefill_done(self, seq: Seq, t: float, finished: list[Seq], handed: list[Seq]) -> None:
        seq.done += 1
        self.tokens_out += 1
        if seq.done == 1:
            self.book.first_token_s[seq.rid] = t
        elif seq.last_s == seq.last_s:  # a recomputed sequence: the gap spans its preemption
            seq.max_gap_s = max(seq.max_gap_s, t - seq.last_s)
        seq.last_s = t
        if self.policy.prefix_caching and seq.prefix_id >= 0:
            self._remember_prefix(seq.prefix_id)
        if seq.done >= seq.output:
            self._free_reserved(seq)
            self._finish(seq, t, finished)
        elif self.role == "prefill":
            self._free_reserved(seq)
            seq.kv_len = seq.pf_past
            handed.append(seq)
        else:
            self._join_running(seq, seq.pf_past)

    def _finish(self, seq: Seq, t: float, finished: list[Seq]) -> None:
        self.book.finish_s[seq.rid] = t
        self.book.max_itl_s[seq.rid] = seq.max_gap_s
        finished.append(seq)

    # ------------------------------------------------------------------ running set
    def _join_running(self, seq: Seq, kv_len: int) -> None:
        tps, S = self.tps, self.S
        off = seq.off = kv_len - tps * S
        end = seq.end_step = S + math.ceil((seq.output - seq.done) / tps)
        self.sum_off += off
        if self.unit:
            self._count_residue(off, 1)
        if self.policy.shared_prefix_reads and seq.prefix_id >= 0:
            self._share_prefix(seq, 1)
        self.running.append(seq)
        self.run_blocks += seq.reserved
        heappush(self.fin_heap, (end, seq.order, seq))
        seq.join_seg = self.segments

    @staticmethod
    def _tally(counts: dict[int, int], key: int, change: int) -> int:
        """Add `change` to counts[key], dropping the key at zero; returns the count before."""
        before = counts.get(key, 0)
        if before + change:
            counts[key] = before + change
        else:
            del counts[key]
        return before

    def _share_prefix(self, seq: Seq, change: int) -> None:
        """A member of a prefix group joins (+1) or leaves (-1) the batch: every member but one reads no prefix."""
        before = self._tally(self.prefix_members, seq.prefix_id, change)
        self.shared_excess += (max(before + change - 1, 0) - max(before - 1, 0)) * self.book.prefix_tokens[seq.rid]

    def _leave_running(self, seq: Seq) -> None:
        """Take a sequence out of the batch, free its blocks, and fold its segment history into max_gap_s."""
        self.running.remove(seq)
        off, tps, S, kv = seq.off, self.tps, self.S, self.kv
        self.sum_off -= off
        if self.unit:
            self._count_residue(off, -1)
        if self.policy.shared_prefix_reads and seq.prefix_id >= 0:
            self._share_prefix(seq, -1)
        blocks = kv.blocks_for(off + tps * S) if self.grow else seq.reserved
        self.run_blocks -= blocks
        kv.free(blocks)
        if self.track_holders and seq.prefix_id >= 0:
            self._tally(self.kv_holders, seq.prefix_id, -1)
        output = seq.output
        seq.done = output - min(output, math.ceil((seq.end_step - S) * tps))
        seq.kv_len = int(off + tps * S)
        seq.end_step = -1
        j = seq.join_seg
        if j < self.segments:
            longest = self.seg_peaks.max_from(j) if self.mixed else max(self.seg_max[j:])
            seq.max_gap_s = max(seq.max_gap_s, longest)

    def _count_residue(self, off: float, delta: int) -> None:
        """Count a running sequence (KV length off + S) in, or out of, the residue table (see __init__)."""
        b = self.kv.block_tokens
        q = int(-off) % b
        self.residues[q] += delta
        self.residues[q + b] += delta

    def _grow_blocks(self, k: int) -> None:
        """Allocate the blocks the running sequences started during the k steps that just ended (grow layout)."""
        b = self.kv.block_tokens
        if self.unit:
            r = k % b
            new = self.run_blocks + len(self.running) * (k // b)
            if r:
                s0 = (self.S - k) % b
                new += sum(self.residues[s0:s0 + r])
        else:
            tps, S = self.tps, self.S
            new = sum(-int(-(s.off + tps * S) // b) for s in self.running)
        if new != self.run_blocks:
            self.kv.alloc(new - self.run_blocks)
            self.run_blocks = new

    def _next_step_blocks(self) -> int:
        """New blocks the next decode step needs."""
        if self.unit:
            return self.residues[self.S % self.kv.block_tokens]
        return sum(1 for c in self._crossings() if c <= 1)

    def _steps_that_fit(self, free: int) -> int:
        """Decode steps that can run before new blocks exceed `free` (which is less than the batch size)."""
        if self.unit:
            s0, acc = self.S % self.kv.block_tokens, 0
            for r in range(self.kv.block_tokens):
                acc += self.residues[s0 + r]
                if acc > free:
                    return r
            return self.kv.block_tokens
        return sorted(self._crossings())[free] - 1

    def _crossings(self) -> list[float]:
        """For each running sequence, the first decode step (1-based, from now) that needs a new KV block."""
        tps, S, b = self.tps, self.S, self.kv.block_tokens
        out = []
        for s in self.running:
            length = s.off + tps * S
            out.append(math.floor((-(-length // b) * b - length) / tps) + 1)
        return out

    # ------------------------------------------------------------------ segment start
    def _start(self, t: float) -> tuple | None:
        if t >= self.next_sample_s:
            self._sample_kv(t)
        # preemption is needed only when fewer blocks are free than sequences run (see _make_room)
        extra_s = self._make_room() if self.grow and self.kv.free_blocks < len(self.running) else 0.0
        if self.waiting:
            extra_s += self._admit(t)
        work = self._plan_prefill() if self.prefilling else ()
        if work or extra_s > 0.0:
            return self._begin_prefill_step(t, work, extra_s)
        if self.running:
            return self._begin_decode_run(t)
        return None

    def _make_room(self) -> float:
        """Preempt the most recently admitted sequences until the next decode step has its KV blocks (each
        running sequence needs at most one new block per step, so with that many free blocks nothing is done)."""
        extra_s = 0.0
        while self.grow and self.running and self.kv.free_blocks < len(self.running):
            if self._next_step_blocks() <= self.kv.free_blocks:
                break
            extra_s += self._preempt()
        return extra_s

    def _preempt(self) -> float:
        """Evict the latest-admitted sequence (vLLM order) to the front of the queue; returns swap-out seconds."""
        victims = self.prefilling or self.running
        seq = max(victims, key=lambda s: s.order)
        if seq in self.prefilling:
            self.prefilling.remove(seq)
            self._free_reserved(seq)
            seq.kv_len = 0
        else:
            self._leave_running(seq)
        self.waiting.appendleft(seq)
        if self.policy.preemption == "swap" and seq.kv_len > 0:
            self.kv.preempt_swap += 1
            seq.resume_s = seq.kv_len * self.policy.swap_s_per_token
            return seq.resume_s
        self.kv.preempt_recompute += 1
        seq.kv_len = 0
        return 0.0

    def _admit(self, t: float) -> float:
        """Admit queued sequences FCFS while slots and KV blocks allow, keeping one free block per running
        sequence for its next token (a watermark against immediate preemption); returns seconds of KV swap-in."""
        pol, kv, waiting, running, prefilling = self.policy, self.kv, self.waiting, self.running, self.prefilling
        chunked, grow = pol.chunked_prefill, self.grow
        extra_s = 0.0
        left = pol.max_tokens_per_step - len(running) - (sum(s.pf_left for s in prefilling) if prefilling else 0)
        while waiting and len(running) + len(prefilling) < pol.max_batch:
            seq = waiting[0]
            resident = seq.kv_len > 0
            plen = 0 if resident else seq.prompt + seq.done
            if not resident and (left <= 0 if chunked else plen > left and prefilling):
                break
            need = kv.blocks_for(seq.kv_len if resident else plen) if grow else \
                kv.blocks_for(seq.prompt + seq.output) - self._held_prefix_blocks(seq)  # never grows
            if need > kv.free_blocks - ((len(running) + resident) if grow else 0):
                break  # a resumed sequence also decodes in this step: keep a block for it too
            waiting.popleft()
            kv.alloc(need)
            seq.reserved, seq.order = need, self.orders
            if self.track_holders and seq.prefix_id >= 0:
                self._tally(self.kv_holders, seq.prefix_id, 1)
            self.orders += 1
            if resident:
                extra_s += seq.resume_s
                seq.resume_s, kv_len, seq.kv_len = 0.0, seq.kv_len, 0
                if seq.last_s == seq.last_s:
                    seq.max_gap_s = max(seq.max_gap_s, t - seq.last_s)
                self._join_running(seq, kv_len)
            else:
                self._start_prefill(seq, plen)
                left -= plen
        return extra_s

    def _held_prefix_blocks(self, seq: Seq) -> int:
        """Whole blocks of the sequence's prefix that another member already holds (shared_prefix_kv, reserve)."""
        if not (self.share_kv and seq.prefix_id >= 0 and seq.prefix_id in self.kv_holders):
            return 0
        b, tokens = self.kv.block_tokens, int(self.book.prefix_tokens[seq.rid])
        return tokens // b if b else tokens

    def _free_reserved(self, seq: Seq) -> None:
        """Free the blocks a sequence that is not running holds (finished at prefill, handed off, preempted)."""
        self.kv.free(seq.reserved)
        if self.track_holders and seq.prefix_id >= 0:
            self._tally(self.kv_holders, seq.prefix_id, -1)

    def _start_prefill(self, seq: Seq, plen: int) -> None:
        """Queue a prompt for prefill, minus the prefix already cached or, with shared_prefix_kv, being computed
        for another member of its group (beam search runs one context phase per sample)."""
        cached = self.policy.prefix_caching and seq.prefix_id in self.prefixes
        if cached:
            self.prefixes.move_to_end(seq.prefix_id)
        shared = self.track_holders and self.kv_holders.get(seq.prefix_id, 0) > 1
        hit = min(self.book.prefix_tokens[seq.rid], plen - 1) if cached or shared else 0
        seq.pf_past, seq.pf_left = hit, plen - hit
        self.prefilling.append(seq)

    def _remember_prefix(self, prefix_id: int) -> None:
        self.prefixes[prefix_id] = None
        self.prefixes.move_to_end(prefix_id)
        while len(self.prefixes) > self.policy.prefix_cache_entries:
            self.prefixes.popitem(last=False)

    def _plan_prefill(self) -> list[tuple[Seq, int]]:
        """Prefill work of the next step: whole prompts, or chunks filling the token budget after the decodes."""
        if not self.policy.chunked_prefill:
            return [(s, s.pf_left) for s in self.prefilling]
        left = self.policy.max_tokens_per_step - len(self.running)
        work = []
        for s in self.prefilling:
            chunk = min(s.pf_left, left)
            if chunk <= 0:
                break
            work.append((s, chunk))
            left -= chunk
        return work

    def _begin_prefill_step(self, t: float, work: list[tuple[Seq, int]], extra_s: float) -> tuple:
        """A step with prefill work (or a KV swap-in); the running decodes join it unless steps are unmixed."""
        b = len(self.running) if self.mixed or not work else 0
        tokens = pairs = 0
        for s, c in work:
            tokens += c
            pairs += prefill_pairs(c, s.pf_past)
        ctx = int(self.sum_off + self.tps * b * self.S - self.shared_excess) if b else 0
        step_s, step_j = self.time_and_energy(tokens, len(work), pairs, b, ctx)
        dur = step_s + extra_s
        self.energy_j += step_j + extra_s * self.idle_power_w
        if b and self.pauses:
            self._close_pauses(dur)
        self.seg, self.active = ("prefill", t, 1 if b else 0, work, b, tokens), True
        self.version += 1
        return (t + dur, PRI_STEP, self.index, self.version)

    def _close_pauses(self, next_step_s: float) -> None:
        """Decodes resume: the gap seen by a sequence whose last token came before pause p spans the pauses from
        p on plus the step that now produces its next token (sequences that joined later skip earlier pauses)."""
        acc = next_step_s
        for p in reversed(self.pauses):
            acc += self.seg_max[p]
            self.seg_max[p] = acc
        self.pauses.clear()

    def _begin_decode_run(self, t: float) -> tuple:
        b, tps = len(self.running), self.tps
        base, slope, e_base, e_slope = self.affine.get(b) or self._decode_coefficients(b)
        c0 = self.sum_off + tps * b * self.S - self.shared_excess
        if self.pauses:
            self._close_pauses(base + slope * c0)
        g = tps * b
        k = self._run_length(b)
        self.seg, self.active = ("decode", t, k, (), b, base, slope, c0, g, e_base, e_slope), True
        self.version += 1
        return (t + _run_seconds(k, base, slope, c0, g), PRI_STEP, self.index, self.version)

    def _run_length(self, b: int) -> int:
        """Decode steps of the run of b sequences that starts now (see the module docstring)."""
        heap = self.fin_heap
        top = heap[0]
        while top[2].end_step != top[0] or top[2].order != top[1]:
            heappop(heap)
            top = heap[0]
        k = top[0] - self.S
        if not self.macro_steps:
            return 1
        if not self.grow:
            return k
        kv = self.kv
        free = kv.free_blocks
        # every sequence starts at most one new block every block_tokens / tps steps; with fewer free blocks than
        # sequences, only `free` sequences may start a new block within the run
        fit = math.floor(kv.block_tokens * (free // b) / self.tps) if free >= b else self._steps_that_fit(free)
        if fit < k:
            k = fit
        return k if k > 1 else 1

    def _cut_run(self, t: float) -> tuple | None:
        """An arrival during a decode run: end the run at the first step boundary at or after t, if it can join."""
        seg = self.seg
        if seg[0] != "decode" or seg[2] == 1 or len(self.running) + len(self.prefilling) >= self.policy.max_batch:
            return None
        _, t0, k, _, b, base, slope, c0, g, e_base, e_slope = seg
        j = _steps_until(t - t0, base, slope, c0, g)
        if j >= k:
            return None
        self.seg = ("decode", t0, j, (), b, base, slope, c0, g, e_base, e_slope)
        self.version += 1
        return (t0 + _run_seconds(j, base, slope, c0, g), PRI_STEP, self.index, self.version)

    def _account_prefill(self, t: float, seg: tuple) -> None:
        """Busy time, tokens, longest step and timeline entry of the step with prefill work that ends at t (its
        energy was added when it began)."""
        t0, b = seg[1], seg[4]
        dur = t - t0
        self.busy_s += dur
        self.tokens_out += b * self.tps
        if b == 0 and self.running:  # the running decodes waited through this step
            self.pauses.append(self.segments)
        self._add_segment(dur)
        if self.record_limit:
            self._record(t0, dur, "prefill", 1, b, seg[5])

    def _account_decode(self, t: float, seg: tuple) -> None:
        """Busy time, tokens, energy, longest step and timeline entry of the decode run that ends at t."""
        _, t0, k, _, b, base, slope, c0, g, e_base, e_slope = seg
        self.busy_s += t - t0
        self.tokens_out += b * k * self.tps
        self.energy_j += k * e_base + e_slope * (k * c0 + g * k * (k - 1) / 2)  # same sum as time: affine
        first, last = base + slope * c0, base + slope * (c0 + g * (k - 1))
        self._add_segment(last if last >= first else first)
        if self.record_limit:
            self._record(t0, t - t0, "decode", k, b, 0)

    def _add_segment(self, longest_s: float) -> None:
        """A segment ended whose longest step took longest_s (see `segments` in __init__)."""
        if self.mixed:
            self.seg_peaks.append(longest_s)
        else:
            self.seg_max.append(longest_s)
        self.segments += 1

    def _decode_coefficients(self, b: int) -> tuple[float, float, float, float]:
        """(base_s, s_per_ctx_token, base_j, j_per_ctx_token) of a pure-decode step of b sequences, cached.

        Step energy is taken affine in the KV tokens read, like step time (the protocol guarantees it for time);
        its two coefficients come from `step_energy` at 0 and 2**20 context tokens."""
        got = self.affine.get(b)
        if got is None:
            base, slope = self.coster.decode_affine(b)
            e0 = self.coster.step_energy(StepShape(decode_seqs=b, decode_ctx_tokens=0))
            e1 = self.coster.step_energy(StepShape(decode_seqs=b, decode_ctx_tokens=1 << 20))
            got = self.affine[b] = (base, slope, e0, (e1 - e0) / (1 << 20))
        return got

    # ------------------------------------------------------------------ observation
    def _sample_kv(self, t: float) -> None:
        self.kv_samples.append(t)
        self.kv_samples.append(self.kv.occupancy)
        self.next_sample_s = t + self.sample_period_s

    def _record(self, t: float, dur: float, kind: str, k: int, b: int, prefill_tokens: int) -> None:
        if len(self.records) < self.record_limit:
            self.records.append(StepRecord(self.index, t, dur, kind, k, b, prefill_tokens))


def _protocol_time_and_energy(coster: StepCoster, *counts: int) -> tuple[float, float]:
    """(step_time, step_energy) of the step of StepShape(*counts), for costers without a `step_time_and_energy`."""
    shape = StepShape(*counts)
    return coster.step_time(shape), coster.step_energy(shape)


def _run_seconds(k: int, base: float, slope: float, c0: float, g: float) -> float:
    """Seconds of k decode steps whose j-th step reads c0 + g*j KV tokens."""
    return k * base + slope * (k * c0 + g * k * (k - 1) / 2)


def _steps_until(dt: float, base: float, slope: float, c0: float, g: float) -> int:
    """The smallest k >= 1 whose run of k steps ends at or after dt seconds."""
    a, b = slope * g / 2, base + slope * (c0 - g / 2)
    if a > 0:
        k = math.ceil((-b + math.sqrt(b * b + 4 * a * max(dt, 0.0))) / (2 * a))
    else:
        k = math.ceil(max(dt, 0.0) / b) if b > 0 else 1
    k = max(k, 1)
    while k > 1 and _run_seconds(k - 1, base, slope, c0, g) >= dt:
        k -= 1
    while _run_seconds(k, base, slope, c0, g) < dt:
        k += 1
    return k
