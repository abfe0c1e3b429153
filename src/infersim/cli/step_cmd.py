"""`infersim step`: the compiler's view of one engine step (per-op time, bound, utilisation, energy) and a trace."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer

from infersim.analyze.perfetto import Slice, write_trace
from infersim.cli._common import CatalogOpt, JsonOpt, catalog, console, print_json, si, table
from infersim.cost.step import OpCost, StepCost, StepCostModel, step_model
from infersim.errors import InputError
from infersim.graph.batch import StepShape, decode, prefill

TraceOpt = typer.Option(None, "--trace", help="Write a Perfetto trace (one track per engine).")


def _shape(phase: str, batch: int, context: int) -> StepShape:
    if batch < 1 or context < (1 if phase == "prefill" else 0):
        raise InputError(f"--batch must be at least 1 and --context at least 1, got batch={batch} context={context}")
    if phase == "prefill":
        return prefill(batch, context)
    if phase == "decode":
        return decode(batch, context)
    raise InputError(f'--phase must be "prefill" or "decode", got "{phase}"')


def _util(sm: StepCostModel, oc: OpCost) -> tuple[float, float]:
    s, op = oc.cost.seconds, oc.op
    if s <= 0:
        return 0.0, 0.0
    peak = sm.device.peak(op.dtype) if op.dtype else 0.0
    return (oc.cost.flops / (s * peak) if peak else 0.0), oc.cost.bytes / (s * sm.device.hbm_bytes_per_s)


def op_rows(sm: StepCostModel, sc: StepCost) -> list[dict[str, Any]]:
    total = sc.total.seconds or 1.0
    rows = []
    for oc in sc.ops:
        fu, bu = _util(sm, oc)
        rows.append({"op": oc.op.name, "class": oc.op.op_class, "count": oc.op.count, "seconds": oc.cost.seconds,
                     "share": oc.cost.seconds / total, "bound": oc.cost.bound, "flops": oc.cost.flops,
                     "bytes": oc.cost.bytes, "flops_util": fu, "bw_util": bu, "joules": oc.cost.joules,
                     "engines": dict(oc.cost.engines)})
    return rows


def summary(sm: StepCostModel, sc: StepCost) -> dict[str, Any]:
    t = sc.total
    return {"model": sm.model.name, "chip": sm.chip.name, "chip_status": sm.chip.status,
            "instance": sm.instance.name if sm.instance else None, "engine": sm.profile.name,
            "tp": sm.parallel.tp, "pp": sm.parallel.pp, "ep": sm.parallel.ep, "chips": sm.chips,
            "numerics": asdict(sm.numerics), "shape": asdict(sc.shape), "seconds": t.seconds, "joules": t.joules,
            "bound": t.bound, "flops_per_rank": t.flops, "bytes_per_rank": t.bytes, "memory": asdict(sm.memory),
            "ops": op_rows(sm, sc)}


def trace_slices(sm: StepCostModel, sc: StepCost) -> list[Slice]:
    """Ops laid end to end; within an op, each engine's busy time starts with the op (engines overlap). Time
    that cross-op overlap hides (the breakdown's negative "engine overlap" line) is not drawn: the ops end that
    much after the step's total, and the step overheads start at the total minus their own time."""
    proc, start, out = f"{sm.chip.name} rank 0", 0.0, []
    for oc in sc.ops:
        for eng, busy in oc.cost.engines.items():
            if busy > 0:
                out.append(Slice(proc, eng, oc.op.name, start, busy,
                                 {"count": oc.op.count, "bound": oc.cost.bound, "op_seconds": oc.cost.seconds}))
        start += oc.cost.seconds
    return out


def _print(sm: StepCostModel, sc: StepCost, phase: str) -> None:
    rows = [[r["op"], r["class"], r["count"], f"{r['seconds'] * 1e3:.3f}", f"{100 * r['share']:.1f}%", r["bound"],
             f"{100 * r['flops_util']:.1f}%", f"{100 * r['bw_util']:.1f}%", f"{r['joules']:.3g}"]
            for r in op_rows(sm, sc)]
    t, mem = sc.total, sm.memory
    rows.append(["total", "", "", f"{t.seconds * 1e3:.3f}", "100%", t.bound, "", "", f"{t.joules:.3g}"])
    where = sm.instance.name if sm.instance else f"bare {sm.chip.name} chips"
    proj = " (chip figures include projected values)" if sm.chip.status == "projected" else ""
    num = sm.numerics
    title = (f"{sm.model.name} {phase} on {where}{proj}: tp={sm.parallel.tp} pp={sm.parallel.pp} "
             f"({num.weights} weights, {num.activations} compute, {num.kv} KV), {sm.profile.name}")
    caption = (f"per rank: {si(mem.weight_bytes, 'B')} weights, {si(mem.kv_bytes, 'B')} KV space "
               f"({mem.kv_capacity_tokens:,} tokens per replica); utilisation = per-rank FLOP/s and HBM B/s vs peak")
    cols = ["op", "class", "x", "ms", "share", "bound", "FLOP/s util", "BW util", "J"]
    console().print(table(title, cols, rows, caption))


def register(app: typer.Typer) -> None:
    @app.command("step")
    def step(model: str = typer.Option(..., "--model", help="Catalog model name or config.json path."),
             hw: str = typer.Option(..., "--hw", help="Chip or instance name."),
             tp: int = typer.Option(1, "--tp"), pp: int = typer.Option(1, "--pp"), ep: int = typer.Option(1, "--ep"),
             weights: str = typer.Option("bf16", "--weights"), activations: str = typer.Option(None, "--activations"),
             kv: str = typer.Option(None, "--kv"), batch: int = typer.Option(1, "--batch"),
             context: int = typer.Option(1024, "--context", help="Prompt tokens (prefill) or cached tokens (decode)."),
             phase: str = typer.Option("decode", "--phase", help="prefill | decode"),
             engine: str = typer.Option(None, "--engine", help="Engine profile (default by chip family)."),
             json_out: bool = JsonOpt, trace: Path = TraceOpt,
             extra: list[str] = CatalogOpt) -> None:
        """Time, bound, utilisation and energy of one engine step, op by op."""
        shape = _shape(phase, batch, context)
        sm = step_model(catalog(extra), model, hw, tp=tp, pp=pp, ep=ep, weights=weights, activations=activations,
                        kv=kv, engine=engine, need_tokens=batch * (context + 1))
        sc = sm.cost(shape)
        if trace is not None:
            write_trace(trace, trace_slices(sm, sc))
        if json_out:
            return print_json(summary(sm, sc))
        _print(sm, sc, phase)
