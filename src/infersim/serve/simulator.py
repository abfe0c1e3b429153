"""The discrete-event core: one event heap keyed (time, priority, seq) so ties resolve the same way every run.

Events are arrivals, handoffs (a prefilled sequence reaching the decode pool) and step ends; replicas and the
arrival source return their follow-up events and the loop pushes them. There is no global state: everything a
run touches is created by `simulate` and returned in a frozen `SimResult`.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from infersim.cost.protocol import StepCoster
from infersim.errors import InputError
from infersim.serve.cluster import Cluster, ReplicaSpec, uniform
from infersim.serve.kvcache import KVStats
from infersim.serve.policies import ContinuousPolicy, Policy, StaticPolicy
from infersim.serve.replica import PRI_ARRIVAL, PRI_HANDOFF, Book, Replica, Seq, StepRecord
from infersim.serve.router import make_router
from infersim.serve.static import StaticReplica
from infersim.serve.workload import Workload

ARRIVAL, HANDOFF, STEP = 0, 1, 2


@dataclass(frozen=True)
class ReplicaStats:
    index: int
    label: str
    role: str
    busy_s: float
    energy_j: float  # step energy only (idle energy is added by metrics over the run's span)
    idle_power_w: float
    steps: int
    tokens_out: float  # output tokens produced by this replica
    kv: KVStats
    kv_sample_s: np.ndarray  # sample times
    kv_occupancy: np.ndarray  # fraction of KV blocks in use at those times


@dataclass(frozen=True)
class SimResult:
    workload: str
    arrival_s: np.ndarray  # [n] actual arrival (closed loop: when the user sent it)
    first_token_s: np.ndarray  # [n]
    finish_s: np.ndarray  # [n]
    input_tokens: np.ndarray  # [n]
    output_tokens: np.ndarray  # [n]
    max_itl_s: np.ndarray  # [n] longest gap between consecutive tokens
    replica: np.ndarray  # [n] replica that produced the last token
    replicas: tuple[ReplicaStats, ...]
    records: tuple[StepRecord, ...]  # segments for the timeline (up to record_limit per replica)

    @property
    def n(self) -> int:
        return len(self.arrival_s)


Engine = Replica | StaticReplica


def _engine(i: int, spec: ReplicaSpec, book: Book, sample_period_s: float, record_limit: int) -> Engine:
    if isinstance(spec.policy, StaticPolicy):
        if spec.role != "both":
            raise InputError("static batching cannot serve in a disaggregated prefill/decode pool")
        return StaticReplica(i, spec.coster, spec.policy, book, spec.role, sample_period_s, record_limit)
    return Replica(i, spec.coster, spec.policy, book, spec.role, sample_period_s, record_limit)


def _check_fits(w: Workload, cluster: Cluster) -> None:
    """Every request must fit in every replica's KV cache, or the run cannot finish: say so before starting."""
    if w.n == 0:
        raise InputError("the workload has no requests")
    if w.users == 0 and np.any(np.diff(w.arrival_s) < 0):
        raise InputError("workload arrival times must be sorted (read_trace sorts a trace by arrival_s)")
    longest = int(np.max(w.input_tokens + w.output_tokens))
    for spec in cluster.replicas:
        cap = spec.coster.kv_capacity_tokens
        pol = spec.policy
        need = pol.max_batch * pol.bucket(longest) if isinstance(pol, StaticPolicy) else longest
        if need > cap:
            what = f"a full static batch of {pol.max_batch} padded sequences" if isinstance(pol, StaticPolicy) \
                else "the longest request (input + output)"
            raise InputError(f"{what} needs {need} KV tokens but replica {spec.label or 'replica'} holds {cap}; "
                             "use shorter requests, a smaller batch or a larger TP")


