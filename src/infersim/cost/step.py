"""The step cost model of one replica: model x chip (x instance) x parallel plan x numerics x engine profile.

    sm = step_model(load_catalog(), "llama-3.1-8b", "inf2.48xlarge", tp=24, engine="neuron-tnx-2.18")
    sm.step_time(decode(8, 2048))      # seconds, cached (a warm call costs about a microsecond)
    sm.cost(prefill(1, 1024))          # per-op breakdown (time, bound, FLOPs, bytes, energy, engines)
    sm.decode_affine(8)                # (base_s, s_per_ctx_token): exact for pure decode steps

A step costs its ops (`cost/ops.py`) less what cross-op engine overlap hides (`cost/overlap.py`) plus the
engine's fixed overheads; a profile whose context encoder takes one prompt at a time (`prefill_per_sequence`,
transformers-neuronx) runs a static batch's prefill as one pass per prompt (`StepCostModel.runs`).
Scenario formulas (TTFT, TPOT, static-batch throughput) belong to the validation and serving layers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from infersim.catalog import Catalog
from infersim.catalog.engines import load_engine
from infersim.cost.base import Cost
from infersim.cost.collectives import make_fabric
from infersim.cost.device import Device, make_device
from infersim.cost.energy import power_model
from infersim.cost.memory import plan_memory
from infersim.cost.ops import costed, fixed_overheads, op_coster
from infersim.cost.overlap import Busy
from infersim.errors import InputError
from infersim.graph.batch import StepShape
from infersim.graph.build import Segment, SegmentKey, plan_ops, step_plan, step_segments
from infersim.graph.numerics import Numerics, resolve_numerics
from infersim.graph.ops import Op
from infersim.graph.shard import Parallel, check_parallel
from infersim.specs.chip import Chip
from infersim.specs.engine import EngineProfile
from infersim.specs.instance import Instance
from infersim.specs.model import ModelSpec

DEFAULT_ENGINE: dict[str, str] = {"neuron": "nxdi-2.2x", "gpu": "vllm-0.10", "tpu": "jetstream-pt"}
CACHE_LIMIT = 1 << 20  # cached step shapes per model before the cache is emptied
OVERHEAD_OP = Op("step overheads", "overhead", "other", "", ())
OVERLAP_OP = Op("engine overlap", "overhead", "other", "", ())  # time hidden by cross-op overlap (negative)


@dataclass(frozen=True)
class OpCost:
    op: Op
    cost: Cost  # all `op.count` runs, energy of the whole replica


@dataclass(frozen=True)
class StepCost:
    shape: StepShape
    ops: tuple[OpCost, ...]
    total: Cost

    def by_class(self) -> dict[str, Cost]:
        out: dict[str, Cost] = {}
        for oc in self.ops:
            out[oc.op.op_class] = out.get(oc.op.op_class, Cost()) + oc.cost
        return out

    def __iter__(self) -> Iterator[OpCost]:
        return iter(self.ops)


class StepCostModel:
    """Implements `cost.protocol.StepCoster` for one replica."""

    def __init__(self, model: ModelSpec, chip: Chip, instance: Instance | None, parallel: Parallel,
                 numerics: Numerics, profile: EngineProfile, need_tokens: int = 0):
        self.model, self.chip, self.instance, self.profile = model, chip, instance, profile
        self.parallel, self.numerics = check_parallel(model, parallel), numerics
        self.eff = profile.eff(chip.generation, chip.name)
        self.device: Device = make_device(chip, profile.cores_per_rank(chip.generation))
        self.fabric = make_fabric(self.device, instance)
        self.power = power_model(self.device)
        self.memory = plan_memory(model, self.device, numerics, self.parallel, profile, need_tokens)
        self.plan = step_plan(model, numerics, self.parallel, profile.rope_in_attention)
        self.op_coster = op_coster(self.device, self.eff, self.fabric, self.power, self.parallel.tp,
                                   self.parallel.ranks)
        self._times: dict[StepShape, float] = {}
        self._joules: dict[StepShape, float] = {}
        self._op_costs: dict[Op, Cost] = {}
        self._segments: dict[SegmentKey, tuple[tuple[tuple[float, float], ...], Busy]] = {}
        self._slopes: dict[int, tuple[float, float]] = {}

    def ops(self, shape: StepShape) -> list[Op]:
        return plan_ops(self.plan, shape)

    def _overhead(self, shape: StepShape) -> Cost:
        return fixed_overheads(self.eff, self.model.num_layers, shape.tokens, bool(shape.prefill_tokens),
                               self.idle_power_w)

    def runs(self, shape: StepShape) -> tuple[StepShape, int]:
        """What the engine runs for `shape` and how many times: a profile whose context encoder takes one sequence
        at a time (`prefill_per_sequence`) runs a pure prefill step of n equal prompts as n one-prompt passes."""
        n = shape.prefill_seqs
        if (not self.profile.prefill_per_sequence or n < 2 or shape.decode_seqs or shape.prefill_tokens % n
                or shape.prefill_attn_pairs % n):
            return shape, 1
        return StepShape(shape.prefill_tokens // n, 1, shape.prefill_attn_pairs // n), n

    def cost(self, shape: StepShape) -> StepCost:
        """The per-op breakdown of one step and its total (an op's count includes the passes of `runs`)."""
        if not shape.tokens:
            return StepCost(shape, (), Cost())
        unit, n = self.runs(shape)
        ops = self.ops(unit)
        items = [OpCost(replace(op, count=op.count * n), self._op_cost(op).times(n)) for op in ops]
        hidden = self._hidden_s((self.op_coster.busy(op) for op in ops), n)
        if hidden:
            items.append(OpCost(OVERLAP_OP, Cost(-hidden, joules=-self.idle_power_w * hidden)))
        items.append(OpCost(OVERHEAD_OP, self._overhead(shape)))
        return StepCost(shape, tuple(items), sum((i.cost for i in items), Cost()))

    def _hidden_s(self, busy: Iterable[Busy], runs: int) -> float:
        """Seconds that cross-op engine overlap hides (`cost/overlap.py`) in `runs` passes of ops busy as `busy`
        (read only when the profile overlaps)."""
        return sum(busy, Busy()).times(runs).hidden_s(self.eff.overlap) if self.eff.overlap else 0.0

    def step_time(self, shape: StepShape) -> float:
        t = self._times.get(shape)
        if t is None:
            t = self._cached_totals(shape)[0]
        return t

    def step_energy(self, shape: StepShape) -> float:
        j = self._joules.get(shape)
        if j is None:
            j = self._cached_totals(shape)[1]
        return j

    def _cached_totals(self, shape: StepShape) -> tuple[float, float]:
        """(seconds, joules) of a step. Decode attention is the only op that reads the KV tokens of the decode
        sequences and it is linear in them, so a step costs its zero-context twin plus a slope x KV tokens."""
        if len(self._times) >= CACHE_LIMIT:
            self._times.clear()
            self._joules.clear()
        if shape.decode_ctx_tokens:
            twin = StepShape(shape.prefill_tokens, shape.prefill_seqs, shape.prefill_attn_pairs, shape.decode_seqs)
            slope_s, slope_j = self.ctx_slopes_at(shape.decode_seqs)
            t = self.step_time(twin) + slope_s * shape.decode_ctx_tokens
            j = self.step_energy(twin) + slope_j * shape.decode_ctx_tokens
        else:
            t, j = self._totals(shape)
        self._times[shape], self._joules[shape] = t, j
        return t, j

    def _totals(self, shape: StepShape) -> tuple[float, float]:
        """The totals of `cost(shape)` without building the breakdown (the serving simulator's cold path): the
        same per-op seconds and joules summed in the same order, each op list segment costed once per key."""
        if not shape.tokens:
            return 0.0, 0.0
        unit, n = self.runs(shape)
        parts = [self._segment(seg) for seg in step_segments(self.plan, unit)]
        hidden = self._hidden_s((busy for _, busy in parts), n)
        over = self._overhead(shape)
        return (n * sum(s for totals, _ in parts for s, _ in totals) - hidden + over.seconds,
                n * sum(j for totals, _ in parts for _, j in totals) - self.idle_power_w * hidden + over.joules)

    def _segment(self, seg: Segment) -> tuple[tuple[tuple[float, float], ...], Busy]:
        """(seconds, joules) of each op of one segment of a step, and the segment's ops per resource
        (`cost/overlap.py`, only when the profile overlaps), memoised by the segment's key: its ops built once."""
        key, make = seg
        got = self._segments.get(key)
        if got is None:
            if len(self._segments) >= CACHE_LIMIT:
                self._segments.clear()
            ops = make()
            busy = sum((self.op_coster.busy(op) for op in ops), Busy()) if self.eff.overlap else Busy()
            got = self._segments[key] = (tuple(self.op_coster.totals(op) for op in ops), busy)
        return got

    def _op_cost(self, op: Op) -> Cost:
        """All runs of one op with the replica's energy, memoised: steps of equal token count share most ops."""
        c = self._op_costs.get(op)
        if c is None:
            if len(self._op_costs) >= CACHE_LIMIT:
                self._op_costs.clear()
            c = self._op_costs[op] = costed(op, self.device, self.eff, self.fabric, self.power, self.parallel.tp,
                                            self.parallel.ranks)
        return c

    def ctx_slopes_at(self, decode_seqs: int) -> tuple[float, float]:
        """(seconds, joules) per KV token read by decode attention in a step of `decode_seqs` decode sequences:
        one slope for every step, unless the profile's KV rows grow with the batch (`kv_row_half_bytes`)."""
        key = max(decode_seqs, 1) if self.eff.kv_row_half_bytes else 1
        got = self._slopes.get(key)
        if got is None:
            ref = 1 << 20
            zero = self.cost(StepShape(decode_seqs=key)).total
            full = self.cost(StepShape(decode_seqs=key, decode_ctx_tokens=ref)).total
            got = self._slopes[key] = ((full.seconds - zero.seconds) / ref, (full.joules - zero.joules) / ref)
        return got

    def decode_affine(self, decode_seqs: int) -> tuple[float, float]:
        """(base_s, s_per_ctx_token) of a pure decode step of `decode_seqs` sequences; every op but decode
        attention is independent of the KV tokens read, and decode attention is linear in them."""
        return self.step_time(StepShape(decode_seqs=decode_seqs)), self.ctx_slopes_at(decode_seqs)[0]

    @property
    def kv_capacity_tokens(self) -> int:
        return self.memory.kv_capacity_tokens

    @property
    def idle_power_w(self) -> float:
        return self.power.idle_w * self.parallel.ranks

    @property
    def chips(self) -> int:
        """Chips the replica occupies (a partly used chip counts whole)."""
        return -(-self.parallel.ranks // self.device.ranks_per_chip)


def _check_tp(profile: EngineProfile, chip: Chip, par: Parallel) -> None:
    allowed = profile.tp_degrees.get(chip.name)
    if allowed and par.tp not in allowed:
        raise InputError(f"tp={par.tp} is not supported by {profile.name} on {chip.name}; supported TP degrees: "
                         f"{', '.join(map(str, allowed))}")


def _instance_for(cat: Catalog, chip: Chip, ranks: int, per_chip: int) -> Instance | None:
    """The smallest catalog instance of `chip` that holds `ranks` ranks (None when the catalog lists none)."""
    options = sorted(cat.instances_of_chip(chip.name), key=lambda i: (i.chips, i.name))
    fits = [i for i in options if i.chips * per_chip >= ranks]
    return fits[0] if fits else (options[-1] if options else None)


def _check_room(inst: Instance, ranks: int, per_chip: int) -> None:
    room = inst.chips * per_chip * inst.max_instances
    if ranks > room:
        unit = "NeuronCores" if per_chip > 1 else "chips"
        raise InputError(f"{inst.name} offers {room} {unit} (x{inst.max_instances} instances at most) but "
                         f"tp x pp = {ranks} are needed; use a larger instance or a smaller tp")


def resolve_hw(cat: Catalog, hw: str, ranks: int, per_chip_of: dict[str, int]) -> tuple[Chip, Instance | None]:
    """A chip or instance name -> (chip, instance); a chip name picks the smallest instance that holds the ranks."""
    if hw in cat.instances:
        inst = cat.instance(hw)
        chip = cat.chip(inst.chip)
        _check_room(inst, ranks, make_device(chip, per_chip_of.get(chip.generation, 1)).ranks_per_chip)
        return chip, inst
    if hw not in cat.chips:
        raise InputError(f'unknown hardware "{hw}"; allowed chips: {", ".join(sorted(cat.chips))}; instances: '
                         f'{", ".join(sorted(cat.instances))}')
    chip = cat.chip(hw)
    per = make_device(chip, per_chip_of.get(chip.generation, 1)).ranks_per_chip
    inst = _instance_for(cat, chip, ranks, per)
    if inst is not None:
        _check_room(inst, ranks, per)
    return chip, inst


def _chip_of(cat: Catalog, hw: str) -> Chip:
    if hw in cat.instances:
        return cat.chip(cat.instance(hw).chip)
    if hw not in cat.chips:
        raise InputError(f'unknown hardware "{hw}"; allowed chips: {", ".join(sorted(cat.chips))}; instances: '
                         f'{", ".join(sorted(cat.instances))}')
    return cat.chip(hw)


def step_model(cat: Catalog, model: str | ModelSpec, hw: str, tp: int = 1, pp: int = 1, ep: int = 1,
               weights: str = "bf16", activations: str | None = None, kv: str | None = None,
               engine: str | None = None, need_tokens: int = 0) -> StepCostModel:
    """A StepCostModel from catalog names (the entry point of the CLI, validation and compare layers)."""
    spec = model if isinstance(model, ModelSpec) else cat.model(model)
    par = check_parallel(spec, Parallel(tp, pp, ep))
    family = _chip_of(cat, hw).family
    profile = load_engine(cat, engine or DEFAULT_ENGINE[family])
    if family not in profile.families:
        raise InputError(f'engine "{profile.name}" runs on {", ".join(profile.families)} chips, not on {hw} '
                         f"({family})")
    chip, inst = resolve_hw(cat, hw, par.ranks, dict(profile.lnc))
    _check_tp(profile, chip, par)
    return StepCostModel(spec, chip, inst, par, resolve_numerics(chip, weights, activations, kv), profile,
                         need_tokens)
