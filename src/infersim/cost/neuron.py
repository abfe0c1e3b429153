"""The NeuronCore mapping: how the compiler's instruction streams keep Tensor, Vector, Scalar and DMA busy.

Rules (hardware_facts.md §1.2-1.3, neuron_software.md §3-4, from the NKI guides N4/N5/N7):
- A matmul is a sequence of `nc_matmul` = LoadStationary + MultiplyMoving on a rows x cols (128 x 128) PE array:
  the stationary tile is [K<=128, M<=128], the moving tile [K<=128, N<=moving_fmax (512, one PSUM bank)].
  MultiplyMoving takes max(N, 64) cycles; a background LoadStationary overlaps it. The compiler puts either the
  weights or the activations in the stationary slot, whichever takes fewer cycles (decode: activations).
- Formats run at peak(bf16) / peak(dtype) cycles per moving column: FP32 4x slower; FP8 double-row 2x faster
  on NeuronCore-v3+ (both read off the chip's published peaks, never assumed here).
- SBUF capacity sets the tiling: the activation block a matmul keeps resident while weights stream past may
  use half of SBUF (the other half double-buffers the weight tiles); a larger [m, k] activation is cut into
  row blocks and the weights are streamed once per block.
- Vector/Scalar engines process one element per lane per cycle per pass (~N cycles for free size N).
- Elementwise ops (norms, residual adds, activations, rope) stay on chip: the compiler tiles them by 128-token
  row blocks (one block of any transformer's hidden size fits SBUF) and fuses them between the matmuls that
  produce and consume them, so they cost engine time but no DMA.
- Engines run independent instruction streams: an op takes the longest engine time, plus a non-overlapped
  DMA fixed latency (~1.3 us, from the chip file) and the profile's per-op instruction overhead. Across ops the
  schedule hides the profile's `overlap` share of the gap between the ops' sum and the busiest engine's step
  total (the next matmul's weights stream while TensorE multiplies; `cost/overlap.py`).
- Attention kernels are costed at the profile's attention efficiency of the matrix peak (scores stay in SBUF);
  decode attention streams the KV cache at the profile's kv_read fraction of bandwidth (times the DMA row
  efficiency of a position-major cache), every term linear in the KV tokens read; GQA KV re-reads and
  materialised prefill scores add DMA traffic (`cost/traffic.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from infersim.cost.base import Cost
from infersim.cost.device import Device
from infersim.cost.overlap import RESOURCES, Busy, unoverlapped
from infersim.cost.traffic import bandwidth_share, expert_slowdown, hbm_bytes
from infersim.graph.ops import Op
from infersim.specs.chip import ComputeEngine
from infersim.specs.engine import Efficiency


@dataclass(frozen=True)
class NeuronRules:
    """Instruction-level constants of the NKI cost rules (N5 `nki_perf_guide.rst`)."""

    mm_min_cycles: int = 64  # MultiplyMoving initiation interval floor: max(N, 64) cycles
    # (VectorE passes, ScalarE passes) per element, by op kind: RMSNorm = square-sum + reduce on VectorE and a
    # fused scale on ScalarE; SwiGLU = silu on ScalarE and a multiply on VectorE; softmax = exp on ScalarE,
    # max and sum on VectorE.
    passes: Mapping[str, tuple[int, int]] = field(default_factory=lambda: {
        "norm": (2, 1), "activation": (1, 1), "residual": (1, 0), "rope": (2, 0), "sampling": (2, 0),
        "embedding": (0, 0), "attention_prefill": (2, 1), "attention_decode": (2, 1),
        "matmul": (0, 1)})  # weight-only dequantisation: one ScalarE pass (cast with a fused scale)
    fusable: tuple[str, ...] = ("norm", "activation", "residual", "rope")  # kept in SBUF between matmuls

    def of(self, kind: str) -> tuple[int, int]:
        return self.passes.get(kind, (1, 0))


RULES = NeuronRules()


def _moving_cycles(free: int, fmax: int, floor: int) -> int:
    full, rem = divmod(free, fmax)
    return full * max(fmax, floor) + (max(rem, floor) if rem else 0)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def matmul_cycles(m: int, n: int, k: int, groups: int, dev: Device) -> float:
    """TensorE cycles of [m, k] x [k, n] x groups, best of weights- or activations-stationary."""
    t = dev.chip.tile
    fmax = t.moving_fmax or t.cols
    kt = _ceil(k, t.rows)
    weights_stationary = kt * _ceil(n, t.cols) * _moving_cycles(m, fmax, RULES.mm_min_cycles)
    acts_stationary = kt * _ceil(m, t.cols) * _moving_cycles(n, fmax, RULES.mm_min_cycles)
    return groups * min(weights_stationary, acts_stationary)


@dataclass(frozen=True)
class NeuronRates:
    """What every op's costing reads off one NeuronCore rank, looked up once per device."""

    vector_per_s: float  # VectorE elements per second (half the vector peak when the chip lists no engine)
    scalar_per_s: float  # ScalarE elements per second (likewise)
    stream_bytes_per_s: float
    sbuf_bytes: float
    tensor: ComputeEngine | None


