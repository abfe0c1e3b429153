"""Device-memory traffic of an op as a serving stack's kernels move it: the op's nominal bytes plus what the
stack's attention implementation adds (both costed on the HBM/DMA path of the mapping models).

- Decode attention on GQA models: kernels that run one (sequence, query head) per thread block or per HLO slice
  stream a KV head once for every query head of its group (TensorRT-LLM's masked-MHA generation kernel before
  the XQA GQA kernels: TensorRT-LLM docs `gpt_attention.md` release/0.5.0 vs `advanced/gpt-attention.md`;
  transformers-neuronx 2.18 HLO attention), where grouped kernels stream it once. `Efficiency.kv_repeat` is the
  share of that repetition the kernel actually pays (L2 / SBUF reuse covers the rest), so the KV bytes become
  kv_bytes x (1 + kv_repeat x (group - 1)). Still linear in the KV tokens read, so `decode_affine` stays exact.
- Prefill attention that is not flash style writes the score matrix to device memory and reads it back for the
  softmax and the value product (transformers-neuronx 2.18 builds context-encoding attention from HLO dot,
  softmax and dot ops: neuron_software.md §5.1; its NKI flash-attention kernel came later). That traffic is
  pairs x query heads x `Efficiency.score_hbm_bytes`, quadratic in the prompt length.
- Decode reads of a position-major KV cache ([position, batch, heads x head_dim] per K and per V: the SBH
  cache layout transformers-neuronx's NeuronConfig defaults to) move one row per position, holding that
  position's K (or V) of every sequence of the batch. The NKI DMA guide asks for >= 2 KiB (ideally >= 4 KiB)
  contiguous per partition to approach peak (hardware_facts.md §1.2), so a row of r bytes streams at
  r / (r + `Efficiency.kv_row_half_bytes`) of the kv_read rate: per decode batch, still linear in the KV tokens
  read.
"""

from __future__ import annotations

from infersim.graph.ops import Op
from infersim.specs.engine import Efficiency


def attention_extra_bytes(op: Op, eff: Efficiency) -> float:
    """Bytes an attention kernel moves beyond the op's nominal `bytes` (0 for every other op)."""
    if op.kind == "attention_decode":
        return op.kv_bytes * eff.kv_repeat * max(op.kv_group - 1.0, 0.0)
    if op.kind == "attention_prefill" and len(op.shape) >= 2:
        return float(op.shape[0]) * op.shape[1] * eff.score_hbm_bytes  # [pairs, heads] scores through HBM
    return 0.0


def hbm_bytes(op: Op, eff: Efficiency) -> float:
    """Device-memory bytes one run of `op` moves under the stack's kernels."""
    return op.bytes + attention_extra_bytes(op, eff)


def bandwidth_share(op: Op, eff: Efficiency) -> float:
    """Fraction of the device-memory bandwidth `op` streams at: kv_read (times the row efficiency of a
    position-major cache) for decode attention, hbm otherwise."""
    if op.kind != "attention_decode":
        return eff.hbm
    return eff.kv_read * kv_row_efficiency(op, eff)


def kv_row_efficiency(op: Op, eff: Efficiency) -> float:
    """Share of the KV streaming rate a decode attention op reaches with rows of a position-major cache: a row
    is one position's K (or V) of all `op.seqs` sequences, row / (row + kv_row_half_bytes); 1 otherwise."""
    ctx = op.shape[0] if op.shape else 0
    if not eff.kv_row_half_bytes or not ctx or not op.kv_bytes:
        return 1.0
    row = max(op.seqs, 1) * op.kv_bytes / ctx / 2.0  # K and V are separate tensors
    return row / (row + eff.kv_row_half_bytes)


def expert_slowdown(op: Op, eff: Efficiency) -> float:
    """Time factor of a routed-expert grouped GEMM against a dense GEMM of the same shape (1 for other ops)."""
    return 1.0 / eff.moe if op.is_expert_gemm else 1.0
