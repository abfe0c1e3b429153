"""`infersim simulate`: serve a workload on replicas of a model on an instance and report TTFT, TPOT, throughput,
energy; optionally write per-request CSV, a Perfetto timeline and the summary to --out."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.console import Console
from rich.progress import Progress

from infersim.analyze.perfetto import Counter, Slice, trace_events
from infersim.cli._common import STATUS_MARK, CatalogOpt, JsonOpt, catalog, console, print_json, table
from infersim.errors import InputError
from infersim.serve.cluster import Cluster, KVTransfer, disaggregated, uniform
from infersim.serve.metrics import SLO, summarize
from infersim.serve.policies import POLICIES, Policy, policy_for
from infersim.serve.quantize import QuantizedCoster
from infersim.serve.simulator import SimResult, simulate
from infersim.serve.trace_io import read_trace
from infersim.serve.workload import PRESETS, Workload, preset

TIMELINE_STEPS = 20_000  # segments per replica kept for the Perfetto timeline
TraceOpt = typer.Option(None, "--trace", help="CSV or JSONL trace instead of a preset.")
OutOpt = typer.Option(None, "--out", help="Folder for requests.csv, timeline.json, summary.json.")


def _step_model(cat: Any, model: str, instance: str, tp: int, engine: str | None) -> Any:
    """The catalog's step cost model for one replica (infersim.cost.step)."""
    try:
        from infersim.cost.step import step_model  # the cost model may be absent in a partial build
    except ImportError as exc:
        raise InputError(f"the step cost model (infersim.cost.step) is not available in this build: {exc}") from None
    return step_model(cat, model, instance, tp=tp, engine=engine)


def build_workload(workload: str, trace: Path | None, qps: float | None, concurrency: int | None, offline: bool,
                   requests: int | None, seed: int) -> Workload:
    if sum(x is not None and x is not False for x in (qps, concurrency, offline or None)) > 1:
        raise InputError("give at most one of --qps, --concurrency and --offline")
    if requests is not None and requests < 1:
        raise InputError(f"--requests must be >= 1, got {requests}")
    if trace is not None:
        w = read_trace(trace)
        if qps is not None or offline:
            raise InputError("--qps and --offline apply to presets; a trace brings its own arrival times")
        w = replace(w, users=concurrency) if concurrency is not None else w
        return w.take(min(requests, w.n)) if requests else w
    spec = preset(workload).with_rate(qps=qps, users=concurrency, offline=offline)
    return spec.generate(requests or 1000, np.random.default_rng(seed))


