"""Predict every metric of one benchmark run (a `Setup`) from a replica's step cost, or from a serving simulation.

Fixed-batch and single-stream runs use the step model only, in closed form:
  TTFT = prefill of the whole batch (+ the first decode step where the engine's published TTFT includes it);
  decode step k reads context input_len + k; the sum over all decode steps uses `decode_affine` (exactly
  base_s + s_per_ctx_token * C per step), segment by segment when the engine reads KV up to a compiled bucket;
  TPOT p50 = the step at mid-generation context, TPOT p99 = the step at 99 % of the generation;
  E2E = prefill + all decode steps; static-batch throughput = batch x output_len / E2E (x data-parallel replicas).
Offline and server runs go to the serving simulator through the backend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from infersim.analyze.validate_setup import Rules, Setup, next_pow2
from infersim.cost.protocol import StepCoster
from infersim.errors import InputError
from infersim.graph.batch import StepShape, decode, prefill


class Backend(Protocol):
    """What validation needs from the cost and serving layers (tests substitute small fakes)."""

    def coster(self, setup: Setup, tp: int) -> StepCoster:
        """The replica's step model; raises InputError when the model does not fit."""
        ...

    def serve(self, setup: Setup, tp: int, coster: StepCoster, requests: int) -> Mapping[str, float]:
        """Schema metrics of one replica under the run's load (latencies in ms, throughputs per replica)."""
        ...

    def allowed_tp(self, setup: Setup) -> tuple[int, ...]:
        """TP degrees the engine supports on the setup's chip; empty = any."""
        ...

    def concurrency(self, setup: Setup, coster: StepCoster) -> int:
        """Sequences one replica runs at once on this setup (batch limit and KV capacity)."""
        ...


@dataclass(frozen=True)
class Prediction:
    metrics: Mapping[str, float]  # schema metric name -> value in the schema unit (ms, tok/s, req/s, samples/s)
    tp: int
    replicas: int
    breakdown: Mapping[str, float] = field(default_factory=dict)  # seconds of the parts, for the diagnosis
    notes: tuple[str, ...] = ()  # what bounds the representative steps (from the step model's breakdown)


def step_note(coster: StepCoster, shape: StepShape, label: str) -> str:
    """'decode step 7.1 ms memory-bound, largest part mlp 55% (memory)' when the coster exposes `cost(shape)`."""
    cost_of = getattr(coster, "cost", None)
    if cost_of is None:
        return ""
    step = cost_of(shape)
    total = step.total.seconds
    parts = step.by_class() if hasattr(step, "by_class") else {}
    if not parts or total <= 0:
        return f"{label} {total * 1e3:.3g} ms"
    name, part = max(parts.items(), key=lambda kv: kv[1].seconds)
    return (f"{label} {total * 1e3:.3g} ms {step.total.bound}-bound, largest part {name} "
            f"{part.seconds / total:.0%} ({part.bound})")


@dataclass(frozen=True)
class Buckets:
    """KV/prompt lengths an engine computes on: exact (None) or powers of two from `min_tokens` up to `compiled`."""

    compiled: int | None
    min_tokens: int = 128

    def of(self, tokens: int) -> int:
        if self.compiled is None:
            return tokens
        return min(self.compiled, max(self.min_tokens, next_pow2(tokens)))


def decode_sum_s(coster: StepCoster, batch: int, first_ctx: int, steps: int, buckets: Buckets) -> float:
    """Seconds of `steps` decode steps of `batch` sequences at contexts first_ctx, first_ctx + 1, ..."""
    if steps <= 0:
        return 0.0
    base_s, per_tok_s = coster.decode_affine(batch)
    if buckets.compiled is None:
        ctx_sum = steps * first_ctx + steps * (steps - 1) // 2
        return steps * base_s + per_tok_s * batch * ctx_sum
    total, ctx, last = 0.0, first_ctx, first_ctx + steps - 1
    while ctx <= last:
        bucket = buckets.of(ctx)
        seg_end = last if bucket >= buckets.compiled else min(last, bucket)
        n = seg_end - ctx + 1
        total += n * (base_s + per_tok_s * batch * bucket)
        ctx = seg_end + 1
    return total


