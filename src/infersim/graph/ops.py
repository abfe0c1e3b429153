"""One shaped operation of an engine step, as the compiler sees it: what it computes and what it moves.

An `Op` is per rank (one chip, or one NeuronCore on Neuron) and per repeat: `count` says how many times it
runs in one step (e.g. once per layer). Totals are `count x` the per-op figures. Shapes by kind:

    matmul            (m, n, k, groups)       m tokens x k in -> n out, `groups` independent GEMMs (experts)
    attention_prefill (pairs, heads, k_dim, v_dim)   causal query-key pairs x query heads on this rank
    attention_decode  (ctx_tokens, heads, k_dim, v_dim)  KV tokens read by the decode sequences
    norm / activation / residual / rope / sampling / embedding   (elements,)
    collective        (payload_bytes,)
"""

from __future__ import annotations

from dataclasses import dataclass

OP_CLASSES: tuple[str, ...] = ("embedding", "attention", "mlp", "moe", "norm", "lm_head", "collective", "other")
EXPERT_PREFIX = "moe.experts"  # name prefix of the routed experts' grouped GEMMs
COLLECTIVES: tuple[str, ...] = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv")


@dataclass(frozen=True, slots=True)
class Op:
    name: str  # e.g. "attn.qkv"
    kind: str  # matmul | attention_prefill | attention_decode | norm | activation | residual | rope | ...
    op_class: str  # breakdown group, one of OP_CLASSES
    dtype: str  # compute dtype (activations)
    shape: tuple[int, ...]
    flops: float = 0.0  # matrix-engine FLOPs per run
    elements: float = 0.0  # elementwise work (Vector/Scalar engines, CUDA cores) per run
    bytes_read: float = 0.0  # device-memory bytes read per run (weights included)
    bytes_written: float = 0.0  # device-memory bytes written per run (KV-cache appends included)
    weight_bytes: float = 0.0  # the part of bytes_read that is weights
    kv_bytes: float = 0.0  # the part of bytes_read that is KV cache
    count: int = 1  # runs per step (layers)
    collective: str = ""  # for kind == "collective": one of COLLECTIVES
    group: int = 1  # ranks taking part in the collective
    collective_bytes: float = 0.0  # payload per rank (bytes of the tensor being reduced / gathered / sent)
    kv_group: float = 1.0  # attention ops: query heads per KV head on this rank (GQA group; 1 for MHA)
    seqs: int = 0  # attention_decode: sequences whose KV cache the op reads

    @property
    def bytes(self) -> float:
        return self.bytes_read + self.bytes_written

    @property
    def is_expert_gemm(self) -> bool:
        return self.kind == "matmul" and self.name.startswith(EXPERT_PREFIX)

    @property
    def is_collective(self) -> bool:
        return self.kind == "collective"


def total(ops: list[Op], attr: str) -> float:
    """Sum of one per-run figure over a step, repeats included: total(ops, "weight_bytes")."""
    return sum(getattr(op, attr) * op.count for op in ops)
