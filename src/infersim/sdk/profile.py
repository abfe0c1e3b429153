"""`CompiledModel.profile()`: time, binding resource, utilisation, energy and memory of a traced graph on its target.

The op list comes from `lowering.py`; every op is costed by the cost layer (`infersim.cost.ops.cost_ops`, the
same model `infersim step` uses) with the default engine profile of the chip family (nxdi-2.2x on Neuron),
plus that profile's fixed step and per-layer overheads (layers = attention nodes). Metrics use the Neuron
profiler's names (neuron_software.md §4.2):
- MFU: model FLOPs (matmul and attention) / (matrix peak in the activation format x total time), one rank;
- HFU: the FLOPs the PE array executes, contraction and stationary dims padded to whole 128 x 128 tiles, over
  the same peak-time product;
- MBU: device-memory bytes moved / (HBM bandwidth of the rank x total time);
- engine active %: busy seconds of each engine (Tensor, Vector, Scalar, DMA) / total time.
With tp > 1 the ops are sharded Megatron style (`shard.py`) and collectives are timed on the smallest catalog
instance holding the ranks; energy is the replica's (all ranks), as in `infersim step`.
The memory plan counts weights per rank in their stored formats (matrix weights split over tp, other parameters
fp32 and replicated) and the peak of simultaneously live activations over the graph's execution order (an upper
bound under tp).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from infersim.catalog import load_catalog
from infersim.catalog.engines import load_engine
from infersim.cost.base import Cost
from infersim.cost.collectives import make_fabric
from infersim.cost.device import Device, make_device
from infersim.cost.energy import power_model
from infersim.cost.ops import costed, fixed_overheads
from infersim.cost.step import DEFAULT_ENGINE, resolve_hw
from infersim.graph.ops import Op
from infersim.sdk.ir import Graph
from infersim.sdk.lowering import ATTENTION, LAYOUT, Numbers, lower_graph, numel, op_name
from infersim.sdk.quantize import SCALE_SUFFIX, matrix_weights
from infersim.sdk.shard import shard
from infersim.specs.dtypes import bytes_per_element
from infersim.specs.engine import EngineProfile
from infersim.specs.instance import Instance

if TYPE_CHECKING:
    from infersim.sdk.compiled import CompiledModel

ENGINES = ("Tensor", "Vector", "Scalar", "DMA")


@dataclass(frozen=True)
class MemoryUse:
    capacity_bytes: float  # device memory of one rank
    weight_bytes: float
    activation_bytes: float  # peak of simultaneously live activations

    @property
    def fits(self) -> bool:
        return self.weight_bytes + self.activation_bytes <= self.capacity_bytes


@dataclass(frozen=True)
class Profile:
    target: str
    engine: str
    tp: int
    inputs: tuple[tuple[int, ...], ...]
    ops: tuple[tuple[Op, Cost], ...]
    overhead: Cost  # fixed step and per-layer overheads of the engine profile
    total: Cost
    mfu: float
    hfu: float
    mbu: float
    engine_active: dict[str, float]  # fraction of total time each engine is busy
    memory: MemoryUse
    projected: bool  # the target chip carries projected figures

    @property
    def seconds(self) -> float:
        return self.total.seconds

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "engine": self.engine, "tp": self.tp, "inputs": [list(s) for s in self.inputs],
                "seconds": self.seconds, "joules": self.total.joules, "bound": self.total.bound,
                "mfu": self.mfu, "hfu": self.hfu, "mbu": self.mbu, "engine_active": self.engine_active,
                "memory": {"capacity_bytes": self.memory.capacity_bytes, "weight_bytes": self.memory.weight_bytes,
                           "activation_bytes": self.memory.activation_bytes, "fits": self.memory.fits},
                "projected": self.projected, "overhead_seconds": self.overhead.seconds,
                "ops": [{"name": o.name, "kind": o.kind, "shape": list(o.shape), "seconds": c.seconds,
                         "bound": c.bound, "flops": c.flops, "bytes": c.bytes, "joules": c.joules}
                        for o, c in self.ops]}

    def table(self) -> Table:
        t = Table(title=f"{self.target} x tp{self.tp} ({self.engine}{', projected' if self.projected else ''}): "
                        f"{self.seconds * 1e6:.1f} us, {self.total.joules * 1e3:.3g} mJ, bound {self.total.bound}",
                  caption=self.summary())
        for col in ("op", "kind", "shape", "time us", "% time", "bound", "GFLOP", "MB", "energy uJ"):
            t.add_column(col, justify="left" if col in ("op", "kind") else "right")
        for op, c in (*self.ops, (Op("fixed step + layer overheads", "overhead", "sdk", "", ()), self.overhead)):
            t.add_row(op.name, op.kind, "x".join(map(str, op.shape)), f"{c.seconds * 1e6:.2f}",
                      f"{c.seconds / self.seconds:.1%}" if self.seconds else "-", c.bound, f"{c.flops / 1e9:.3g}",
                      f"{c.bytes / 1e6:.3g}", f"{c.joules * 1e6:.3g}")
        return t

    def summary(self) -> str:
        engines = ", ".join(f"{k} {v:.0%}" for k, v in self.engine_active.items())
        m = self.memory
        return (f"MFU {self.mfu:.1%}  HFU {self.hfu:.1%}  MBU {self.mbu:.1%}  active: {engines}\n"
                f"memory per rank: weights {m.weight_bytes / 1e6:.3g} MB + activations {m.activation_bytes / 1e6:.3g}"
                f" MB of {m.capacity_bytes / 1e9:.3g} GB ({'fits' if m.fits else 'does NOT fit'})")

    def __str__(self) -> str:
        buf = io.StringIO()
        Console(file=buf, width=140, highlight=False, force_terminal=False).print(self.table())
        return buf.getvalue()

    def save_trace(self, path: str | Path) -> Path:
        """A Perfetto/Chrome JSON trace: one track per engine, one slice per op (deterministic output)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(trace_events(self), sort_keys=True, separators=(",", ":")))
        tmp.replace(path)
        return path