def _progress() -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A progress callback that shows a rich bar (on stderr) only once a run has taken more than a second."""
    start = time.perf_counter()
    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in state and time.perf_counter() - start > 1.0:
            state["bar"] = Progress(console=Console(stderr=True), transient=True)
            state["bar"].start()
            state["task"] = state["bar"].add_task("simulating requests", total=total)
        if "bar" in state:
            state["bar"].update(state["task"], completed=done)

    def stop() -> None:
        if "bar" in state:
            state["bar"].stop()
    return update, stop


def requests_csv(r: SimResult) -> str:
    """One row per request; floats printed with repr, so the same run gives the same bytes."""
    rows = ["request,arrival_s,first_token_s,finish_s,input_tokens,output_tokens,ttft_ms,tpot_ms,e2e_ms,"
            "max_itl_ms,replica"]
    for i, (a, f, e, inp, out, m, rep) in enumerate(zip(
            r.arrival_s.tolist(), r.first_token_s.tolist(), r.finish_s.tolist(), r.input_tokens.tolist(),
            r.output_tokens.tolist(), r.max_itl_s.tolist(), r.replica.tolist(), strict=True)):
        tpot = (e - f) / (out - 1) * 1e3 if out > 1 else math.nan
        rows.append(f"{i},{a!r},{f!r},{e!r},{inp},{out},{(f - a) * 1e3!r},{tpot!r},{(e - a) * 1e3!r},"
                    f"{m * 1e3!r},{rep}")
    return "\n".join(rows) + "\n"


def timeline(r: SimResult) -> dict[str, Any]:
    """Perfetto trace: one process per replica, a slice per step (or run of decode steps), KV occupancy counter."""
    slices = [Slice(f"replica {s.replica}", "steps", f"{s.kind} x{s.steps}" if s.steps > 1 else s.kind,
                    s.start_s, s.duration_s, {"batch": s.batch, "prefill_tokens": s.prefill_tokens,
                                              "steps": s.steps}) for s in r.records]
    counters = [Counter(f"replica {st.index}", "kv_occupancy", t, occ)
                for st in r.replicas for t, occ in zip(st.kv_sample_s.tolist(), st.kv_occupancy.tolist(),
                                                       strict=True)]
    return trace_events(slices, counters)


def build_cluster(sm: Any, coster: Any, pol: Policy, replicas: int, prefill_replicas: int, router: str) -> Cluster:
    """`replicas` identical replicas, or a prefill pool of `prefill_replicas` feeding `replicas` decode replicas
    with each prompt's KV sent over the instance network (KV bytes per token from the model, bandwidth and
    latency from the instance)."""
    if prefill_replicas <= 0:
        return uniform(coster, pol, replicas, router, label=f"{sm.model.name} replica")
    if sm.instance is None:
        raise InputError("disaggregated serving needs an instance (for its network), not a bare chip")
    net = sm.instance.network
    transfer = KVTransfer(sm.model.kv_bytes_per_token(sm.numerics.kv), net.bytes_per_s, net.latency_s)
    return disaggregated(coster, coster, pol, prefill_replicas, replicas, transfer, router)


def write_outputs(out: Path, r: SimResult, summary: dict[str, Any]) -> list[Path]:
    """Write requests.csv, timeline.json and summary.json whole (temporary files renamed at the end)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
    files = {"requests.csv": requests_csv(r),
             "timeline.json": json.dumps(timeline(r), sort_keys=True, separators=(",", ":")),
             "summary.json": json.dumps(_finite(summary), sort_keys=True, indent=2) + "\n"}
    tmps = []
    for name, text in files.items():
        tmp = out / (name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmps.append((tmp, out / name))
    for tmp, final in tmps:
        tmp.replace(final)
    return [final for _, final in tmps]


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    return obj


def _rows(s: dict[str, Any]) -> list[list[str]]:
    def f(key: str, unit: str, digits: int = 1) -> list[str]:
        v = s.get(key)
        return [key, "-" if v is None or not math.isfinite(v) else f"{v:,.{digits}f} {unit}".strip()]
    keys = [("output_throughput", "tok/s"), ("total_throughput", "tok/s"), ("request_throughput", "req/s", 3),
            ("ttft_mean", "ms"), ("ttft_p50", "ms"), ("ttft_p90", "ms"), ("ttft_p99", "ms"), ("tpot_mean", "ms", 2),
            ("tpot_p50", "ms", 2), ("tpot_p99", "ms", 2), ("itl_mean", "ms", 2), ("e2e_latency_mean", "ms"),
            ("e2e_latency_p50", "ms"), ("e2e_latency_p99", "ms"), ("goodput", "req/s", 3),
            ("utilisation", "", 3), ("kv_occupancy_mean", "", 3), ("kv_occupancy_peak", "", 3),
            ("preemptions_recompute", "", 0), ("preemptions_swap", "", 0), ("energy_j", "J", 0),
            ("joules_per_output_token", "J/tok", 3), ("completed", "", 0), ("span_s", "s", 2)]
    return [f(*k) for k in keys if k[0] in s]


def _policy_name(pol: Policy) -> str:
    return type(pol).__name__.removesuffix("Policy").lower()


def print_summary(config: dict[str, Any], summary: dict[str, Any]) -> None:
    """The summary table; a projected chip is marked in the title and explained in the caption."""
    status = config["chip_status"]
    c = config
    title = (f"{c['model']} on {c['replicas']} x {c['instance']}{STATUS_MARK.get(status, '')}, tp={c['tp']}, "
             f"{c['engine']}, {c['policy']} batching, {c['requests']} {c['workload']} requests")
    caption = "ᴾ projected chip: no vendor figures; derived by a stated rule" if status == "projected" else ""
    con = console()
    con.print(title)
    con.print(table("", ["metric", "value"], _rows(summary), caption))


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate_cmd(
        model: str = typer.Option(..., "--model", help="Model name or config.json path."),
        instance: str = typer.Option(..., "--instance", help="Instance type, e.g. inf2.xlarge."),
        engine: str = typer.Option(None, "--engine", help="Engine profile (default: by chip family)."),
        tp: int = typer.Option(1, "--tp", help="Tensor-parallel degree of one replica."),
        replicas: int = typer.Option(1, "--replicas", help="Replicas behind the router (decode pool if split)."),
        prefill_replicas: int = typer.Option(0, "--prefill-replicas",
                                             help="Split serving: this many prefill replicas feed --replicas "
                                                  "decode replicas over the instance network."),
        workload: str = typer.Option("chat", "--workload", help=f"Preset: {', '.join(PRESETS)}."),
        trace: Path = TraceOpt,
        qps: float = typer.Option(None, "--qps", help="Poisson arrival rate, requests/s."),
        concurrency: int = typer.Option(None, "--concurrency", help="Closed loop with N concurrent users."),
        offline: bool = typer.Option(False, "--offline", help="All requests queued at t = 0."),
        requests: int = typer.Option(None, "--requests", help="Number of requests (preset default 1000; trace: all)."),
        seed: int = typer.Option(0, "--seed", help="Random seed of the workload."),
        policy: str = typer.Option(None, "--policy", help=f"Batching policy: {', '.join(POLICIES)}."),
        max_batch: int = typer.Option(None, "--max-batch", help="Override the profile's max batch."),
        router: str = typer.Option("least-outstanding", "--router", help="round-robin, least-outstanding, kv-aware."),
        slo_ttft_ms: float = typer.Option(math.inf, "--slo-ttft-ms", help="TTFT SLO for goodput."),
        slo_tpot_ms: float = typer.Option(math.inf, "--slo-tpot-ms", help="TPOT SLO for goodput."),
        exact_steps: bool = typer.Option(False, "--exact-steps", help="Cost every mixed step exactly (slower)."),
        mixed_steps: bool = typer.Option(True, "--mixed-steps/--separate-prefill",
                                         help="Decodes join prefill steps, or pause during them."),
        out: Path = OutOpt,
        json_out: bool = JsonOpt,
        extra: list[str] = CatalogOpt,
    ) -> None:
        """Simulate a serving system: workload -> batching -> paged KV -> replicas, with TTFT/TPOT/throughput."""
        w = build_workload(workload, trace, qps, concurrency, offline, requests, seed)
        sm = _step_model(catalog(extra), model, instance, tp, engine)
        pol = policy_for(sm.profile, policy, max_batch=max_batch, mixed_steps=mixed_steps)
        coster = sm if exact_steps else QuantizedCoster(sm)
        update, stop = _progress()
        try:
            cluster = build_cluster(sm, coster, pol, replicas, prefill_replicas, router)
            result = simulate(w, cluster, record_limit=TIMELINE_STEPS if out else 0, progress=update)
        finally:
            stop()
        slo = SLO(slo_ttft_ms, slo_tpot_ms) if math.isfinite(slo_ttft_ms) or math.isfinite(slo_tpot_ms) else None
        summary = summarize(result, slo)
        config = {"model": sm.model.name, "instance": instance, "engine": sm.profile.name, "tp": tp,
                  "replicas": replicas, "prefill_replicas": prefill_replicas, "policy": _policy_name(pol),
                  "max_batch": pol.max_batch, "workload": w.name, "requests": w.n, "seed": seed, "router": router,
                  "chip_status": getattr(sm.chip, "status", "official"), "kv_capacity_tokens": sm.kv_capacity_tokens,
                  "exact_steps": exact_steps}
        if out is not None:
            write_outputs(out, result, {"config": config, "metrics": summary})
        if json_out:
            return print_json({"config": config, "metrics": summary})
        print_summary(config, summary)