def neuron_rates(dev: Device) -> NeuronRates:
    vec = dev.engine_rate("vector") or dev.vector_flops_per_s / 2
    sca = dev.engine_rate("scalar") or dev.vector_flops_per_s / 2
    return NeuronRates(vec, sca, dev.stream_bytes_per_s, dev.sram_bytes("sbuf"), dev.chip.engine("tensor"))


def _tensor_seconds(op: Op, dev: Device, eff: Efficiency, eng: ComputeEngine | None) -> float:
    if not op.flops:
        return 0.0
    if op.kind != "matmul":
        return op.flops / (dev.peak(op.dtype) * eff.attention)
    rate = dev.chip.peak("bf16") / dev.chip.peak(op.dtype)  # cycles per moving column relative to bf16
    if eng is None:
        return op.flops / (dev.peak(op.dtype) * eff.matmul)
    m, n, k, g = op.shape
    return matmul_cycles(m, n, k, g, dev) * rate / (eng.clock_hz * dev.cores_per_rank) / eff.matmul


def dma_bytes(op: Op, eff: Efficiency, sbuf: float) -> float:
    """HBM bytes an op moves after tiling into `sbuf` bytes of SBUF (weights re-streamed once per resident
    activation block), plus the attention traffic of the stack's kernels (`cost/traffic.py`)."""
    if op.kind != "matmul" or not sbuf or not op.weight_bytes:
        return hbm_bytes(op, eff)
    blocks = -(-(op.bytes_read - op.weight_bytes) // (sbuf / 2))
    return op.bytes + op.weight_bytes * max(blocks - 1, 0)


ENGINES: tuple[str, ...] = ("Tensor", "Vector", "Scalar", "DMA")  # the order of `_engine_seconds`


def _engine_seconds(op: Op, dev: Device, eff: Efficiency, r: NeuronRates) -> tuple[float, float, float, float]:
    """Busy seconds of each of ENGINES for one run of `op`."""
    v, s = RULES.of(op.kind)
    bw = r.stream_bytes_per_s * bandwidth_share(op, eff)
    on_chip = op.kind in RULES.fusable
    slow = expert_slowdown(op, eff)
    return (_tensor_seconds(op, dev, eff, r.tensor) * slow,
            op.elements * v / (r.vector_per_s * eff.vector),
            op.elements * s / (r.scalar_per_s * eff.vector),
            0.0 if on_chip else dma_bytes(op, eff, r.sbuf_bytes) / bw * slow)


def _fixed_s(dev: Device, eff: Efficiency) -> float:
    """Per-op time no engine overlaps: the DMA fixed latency and the profile's instruction overhead."""
    return dev.chip.dma.fixed_latency_s + eff.op_overhead_s


def neuron_seconds(op: Op, dev: Device, eff: Efficiency, rates: NeuronRates) -> float:
    """Time of one run of a compute op on one NeuronCore rank: `neuron_op(...).seconds` without the breakdown."""
    return max(_engine_seconds(op, dev, eff, rates)) + _fixed_s(dev, eff)


def neuron_busy(op: Op, dev: Device, eff: Efficiency, rates: NeuronRates) -> Busy:
    """One run of a compute op as `cost/overlap.py` sees it: each engine's busy time and the fixed latencies."""
    engines = dict(zip(ENGINES, _engine_seconds(op, dev, eff, rates), strict=True))
    fixed = _fixed_s(dev, eff)
    serial = max(engines.values()) + fixed
    if op.kind == "attention_decode":  # never overlapped: keeps a decode step affine in the KV tokens read
        return unoverlapped(serial)
    return Busy(serial, tuple(engines.get(r, 0.0) for r in RESOURCES), fixed)


def neuron_op(op: Op, dev: Device, eff: Efficiency) -> Cost:
    """Time of one run of a compute op on one NeuronCore rank."""
    r = neuron_rates(dev)
    engines = dict(zip(ENGINES, _engine_seconds(op, dev, eff, r), strict=True))
    busiest = max(engines, key=engines.__getitem__)
    fixed = _fixed_s(dev, eff)
    bound = {"Tensor": "compute", "DMA": "memory"}.get(busiest, "vector")
    if engines[busiest] < fixed:
        bound = "overhead"
    moved = dma_bytes(op, eff, r.sbuf_bytes) if engines["DMA"] > 0 else 0.0  # fused elementwise ops never touch HBM
    return Cost(engines[busiest] + fixed, op.flops, moved, 0.0, bound, 0.0, engines)
