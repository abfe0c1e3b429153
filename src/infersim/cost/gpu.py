"""The GPU (and TPU) mapping: tensor-core CTA tiles in waves over the SMs, memory at a fraction of HBM bandwidth.

- A GEMM [m, k] x [k, n] is cut into tile_m x tile_n output tiles (chip.tile rows x cols: a CTA tile on GPUs,
  the 128 x 128 MXU on TPUs); tiles run in waves of `units` (SMs / MXUs), so a partial last wave costs a full
  one (wave quantisation). Each tile computes 2 x tile_m x tile_n x k FLOPs at peak / units. When there are
  fewer tiles than units, kernels split K (split-K / stream-K) into at most units / tiles slices of at least
  tile_m deep, so small-M GEMMs (decode) still spread over the SMs.
- Memory traffic streams at the profile's hbm fraction of bandwidth (kv_read for decode attention), including
  the attention traffic of the stack's kernels (GQA KV re-reads, materialised scores: `cost/traffic.py`).
- The op takes max(compute, memory, SIMT elementwise) plus the profile's per-kernel launch overhead; routed-expert
  grouped GEMMs run at the profile's `moe` fraction of the dense rates.
- Attention kernels run at the profile's attention fraction of matrix peak, every decode term linear in the
  KV tokens read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from infersim.cost.base import Cost
from infersim.cost.device import Device
from infersim.cost.traffic import bandwidth_share, expert_slowdown, hbm_bytes
from infersim.graph.ops import Op
from infersim.specs.dtypes import DTYPES
from infersim.specs.engine import Efficiency


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class GpuRates:
    """What every op's costing reads off one GPU (or TPU) rank, looked up once per device."""

    dev: Device
    tile_rows: int
    tile_cols: int
    units: int  # parallel tile units (`Device.tile_units`)
    peaks: Mapping[str, float]  # `Device.peak` of every known format
    hbm_bytes_per_s: float
    vector_flops_per_s: float

    def peak(self, dtype: str) -> float:
        got = self.peaks.get(dtype)
        return self.dev.peak(dtype) if got is None else got


def gpu_rates(dev: Device) -> GpuRates:
    t = dev.chip.tile
    return GpuRates(dev, t.rows, t.cols, dev.tile_units, {d: dev.peak(d) for d in DTYPES}, dev.hbm_bytes_per_s,
                    dev.vector_flops_per_s)


def gemm_seconds(m: int, n: int, k: int, groups: int, dtype: str, r: GpuRates, eff: Efficiency) -> float:
    """Wave-quantised tensor-core time of a (grouped) GEMM."""
    rows, cols, units = r.tile_rows, r.tile_cols, r.units
    tiles = _ceil(m, rows) * _ceil(n, cols) * groups
    split = max(1, min(units // tiles, k // rows))
    waves = _ceil(tiles * split, units)
    per_tile = 2.0 * min(m, rows) * min(n, cols) * k / split  # a tile larger than the problem does no extra work
    return waves * per_tile / (r.peak(dtype) / units) / eff.matmul


ENGINES: tuple[str, ...] = ("Tensor", "SIMT", "HBM")  # the order of `_engine_seconds`


def _engine_seconds(op: Op, r: GpuRates, eff: Efficiency, moved: float) -> tuple[float, float, float]:
    """Busy seconds of each of ENGINES for one run of `op` moving `moved` HBM bytes."""
    if op.kind == "matmul":
        m, n, k, g = op.shape
        tensor = gemm_seconds(m, n, k, g, op.dtype, r, eff)
    else:
        tensor = op.flops / (r.peak(op.dtype) * eff.attention) if op.flops else 0.0
    bw = r.hbm_bytes_per_s * bandwidth_share(op, eff)
    simt = op.elements / (r.vector_flops_per_s * eff.vector)
    slow = expert_slowdown(op, eff)
    return tensor * slow, simt, moved / bw * slow


def gpu_seconds(op: Op, rates: GpuRates, eff: Efficiency) -> float:
    """Time of one run of a compute op on one GPU (or TPU) chip: `gpu_op(...).seconds` without the breakdown."""
    return max(_engine_seconds(op, rates, eff, hbm_bytes(op, eff))) + eff.op_overhead_s


def gpu_op(op: Op, dev: Device, eff: Efficiency) -> Cost:
    """Time of one run of a compute op on one GPU (or TPU) chip."""
    moved = hbm_bytes(op, eff)
    engines = dict(zip(ENGINES, _engine_seconds(op, gpu_rates(dev), eff, moved), strict=True))
    busiest = max(engines, key=engines.__getitem__)
    bound = {"Tensor": "compute", "HBM": "memory"}.get(busiest, "vector")
    if engines[busiest] < eff.op_overhead_s:
        bound = "overhead"
    return Cost(engines[busiest] + eff.op_overhead_s, op.flops, moved, 0.0, bound, 0.0, engines)
