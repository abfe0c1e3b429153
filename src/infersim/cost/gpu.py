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

from infersim.cost.base import Cost
from infersim.cost.device import Device
from infersim.cost.traffic import bandwidth_share, expert_slowdown, hbm_bytes
from infersim.graph.ops import Op
from infersim.specs.engine import Efficiency


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def gemm_seconds(m: int, n: int, k: int, groups: int, dtype: str, dev: Device, eff: Efficiency) -> float:
    """Wave-quantised tensor-core time of a (grouped) GEMM."""
    t = dev.chip.tile
    tiles = _ceil(m, t.rows) * _ceil(n, t.cols) * groups
    split = max(1, min(dev.tile_units // tiles, k // t.rows))
    waves = _ceil(tiles * split, dev.tile_units)
    per_tile = 2.0 * min(m, t.rows) * min(n, t.cols) * k / split  # a tile larger than the problem does no extra work
    return waves * per_tile / (dev.peak(dtype) / dev.tile_units) / eff.matmul


def _engines(op: Op, dev: Device, eff: Efficiency) -> dict[str, float]:
    if op.kind == "matmul":
        m, n, k, g = op.shape
        tensor = gemm_seconds(m, n, k, g, op.dtype, dev, eff)
    else:
        tensor = op.flops / (dev.peak(op.dtype) * eff.attention) if op.flops else 0.0
    bw = dev.hbm_bytes_per_s * bandwidth_share(op, eff)
    simt = op.elements / (dev.vector_flops_per_s * eff.vector)
    slow = expert_slowdown(op, eff)
    return {"Tensor": tensor * slow, "SIMT": simt, "HBM": hbm_bytes(op, eff) / bw * slow}


def gpu_op(op: Op, dev: Device, eff: Efficiency) -> Cost:
    """Time of one run of a compute op on one GPU (or TPU) chip."""
    engines = _engines(op, dev, eff)
    busiest = max(engines, key=engines.__getitem__)
    bound = {"Tensor": "compute", "HBM": "memory"}.get(busiest, "vector")
    if engines[busiest] < eff.op_overhead_s:
        bound = "overhead"
    return Cost(engines[busiest] + eff.op_overhead_s, op.flops, hbm_bytes(op, eff), 0.0, bound, 0.0, engines)
