"""Chip power model: idle power x time + energy per FLOP (by format) + energy per byte of HBM, SRAM and link traffic.

Coefficients are derived from each chip's published TDP and idle power by one stated rule, so that no chip
needs an energy figure of its own. With P_dyn = TDP - idle:
- at full matrix throughput in format d, the matrix engine draws COMPUTE_SHARE x P_dyn, so
  J/FLOP(d) = COMPUTE_SHARE x P_dyn / peak(d)  (narrow formats cost less per FLOP in proportion to their peak);
- elementwise engines at full rate draw VECTOR_SHARE x P_dyn: J/element = VECTOR_SHARE x P_dyn / vector peak;
- streaming HBM at full bandwidth draws HBM_SHARE x P_dyn: J/byte = HBM_SHARE x P_dyn / HBM bandwidth;
- on-chip SRAM (SBUF, L2/shared memory) costs SRAM_RATIO of an HBM byte (SRAM access energy is an order of
  magnitude below DRAM access; Horowitz, ISSCC 2014, "Computing's energy problem");
- links at full bandwidth draw LINK_SHARE x P_dyn: J/byte = LINK_SHARE x P_dyn / link bandwidth.
COMPUTE + HBM + LINK shares sum to 1, so a rank that saturates everything draws TDP; an op's power is also
capped at TDP. A rank (NeuronCore) gets its chip's powers divided by the ranks per chip.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from infersim.cost.base import Cost
from infersim.cost.device import Device
from infersim.graph.ops import Op
from infersim.specs.dtypes import DTYPES

FP32_BYTES = 4.0  # on-chip intermediates (scores, partial sums) are held in fp32


@dataclass(frozen=True)
class PowerShares:
    compute: float = 0.60
    vector: float = 0.20
    hbm: float = 0.30
    link: float = 0.10
    sram_ratio: float = 0.10


@dataclass(frozen=True)
class PowerModel:
    idle_w: float  # per rank
    tdp_w: float  # per rank
    dyn_w: float  # per rank: TDP - idle
    j_per_hbm_byte: float
    j_per_sram_byte: float
    j_per_link_byte: float
    j_per_element: float
    compute_share: float
    dev: Device
    flop_j: Mapping[str, float]  # `j_per_flop` of every known format, resolved once

    def j_per_flop(self, dtype: str) -> float:
        got = self.flop_j.get(dtype)
        return _j_per_flop(self.compute_share, self.dyn_w, self.dev.peak(dtype)) if got is None else got


def _j_per_flop(compute_share: float, dyn_w: float, peak: float) -> float:
    return compute_share * dyn_w / peak if peak else 0.0


def power_model(dev: Device, shares: PowerShares = PowerShares()) -> PowerModel:
    n = dev.ranks_per_chip
    idle, tdp = dev.chip.power.idle_w / n, dev.chip.power.tdp_w / n
    dyn = max(tdp - idle, 0.0)
    link = dev.chip.link
    j_hbm = shares.hbm * dyn / dev.hbm_bytes_per_s
    j_link = shares.link * dyn / (link.bytes_per_s / n) if link and link.bytes_per_s else j_hbm
    j_elem = shares.vector * dyn / dev.vector_flops_per_s if dev.vector_flops_per_s else 0.0
    flop_j = {d: _j_per_flop(shares.compute, dyn, dev.peak(d)) for d in DTYPES}
    return PowerModel(idle, tdp, dyn, j_hbm, j_hbm * shares.sram_ratio, j_link, j_elem, shares.compute, dev, flop_j)


def op_joules(op: Op, cost: Cost, pm: PowerModel, active: int = 1, ranks: int = 1) -> float:
    """Energy of one run of `op` on `active` ranks while all `ranks` of the replica draw idle power
    (pipeline stages not running this op idle)."""
    return run_joules(op, cost.seconds, cost.link_bytes, pm, active, ranks)


def run_joules(op: Op, seconds: float, link_bytes: float, pm: PowerModel, active: int = 1, ranks: int = 1) -> float:
    """`op_joules` of one run taking `seconds` and sending `link_bytes` over links."""
    moved = op.bytes
    dynamic = (op.flops * pm.j_per_flop(op.dtype) + op.elements * pm.j_per_element + moved * pm.j_per_hbm_byte
               + (moved + op.elements * FP32_BYTES) * pm.j_per_sram_byte + link_bytes * pm.j_per_link_byte)
    dynamic = min(dynamic, pm.dyn_w * seconds)
    return ranks * pm.idle_w * seconds + active * dynamic