class _Run:
    """The mutable state of one simulation: heap, engines, router, arrival source."""

    def __init__(self, w: Workload, cluster: Cluster, sample_period_s: float, record_limit: int) -> None:
        self.w, self.cluster = w, cluster
        self.book = Book(w.input_tokens.tolist(), w.output_tokens.tolist(), w.prefix_id.tolist(),
                         w.prefix_tokens.tolist())
        self.arrival = w.arrival_s.tolist()
        self.engines = [_engine(i, s, self.book, sample_period_s, record_limit)
                        for i, s in enumerate(cluster.replicas)]
        self.front = [e for e in self.engines if e.role in ("both", "prefill")]
        self.back = [e for e in self.engines if e.role == "decode"]
        self.router, self.back_router = make_router(cluster.router), make_router(cluster.router)
        self.front_load, self.back_load = [0] * len(self.front), [0] * len(self.back)
        self.pool = {e.index: (self.back_load if e.role == "decode" else self.front_load,
                               (self.back if e.role == "decode" else self.front).index(e)) for e in self.engines}
        self.heap: list[tuple] = []
        self.seq = 0
        self.n, self.closed = w.n, w.users > 0
        self.next_rid = 0
        self.done = 0

    def push(self, t: float, pri: int, kind: int, a: object, b: int = 0) -> None:
        heapq.heappush(self.heap, (t, pri, self.seq, kind, a, b))
        self.seq += 1

    def push_step(self, ev: tuple | None) -> None:
        if ev is not None:
            self.push(ev[0], ev[1], STEP, ev[2], ev[3])

    def release(self, t: float) -> None:
        """Schedule the next arrival: open loop from the trace times, closed loop when a user is free."""
        rid = self.next_rid
        if rid < self.n:
            self.next_rid = rid + 1
            if self.closed:
                self.arrival[rid] = t
            self.push(self.arrival[rid], PRI_ARRIVAL, ARRIVAL, rid)

    def on_arrival(self, t: float, rid: int) -> None:
        b = self.book
        seq = Seq(rid, b.input_tokens[rid], b.output_tokens[rid], b.prefix_id[rid])
        i = self.router.pick(self.front_load, self.front, seq.prefix_id)
        self.front_load[i] += 1
        self.push_step(self.front[i].enqueue(seq, t))
        if not self.closed:
            self.release(t)

    def on_step(self, t: float, engine: Engine, version: int) -> None:
        ev, finished, handed = engine.on_step_end(t, version)
        if ev is not None:
            heapq.heappush(self.heap, (ev[0], ev[1], self.seq, STEP, ev[2], ev[3]))
            self.seq += 1
        if not finished and not handed:
            return
        loads, pos = self.pool[engine.index]
        loads[pos] -= len(finished) + len(handed)
        for seq in handed:
            self.push(t + self.cluster.transfer.seconds(seq.kv_len), PRI_HANDOFF, HANDOFF, seq)
        self.done += len(finished)
        if self.closed:
            for _ in finished:
                self.release(t)

    def on_handoff(self, t: float, seq: Seq) -> None:
        i = self.back_router.pick(self.back_load, self.back, seq.prefix_id)
        self.back_load[i] += 1
        self.push_step(self.back[i].enqueue(seq, t))

    def loop(self, progress: Callable[[int, int], None] | None) -> None:
        for _ in range(self.w.users or 1):
            self.release(0.0)
        heap, pop, engines, events = self.heap, heapq.heappop, self.engines, 0
        while heap:
            t, _, _, kind, a, b = pop(heap)
            if kind == STEP:
                engine = engines[a]
                if b == engine.version:  # else a step end that a cut or a wake-up replaced
                    self.on_step(t, engine, b)
            elif kind == ARRIVAL:
                self.on_arrival(t, a)
            else:
                self.on_handoff(t, a)
            events += 1
            if progress is not None and events % 65536 == 0:
                progress(self.done, self.w.n)


def simulate(workload: Workload, cluster: Cluster | StepCoster, policy: Policy | None = None, *,
             replicas: int = 1, router: str = "least-outstanding", sample_period_s: float = 1.0,
             record_limit: int = 0, progress: Callable[[int, int], None] | None = None) -> SimResult:
    """Serve `workload` on `cluster` (or on `replicas` copies of one StepCoster under `policy`)."""
    if not isinstance(cluster, Cluster):
        cluster = uniform(cluster, policy or ContinuousPolicy(), replicas, router)
    cluster.check()
    _check_fits(workload, cluster)
    run = _Run(workload, cluster, sample_period_s, record_limit)
    run.loop(progress)
    if progress is not None:
        progress(run.done, workload.n)
    return _result(run)


def _stats(i: int, e: Engine, spec: ReplicaSpec) -> ReplicaStats:
    samples = np.frombuffer(e.kv_samples, dtype=np.float64).reshape(-1, 2) if len(e.kv_samples) else \
        np.zeros((0, 2))
    return ReplicaStats(i, spec.label, spec.role, e.busy_s, e.energy_j, e.idle_power_w, e.steps, e.tokens_out,
                        e.kv.stats(),
                        samples[:, 0].copy(), samples[:, 1].copy())


def _result(run: _Run) -> SimResult:
    b, w = run.book, run.w
    stats = tuple(_stats(i, e, s) for i, (e, s) in enumerate(zip(run.engines, run.cluster.replicas, strict=True)))
    records = tuple(r for e in run.engines for r in e.records)
    return SimResult(w.name, np.asarray(run.arrival, dtype=np.float64), np.asarray(b.first_token_s),
                     np.asarray(b.finish_s), w.input_tokens.copy(), w.output_tokens.copy(),
                     np.asarray(b.max_itl_s), np.asarray(b.replica, dtype=np.int64), stats, records)


def unfinished(result: SimResult) -> int:
    """Requests that never produced their last token (0 unless the run was cut short)."""
    return int(np.count_nonzero(~np.isfinite(result.finish_s)))

