"""Op-list costing, shared by the transformer step model and the SDK (one cost model, two front ends).

    costs = cost_ops(ops, chip, efficiency)          # one Cost per op, repeats and energy included
    total = sum(costs)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from infersim.cost.base import Cost
from infersim.cost.collectives import Fabric, collective_seconds, make_fabric
from infersim.cost.device import Device, make_device
from infersim.cost.energy import PowerModel, op_joules, power_model, run_joules
from infersim.cost.gpu import GpuRates, gpu_op, gpu_rates, gpu_seconds
from infersim.cost.neuron import NeuronRates, neuron_busy, neuron_op, neuron_rates, neuron_seconds
from infersim.cost.overlap import Busy, busy_on, unoverlapped
from infersim.graph.ops import Op
from infersim.specs.chip import Chip
from infersim.specs.engine import Efficiency
from infersim.specs.instance import Instance


def collective_op(op: Op, fabric: Fabric, eff: Efficiency) -> Cost:
    seconds, sent = collective_seconds(op.collective, op.collective_bytes, op.group, fabric, eff)
    latency = seconds - sent / max(fabric.link_bytes_per_s or fabric.onchip_bytes_per_s, 1.0)
    bound = "latency" if latency > seconds / 2 else "link"
    return Cost(seconds, 0.0, 0.0, 0.0, bound, sent, {"collective": seconds})


def op_cost(op: Op, dev: Device, eff: Efficiency, fabric: Fabric) -> Cost:
    """One run of `op` on one rank, without energy."""
    if op.is_collective:
        return collective_op(op, fabric, eff)
    if dev.chip.family == "neuron":
        return neuron_op(op, dev, eff)
    return gpu_op(op, dev, eff)


def costed(op: Op, dev: Device, eff: Efficiency, fabric: Fabric, pm: PowerModel, active: int, ranks: int) -> Cost:
    """All runs of `op` (count repeats) with the replica's energy."""
    one = op_cost(op, dev, eff, fabric)
    return one.with_joules(op_joules(op, one, pm, active, ranks)).times(op.count)


@dataclass(frozen=True)
class OpCoster:
    """`costed` totals for the ops of one replica, with the device's per-op lookups resolved once."""

    dev: Device
    eff: Efficiency
    fabric: Fabric
    pm: PowerModel
    active: int  # ranks running each op
    ranks: int  # ranks of the replica (all draw idle power)
    rates: NeuronRates | GpuRates  # the mapping model's per-device lookups

    def seconds(self, op: Op) -> tuple[float, float]:
        """(seconds, link bytes sent) of `op_cost(...)`, without building its Cost."""
        if op.is_collective:
            return collective_seconds(op.collective, op.collective_bytes, op.group, self.fabric, self.eff)
        if isinstance(self.rates, NeuronRates):
            return neuron_seconds(op, self.dev, self.eff, self.rates), 0.0
        return gpu_seconds(op, self.rates, self.eff), 0.0

    def busy(self, op: Op) -> Busy:
        """All runs of `op` per resource, for cross-op overlap (`cost/overlap.py`); GPU ops are not overlapped."""
        if op.is_collective:
            one = busy_on("collective", self.seconds(op)[0])
        elif isinstance(self.rates, NeuronRates):
            one = neuron_busy(op, self.dev, self.eff, self.rates)
        else:
            one = unoverlapped(self.seconds(op)[0])
        return one.times(op.count)

    def totals(self, op: Op) -> tuple[float, float]:
        """(seconds, joules) of `costed(...)`, without building its Cost."""
        seconds, sent = self.seconds(op)
        return seconds * op.count, run_joules(op, seconds, sent, self.pm, self.active, self.ranks) * op.count


def op_coster(dev: Device, eff: Efficiency, fabric: Fabric, pm: PowerModel, active: int, ranks: int) -> OpCoster:
    rates = neuron_rates(dev) if dev.chip.family == "neuron" else gpu_rates(dev)
    return OpCoster(dev, eff, fabric, pm, active, ranks, rates)


def fixed_overheads(eff: Efficiency, layers: int, tokens: int, prefill: bool, idle_w: float) -> Cost:
    """The engine's fixed costs of one step (launches, scheduling, per-layer and per-token host work, the switch
    to the context-encoding program when the step holds prefill), spent at idle power by `idle_w` watts."""
    s = eff.step_overhead_s + eff.layer_overhead_s * layers + eff.token_overhead_s * tokens
    s += eff.prefill_overhead_s if prefill else 0.0
    return Cost(s, joules=idle_w * s, bound="overhead", engines={"host": s})


def cost_ops(ops: Sequence[Op], chip: Chip, efficiency: Efficiency, instance: Instance | None = None,
             cores_per_rank: int = 1) -> list[Cost]:
    """Cost of each op of a plain op list on one rank of `chip` (a NeuronCore on Neuron, a chip elsewhere)."""
    dev = make_device(chip, cores_per_rank)
    fabric, pm = make_fabric(dev, instance), power_model(dev)
    return [costed(op, dev, efficiency, fabric, pm, 1, 1) for op in ops]
