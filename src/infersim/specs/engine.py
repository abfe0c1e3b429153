"""A serving stack's policy and its efficiencies on each chip generation, versioned (`trtllm-0.17`,
`neuron-tnx-2.18`, `vllm-0.10`, `nxdi-2.2x`, `jetstream-0.2`, ...).

Defaults come from the engine's YAML file in `catalog/data/engines/`; calibrated values (fitted by a script
under `calibration/` on `truth_dev.csv` only) override them per chip generation and carry the rows they were
fitted on. `Efficiency` is the complete list of what calibration may touch: no per-row constants.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any


@dataclass(frozen=True)
class Efficiency:
    """What a serving stack achieves on one chip generation, as fractions of peak and fixed overheads."""

    matmul: float = 0.75  # fraction of dense matrix peak a large, well-shaped GEMM reaches
    hbm: float = 0.80  # fraction of HBM bandwidth a long streaming read reaches
    attention: float = 0.50  # fraction of matrix peak the attention kernel reaches (prefill)
    vector: float = 0.50  # fraction of vector peak for norms, activations, softmax
    link: float = 0.70  # fraction of link bandwidth a large collective reaches
    collective_latency_s: float = 10e-6  # fixed cost of one collective call
    layer_overhead_s: float = 0.0  # fixed per layer per step (kernel launches, semaphores)
    step_overhead_s: float = 0.0  # fixed per step (scheduling, sampling, host round trip)
    token_overhead_s: float = 0.0  # per token in a step (host-side bookkeeping, detokenisation)
    kv_read: float = 0.50  # fraction of HBM bandwidth the decode attention kernel reaches reading the KV cache
    op_overhead_s: float = 0.0  # fixed per op (kernel launch on GPUs, instruction issue/semaphores on Neuron)
    prefill_overhead_s: float = 0.0  # extra fixed cost of a step holding prefill (context-encoding graph switch)
    # Cross-op engine overlap (NeuronCore mapping; `cost/overlap.py`): the share of the gap between running a
    # step's ops one after another and its busiest engine's total that the compiler's schedule hides. 0: none
    # (GPU kernels on one stream); 1: perfect overlap. Bounds [0, 1].
    overlap: float = 0.0
    # Decode attention on GQA models: share of the KV traffic repeated for every further query head of a KV group
    # (0: each KV head is streamed once per step, as grouped kernels do -- XQA, flash-decoding, NKI; 1: streamed
    # once per query head, as per-(sequence, head) kernels do -- TensorRT-LLM's masked-MHA generation kernel
    # before XQA, transformers-neuronx HLO attention). Bounds [0, 1].
    kv_repeat: float = 0.0
    # Prefill attention that materialises the score matrix in device memory (non-flash kernels): HBM bytes moved
    # per causal query-key pair per query head (0: scores stay on chip, flash style). A masked full-square
    # fp32 score write + read plus a 16-bit probability write + read is 2 x (4 + 4 + 2 + 2) = 24; a fully unfused
    # softmax (mask, max, exp, sum, normalise as separate passes over fp32 scores) moves about 72. Bounds [0, 96].
    score_hbm_bytes: float = 0.0
    # Decode KV reads from a position-major cache ([position, sequence, KV heads x head_dim] K and V tensors, as
    # transformers-neuronx lays them out): one DMA row per position holds that position's K (or V) of every
    # sequence in the batch, and a row of r bytes streams at r / (r + kv_row_half_bytes) of the kv_read rate
    # (0: a sequence-major or paged cache, whose reads are long contiguous runs at the full kv_read rate).
    kv_row_half_bytes: float = 0.0
    # Grouped expert GEMMs of MoE layers: the fraction of the dense GEMM rates (matrix and weight streaming) they
    # reach, for token permutation, per-expert tile padding and routing imbalance. Bounds (0, 1]; 1 = as dense.
    moe: float = 1.0
    # Latency a request spends outside the engine on its way in and its first token's way out (HTTP/gRPC,
    # tokenisation, a Triton ensemble's pre- and post-processing models, a benchmark harness's queues): added to
    # the TTFT and E2E that validation compares with client-side measurements, never to step time. Fitted only
    # where a group has such measurements (served TTFT / ITL / E2E); 0 otherwise. `infersim simulate` reports
    # engine-side latencies and does not add it.
    frontend_s: float = 0.0

    def scaled(self, **changes: float) -> Efficiency:
        return replace(self, **changes)


EFFICIENCY_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Efficiency))


@dataclass(frozen=True)
class EngineProfile:
    name: str  # e.g. trtllm-0.17
    framework: str  # the truth-schema framework value (trtllm, neuron-tnx, vllm, ...)
    version: str
    families: tuple[str, ...]  # chip families it runs on: neuron, gpu, tpu
    batching: str  # default batching policy: continuous | static
    max_batch: int  # default max sequences in flight per replica
    max_tokens_per_step: int  # default token budget per step (chunked prefill / max_num_batched_tokens)
    kv_block_tokens: int  # paged-KV block size (Neuron TNx: one block per sequence, 0 = whole sequence)
    kv_memory_fraction: float  # share of device memory given to the KV cache, of `kv_memory_basis`
    kv_memory_basis: str = "free"  # "free": of memory left after weights and activations (TensorRT-LLM
    # kv_cache_free_gpu_mem_fraction); "total": of all device memory, weights included (vLLM gpu_memory_utilization)
    buckets: tuple[int, ...] = ()  # compiled sequence-length buckets (Neuron); empty = no bucketing
    # "grow": KV blocks are allocated as tokens are generated (vLLM; preemption when they run out); "reserve": a
    # request is admitted only when the KV of its whole sequence fits (TensorRT-LLM GUARANTEED_NO_EVICT)
    kv_admission: str = "grow"
    # True: the context encoder runs a step's prompts one sequence after another (weights streamed and collectives
    # run once per sequence, one program switch per step), so a batched prefill costs its sequences' single
    # prefills (transformers-neuronx static batching); False: the whole batch in one pass, weights shared.
    prefill_per_sequence: bool = False
    # True: the attention kernel rotates Q and K as it loads them (TensorRT-LLM's GPT attention plugin), so the step
    # has no rotary-embedding pass of its own; False: a separate rope pass reads and writes Q and K.
    rope_in_attention: bool = False
    efficiency: Mapping[str, Efficiency] = field(default_factory=dict)  # by chip name or generation; "*" = default
    tp_degrees: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # by chip name; empty = any
    lnc: Mapping[str, int] = field(default_factory=dict)  # physical cores per logical core, by chip generation
    provenance: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def eff(self, generation: str, chip: str = "") -> Efficiency:
        """Efficiencies on a chip (calibrated per chip), else on its generation, else the profile-wide default."""
        return self._lookup(self.efficiency, generation, chip) or Efficiency()

    def provenance_of(self, generation: str, chip: str = "") -> str:
        """Where the efficiencies `eff(generation, chip)` come from."""
        return self._lookup(self.provenance, generation, chip) or "engine defaults"

    @staticmethod
    def _lookup(table: Mapping[str, Any], generation: str, chip: str) -> Any:
        return (table.get(chip) if chip else None) or table.get(generation) or table.get("*")

    def cores_per_rank(self, generation: str) -> int:
        """Physical cores one TP rank spans on Neuron (logical NeuronCore size, LNC); 1 when not set."""
        return self.lnc.get(generation, 1)