def trace_events(p: Profile) -> dict[str, Any]:
    tracks = ("ops", *ENGINES, "collective", "host")
    events: list[dict[str, Any]] = [{"ph": "M", "name": "thread_name", "pid": 1, "tid": i + 1,
                                     "args": {"name": t}} for i, t in enumerate(tracks)]
    events.append({"ph": "M", "name": "process_name", "pid": 1, "tid": 0, "args": {"name": f"{p.target} rank 0"}})
    start = 0.0
    for op, c in (*p.ops, (Op("overheads", "overhead", "sdk", "", ()), p.overhead)):
        busy = {"ops": c.seconds, **c.engines}
        for track, seconds in busy.items():
            if seconds > 0 and track in tracks:
                events.append({"ph": "X", "name": op.name, "pid": 1, "tid": tracks.index(track) + 1,
                               "ts": round(start * 1e6, 3), "dur": round(seconds * 1e6, 3),
                               "args": {"kind": op.kind, "bound": c.bound}})
        start += c.seconds
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def numbers_of(model: CompiledModel) -> Numbers:
    n = model.numerics
    act = n.activations
    weights = n.weights if n.weights != "fp32" or act == "fp32" else act  # auto-cast stores matmul weights narrow
    return Numbers(act, bytes_per_element(act), bytes_per_element(weights))


def padded_flops(op: Op, dev: Device) -> float:
    if op.kind != "matmul":
        return op.flops
    m, n, k, g = op.shape
    t = dev.chip.tile
    pad = lambda x, q: -(-x // q) * q  # noqa: E731
    return 2.0 * g * pad(k, t.rows) * pad(min(m, n), t.cols) * max(m, n)


def memory_use(model: CompiledModel, graph: Graph, numbers: Numbers, dev: Device) -> MemoryUse:
    matrix = matrix_weights([graph])
    keys = set(graph.weight_of.values())
    weights = sum(t.numel() * (numbers.weight_bytes / model.tp if k in matrix else t.element_size())
                  for k, t in (model.reference or model.packed).items() if k in keys and not k.endswith(SCALE_SUFFIX))
    last = {r: i for i, n in enumerate(graph.nodes) for r in n.refs()}
    live: dict[str, float] = {}
    peak = 0.0
    for i, node in enumerate(graph.nodes):
        if op_name(node.target) not in LAYOUT and node.shape is not None:
            live[node.name] = numel(node.shape) * numbers.act_bytes
        peak = max(peak, sum(live.values()))
        for name in [n for n in live if last.get(n, -1) <= i and n not in graph.outputs]:
            del live[name]
    return MemoryUse(dev.hbm_bytes, float(weights), peak)


def _layers(graph: Graph) -> int:
    """Attention layers: SDPA nodes, or softmax over square score matrices (unfused attention)."""
    def scores(n: Any) -> bool:
        return op_name(n.target) in ("softmax", "_softmax") and n.shape and len(n.shape) >= 3
    return sum(1 for n in graph.nodes if n.target == ATTENTION or scores(n))


def _tokens(graph: Graph) -> int:
    _, shape, dtype = graph.inputs[0]
    return numel(shape) if dtype.startswith(("int", "uint")) else (shape[0] if shape else 1)


def _hardware(model: CompiledModel, engine: str | None) -> tuple[Device, Instance | None, EngineProfile]:
    """The rank device, the instance holding `tp` ranks (None if the catalog lists none) and the engine."""
    cat = load_catalog()
    chip = cat.chip(model.target)
    profile = load_engine(cat, engine or DEFAULT_ENGINE.get(chip.family, ""))
    chip, instance = resolve_hw(cat, chip.name, model.tp, dict(profile.lnc))
    return make_device(chip, profile.cores_per_rank(chip.generation)), instance, profile


def profile_graph(model: CompiledModel, index: int, engine: str | None = None) -> Profile:
    dev, instance, profile = _hardware(model, engine)
    eff = profile.eff(dev.chip.generation, dev.chip.name)
    graph, numbers, tp = model.graphs[index], numbers_of(model), model.tp
    ops = shard(lower_graph(graph, model.reference or model.packed, numbers, model.attn_pairs[index]), tp)
    fabric, power = make_fabric(dev, instance), power_model(dev)
    costs = [costed(op, dev, eff, fabric, power, tp, tp) for op in ops]  # replica energy, as `infersim step`
    # one compiled forward: no serving stack switching to its context-encoding program, so no prefill overhead
    overhead = fixed_overheads(eff, _layers(graph), _tokens(graph), False, power.idle_w * tp)
    total = sum(costs, Cost()) + overhead
    peak_time = dev.peak(numbers.act_dtype) * total.seconds
    engines = ENGINES + (("collective",) if any("collective" in c.engines for c in costs) else ())
    busy = {e: sum(c.engines.get(e, 0.0) for c in costs) / total.seconds for e in engines}
    shapes = tuple(tuple(s) for _, s, _ in graph.inputs)
    return Profile(dev.chip.name, profile.name, tp, shapes, tuple(zip(ops, costs, strict=True)), overhead, total,
                   sum(o.flops for o in ops) / peak_time, sum(padded_flops(o, dev) for o in ops) / peak_time,
                   total.bytes / (dev.hbm_bytes_per_s * total.seconds), busy,
                   memory_use(model, graph, numbers, dev), dev.chip.status == "projected")