def static_batch(setup: Setup, coster: StepCoster, tp: int, buckets: Buckets) -> Prediction:
    """All metrics of a static batch: prefill together, then decode to completion."""
    b, inp, out = setup.batch or 1, setup.input_len, setup.output_len
    prefill_s = coster.step_time(prefill(b, buckets.of(inp)))
    first = 1 if setup.ttft_includes_first_decode else 0
    steps = out - 1 + first

    def step_at(ctx: int) -> float:
        return coster.step_time(decode(b, buckets.of(ctx)))

    ttft_s = prefill_s + (step_at(inp + 1) if first else 0.0)
    decode_s = decode_sum_s(coster, b, inp + 1, steps, buckets)
    e2e_s = prefill_s + decode_s
    tpot_mean_s = (e2e_s - ttft_s) / (out - 1) if out > 1 else step_at(inp + 1)
    replicas = setup.replicas(tp)
    ms = 1e3
    metrics = {
        "ttft_mean": ttft_s * ms, "ttft_p50": ttft_s * ms, "ttft_p99": ttft_s * ms,
        "tpot_mean": tpot_mean_s * ms, "itl_mean": tpot_mean_s * ms,
        "tpot_p50": step_at(inp + max(1, out // 2)) * ms, "tpot_p99": step_at(inp + max(1, round(0.99 * out))) * ms,
        "e2e_latency_mean": e2e_s * ms, "e2e_latency_p50": e2e_s * ms,
        "output_throughput": replicas * b * out / e2e_s, "total_throughput": replicas * b * (inp + out) / e2e_s,
        "request_throughput": replicas * b / e2e_s, "samples_per_s": replicas * b / e2e_s / setup.beams,
    }
    breakdown = {"prefill_s": prefill_s, "decode_s": decode_s, "decode_step_mid_s": metrics["tpot_p50"] / ms}
    notes = (step_note(coster, prefill(b, buckets.of(inp)), "prefill"),
             step_note(coster, decode(b, buckets.of(inp + max(1, out // 2))), "decode"))
    return Prediction(metrics, tp, replicas, breakdown, notes)


def _scaled(sim: Mapping[str, float], replicas: int, beams: int) -> dict[str, float]:
    out = dict(sim)
    for key in ("output_throughput", "total_throughput", "request_throughput"):
        if key in out:
            out[key] *= replicas
    if "request_throughput" in out:
        out["samples_per_s"] = out["request_throughput"] / beams
    if "itl_mean" not in out and "tpot_mean" in out:
        out["itl_mean"] = out["tpot_mean"]
    return out


def extrapolated(setup: Setup, small: Mapping[str, float], n_small: int, big: Mapping[str, float], n_big: int,
                 n_full: int) -> dict[str, float]:
    """Throughputs of a run of `n_full` requests (offline, or server at the row's arrival rate) from simulations
    of n_small < n_big requests: the makespan grows by (n_full - n_big) / (steady completion rate between the
    two), which is the arrival rate when the replica keeps up and its capacity when it does not. Latencies are
    those of the n_big simulation."""
    span_small = n_small / small["request_throughput"]
    span_big = n_big / big["request_throughput"]
    rate = (n_big - n_small) / max(span_big - span_small, 1e-12)
    span = span_big + (n_full - n_big) / rate
    out = dict(big)
    out["request_throughput"] = n_full / span
    out["output_throughput"] = n_full * setup.output_len / span
    out["total_throughput"] = n_full * (setup.input_len + setup.output_len) / span
    return out


def benchmark_requests(setup: Setup) -> int:
    """Requests (samples) the benchmark sends: its dataset once, or for a server run with a minimum duration at
    least qps x that duration."""
    if setup.scenario == "server" and setup.qps and setup.min_duration_s > 0:
        return max(setup.requests, math.ceil(setup.qps * setup.min_duration_s))
    return setup.requests


def sim_sizes(setup: Setup, concurrency: int, replicas: int, rules: Rules) -> tuple[int, int]:
    """(requests the benchmark sends one replica, requests to simulate) -- see validate_benchmarks.yaml."""
    full = max(1, benchmark_requests(setup) // replicas) * setup.beams
    if full <= rules.exact_sim_requests:
        return full, full
    if setup.scenario == "server":  # latencies need the queue's steady state: simulate the run, or a long part
        return full, min(full, rules.server_sim_requests)
    if setup.spread is not None:  # two short runs of random lengths differ by their tails: simulate all of it
        return full, min(full, rules.max_sim_requests)
    return full, min(full, rules.max_sim_requests, max(rules.min_sim_requests, rules.sim_generations * concurrency))


def queueing_note(sim: Mapping[str, float], prefill_s: float) -> str:
    """Flags a run whose simulated TTFT is mostly waiting: the arrival rate is at or above the predicted capacity
    (or all requests arrive at once), so TTFT is very sensitive to any error in the step time."""
    ttft_ms = sim.get("ttft_mean", 0.0)
    ratio = ttft_ms / max(prefill_s * 1e3, 1e-9)
    return f"TTFT is {ratio:.0f}x one prefill: queueing-dominated" if ratio > 5 else ""


def offline_proxy(setup: Setup, coster: StepCoster, tp: int, backend: Backend) -> Prediction:
    """A closed-form stand-in for an offline simulation, used to rank TP choices: a static batch at the
    replica's concurrency (throughput metrics only; queueing latencies are left out)."""
    batch = backend.concurrency(setup, coster)
    pred = static_batch(replace(setup, batch=batch, ttft_includes_first_decode=False), coster, tp, Buckets(None))
    keep = ("output_throughput", "total_throughput", "request_throughput", "samples_per_s")
    return replace(pred, metrics={k: v for k, v in pred.metrics.items() if k in keep})


def served(setup: Setup, coster: StepCoster, tp: int, backend: Backend, rules: Rules) -> Prediction:
    """Offline/server metrics from one simulated replica; throughputs scale with the replica count."""
    replicas = setup.replicas(tp)
    full, n = sim_sizes(setup, backend.concurrency(setup, coster), replicas, rules)
    sim = backend.serve(setup, tp, coster, n)
    if n < full:
        half = max(1, n // 2)
        sim = extrapolated(setup, backend.serve(setup, tp, coster, half), half, sim, n, full)
    batch = backend.concurrency(setup, coster)
    notes = (queueing_note(sim, coster.step_time(prefill(1, setup.input_len))),
             step_note(coster, prefill(1, setup.input_len), "prefill"),
             step_note(coster, decode(batch, setup.input_len + setup.output_len // 2), f"decode x{batch}"))
    return Prediction(_scaled(sim, replicas, setup.beams), tp, replicas, {"simulated_requests": float(n)}, notes)


def tp_candidates(setup: Setup, allowed: tuple[int, ...] = ()) -> list[int]:
    """The row's TP, or every power of two (or engine-supported degree) that divides the available units."""
    if setup.tp is not None:
        return [setup.tp]
    span = setup.units // setup.pp
    options = allowed or tuple(1 << i for i in range(span.bit_length()))
    return sorted(t for t in options if t <= span and span % t == 0)


def fitting_costers(setup: Setup, backend: Backend, min_requests: int) -> tuple[list[tuple[int, StepCoster]], str]:
    """Every candidate TP whose replica fits with KV room for `min_requests` whole requests (the row's TP
    always counts as fitting when it builds), and the last refusal."""
    fits, last = [], ""
    need = min_requests * (setup.input_len + setup.output_len)
    for tp in tp_candidates(setup, backend.allowed_tp(setup)):
        try:
            coster = backend.coster(setup, tp)
        except InputError as exc:
            last = str(exc)
            continue
        if setup.tp is not None or coster.kv_capacity_tokens >= need:
            fits.append((tp, coster))
        else:
            last = f"TP{tp} holds KV for fewer than {min_requests} requests"
    return fits, last


def choose_coster(setup: Setup, backend: Backend, min_requests: int) -> tuple[int, StepCoster]:
    """The stated TP rule: the row's TP; when it is not published, among the fitting TP degrees the one whose
    data-parallel replicas give the highest closed-form offline throughput over the available units (what a
    submitter tuning for throughput picks; ties go to the smaller TP). Raises InputError when none fits."""
    fits, last = fitting_costers(setup, backend, min_requests)
    if not fits:
        raise InputError(last or "no tensor-parallel degree fits")
    if len(fits) == 1:
        return fits[0]

    def throughput(item: tuple[int, StepCoster]) -> float:
        return offline_proxy(setup, item[1], item[0], backend).metrics["output_throughput"]

    best = max(fits, key=lambda item: (throughput(item), -item[0]))
    return best
