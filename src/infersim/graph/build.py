"""One builder for one engine step of a decoder-only transformer: prefill chunks and decode tokens together.

`build_step(model, shape, numerics, parallel)` returns the per-rank op list of the step (ops repeated per layer
carry `count`). Linear layers see `shape.tokens` rows; attention sees the causal query-key pairs of the prefill
chunks and the KV tokens the decode sequences read; the LM head runs only for sequences that emit a token
(every decode sequence and every prefill sequence: a chunk that does not finish its prompt is counted as
emitting, an upper bound that matters only for chunked prefill). Dimensions per rank follow `graph/shard.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from infersim.graph.batch import StepShape
from infersim.graph.numerics import Numerics
from infersim.graph.ops import EXPERT_PREFIX, Op
from infersim.graph.shard import (
    Parallel,
    ceil_div,
    check_parallel,
    ep_all_to_all,
    pp_send_recv,
    tp_all_reduce,
)
from infersim.specs.model import ModelSpec


@dataclass(frozen=True)
class Dims:
    """Per-rank dimensions of one layer under a parallel plan."""

    hidden: int
    heads: int  # query heads on this rank
    kv_heads: int  # KV heads (or MLA latents) on this rank
    k_dim: int  # query/key width per head used by the attention kernel
    v_dim: int  # value width per head used by the attention kernel
    kv_elems: int  # cached elements per token per layer on this rank
    prefill_k_dim: int  # MLA computes prefill attention un-absorbed (k = nope + rope)
    prefill_v_dim: int
    rotary: int  # rotated dims per head


def dims(model: ModelSpec, par: Parallel) -> Dims:
    a = model.attention
    heads = ceil_div(a.num_heads, par.tp)
    rot = a.rotary_dim if getattr(a, "rotary_dim", 0) else a.head_dim
    if a.kind == "mla":
        rank, rope = a.kv_lora_rank or 0, a.qk_rope_head_dim
        return Dims(model.hidden_size, heads, 1, rank + rope, rank, rank + rope,
                    a.qk_nope_head_dim + rope, a.v_head_dim, rope)
    kv = ceil_div(a.num_kv_heads, par.tp)
    return Dims(model.hidden_size, heads, kv, a.head_dim, a.v_head_dim, kv * (a.head_dim + a.v_head_dim),
                a.head_dim, a.v_head_dim, rot)


@dataclass(frozen=True)
class _Ctx:
    model: ModelSpec
    shape: StepShape
    num: Numerics
    par: Parallel
    d: Dims

    @property
    def tokens(self) -> int:
        return self.shape.tokens

    @property
    def out_seqs(self) -> int:
        return self.shape.decode_seqs + self.shape.prefill_seqs


def matmul(c: _Ctx, name: str, op_class: str, m: int, n: int, k: int, count: int, groups: float = 1.0,
           extra_write: float = 0.0) -> Op:
    """[m, k] x [k, n] -> [m, n] per group; weights [k, n] read once per run (`groups` may be fractional:
    the expected number of experts touched). Weight-only formats (stored narrower than the compute format)
    are dequantised element by element on the way in (`elements`)."""
    a, w = c.num.stream_bytes, c.num.weight_bytes
    weights = k * n * groups * w
    dequant = k * n * groups if c.num.weights != c.num.activations else 0.0
    return Op(name, "matmul", op_class, c.num.activations, (m, n, k, max(1, round(groups))),
              flops=2.0 * m * n * k * groups, elements=dequant, bytes_read=weights + m * k * groups * a,
              bytes_written=m * n * groups * a + extra_write, weight_bytes=weights, count=count)


def elementwise(c: _Ctx, name: str, kind: str, op_class: str, elements: float, count: int, inputs: int = 1) -> Op:
    a = c.num.stream_bytes
    return Op(name, kind, op_class, c.num.activations, (int(elements),), elements=elements,
              bytes_read=elements * a * inputs, bytes_written=elements * a, count=count)


def _attention_core(c: _Ctx, n: int) -> list[Op]:
    s, d, kvb = c.shape, c.d, c.num.kv_bytes
    group = d.heads / max(1, d.kv_heads)  # query heads sharing one KV head (or one MLA latent) on this rank
    ops = []
    if s.prefill_attn_pairs:  # [pairs, heads]: scores and softmax never leave on-chip memory (flash style)
        pairs = s.prefill_attn_pairs
        kv = s.prefill_tokens * d.kv_elems * kvb
        ops.append(Op("attn.prefill", "attention_prefill", "attention", c.num.activations,
                      (pairs, d.heads, d.prefill_k_dim, d.prefill_v_dim),
                      flops=2.0 * pairs * d.heads * (d.prefill_k_dim + d.prefill_v_dim), elements=pairs * d.heads,
                      bytes_read=s.prefill_tokens * d.heads * d.prefill_k_dim * c.num.stream_bytes + kv, kv_bytes=kv,
                      bytes_written=s.prefill_tokens * d.heads * d.prefill_v_dim * c.num.stream_bytes, count=n,
                      kv_group=group))
    if s.decode_seqs:  # [ctx_tokens, kv_heads, k+v] streamed from the paged KV cache; every term is linear in ctx
        ctx = s.decode_ctx_tokens
        kv = ctx * d.kv_elems * kvb
        ops.append(Op("attn.decode", "attention_decode", "attention", c.num.activations,
                      (ctx, d.heads, d.k_dim, d.v_dim), flops=2.0 * ctx * d.heads * (d.k_dim + d.v_dim),
                      elements=ctx * d.heads, bytes_read=kv, kv_bytes=kv, count=n, kv_group=group))
    return ops


def _qkv(c: _Ctx, n: int) -> list[Op]:
    a, d, t, h = c.model.attention, c.d, c.tokens, c.d.hidden
    append = t * d.kv_elems * c.num.kv_bytes  # new K/V (or MLA latent) written to the cache
    if a.kind != "mla":  # [t, h] x [h, (heads + 2 kv_heads) * head_dim / tp]
        return [matmul(c, "attn.qkv", "attention", t, d.heads * a.head_dim + d.kv_elems, h, n, extra_write=append)]
    qk = a.qk_nope_head_dim + a.qk_rope_head_dim
    rank = a.kv_lora_rank or 0
    q = ([matmul(c, "attn.q_a", "attention", t, a.q_lora_rank, h, n),  # [t, q_lora] replicated
          matmul(c, "attn.q_b", "attention", t, d.heads * qk, a.q_lora_rank, n)] if a.q_lora_rank
         else [matmul(c, "attn.q", "attention", t, d.heads * qk, h, n)])
    kv_a = matmul(c, "attn.kv_a", "attention", t, rank + a.qk_rope_head_dim, h, n, extra_write=append)
    return [*q, kv_a, matmul(c, "attn.kv_b", "attention", t, d.heads * (a.qk_nope_head_dim + a.v_head_dim), rank, n)]


def attention_block(c: _Ctx, n: int) -> list[Op]:
    t, d, p = c.tokens, c.d, c.par
    ops = [elementwise(c, "attn.norm", "norm", "norm", t * d.hidden, n)]
    ops += _qkv(c, n)
    ops.append(elementwise(c, "attn.rope", "rope", "attention", t * (d.heads + d.kv_heads) * d.rotary, n))
    ops += _attention_core(c, n)
    ops.append(matmul(c, "attn.o", "attention", t, d.hidden, d.heads * c.model.attention.v_head_dim, n))
    if not c.model.parallel_block:  # GPT-J sums attention and MLP before one all-reduce
        ops += tp_all_reduce("attn.all_reduce", "collective", c.num.activations, t, d.hidden, c.num.stream_bytes, p, n)
        ops.append(elementwise(c, "attn.residual", "residual", "other", t * d.hidden, n, inputs=2))
    return ops


def _ffn(c: _Ctx, prefix: str, op_class: str, m: int, inter: int, n: int, groups: float = 1.0) -> list[Op]:
    """Dense MLP or experts of inner size `inter` (already per rank): [m, h] -> [m, inter] -> [m, h]."""
    h = c.d.hidden
    gated = c.model.mlp in ("swiglu", "geglu")
    up = matmul(c, f"{prefix}.gate_up" if gated else f"{prefix}.up", op_class, m, inter * (2 if gated else 1), h,
                n, groups)
    act = elementwise(c, f"{prefix}.act", "activation", op_class, m * inter * groups, n, inputs=2 if gated else 1)
    return [up, act, matmul(c, f"{prefix}.down", op_class, m, h, inter, n, groups)]


def _close_block(c: _Ctx, n: int, reduce: bool) -> list[Op]:
    t, h = c.tokens, c.d.hidden
    ops = tp_all_reduce("mlp.all_reduce", "collective", c.num.activations, t, h, c.num.stream_bytes, c.par, n) \
        if reduce else []
    return [*ops, elementwise(c, "mlp.residual", "residual", "other", t * h, n,
                              inputs=3 if c.model.parallel_block else 2)]


def dense_mlp_block(c: _Ctx, n: int) -> list[Op]:
    t = c.tokens
    norm = [] if c.model.parallel_block else [elementwise(c, "mlp.norm", "norm", "norm", t * c.d.hidden, n)]
    body = _ffn(c, "mlp", "mlp", t, ceil_div(c.model.intermediate_size, c.par.tp), n)
    return norm + body + _close_block(c, n, True)


def experts_touched(num_experts: int, top_k: int, tokens: int) -> float:
    """Expected distinct experts hit by `tokens` tokens each routed to top_k of num_experts (uniform routing)."""
    return num_experts * (1.0 - (1.0 - top_k / num_experts) ** tokens) if tokens else 0.0


def moe_block(c: _Ctx, n: int) -> list[Op]:
    moe, t, h, p = c.model.moe, c.tokens, c.d.hidden, c.par
    assert moe is not None
    ops = [elementwise(c, "mlp.norm", "norm", "norm", t * h, n),
           matmul(c, "moe.router", "moe", t, moe.num_experts, h, n),  # [t, h] x [h, E], replicated
           elementwise(c, "moe.topk", "sampling", "moe", t * moe.num_experts, n)]
    ops += ep_all_to_all("moe.all_to_all", c.num.activations, t, h, moe.experts_per_token, c.num.stream_bytes, p, n)
    touched = experts_touched(moe.num_experts, moe.experts_per_token, t) / p.ep
    if touched > 0:  # [t * k / touched, h] per expert on this rank
        m = max(1, round(t * moe.experts_per_token / (touched * p.ep)))
        ops += _ffn(c, EXPERT_PREFIX, "moe", m, ceil_div(moe.expert_intermediate_size, p.expert_tp), n, touched)
    if moe.num_shared_experts:
        inter = ceil_div(moe.num_shared_experts * moe.shared_intermediate_size, p.tp)
        ops += _ffn(c, "moe.shared", "moe", t, inter, n)
    return ops + _close_block(c, n, p.expert_tp > 1 or bool(moe.num_shared_experts and p.tp > 1))


def _layer_groups(model: ModelSpec) -> list[tuple[bool, int]]:
    """(is_moe, layer count) for the dense and MoE layers of the model."""
    moe = sum(1 for i in range(model.num_layers) if model.moe and model.moe.is_moe_layer(i))
    return [(flag, k) for flag, k in ((False, model.num_layers - moe), (True, moe)) if k]


def head_ops(c: _Ctx) -> list[Op]:
    m, h, v = c.out_seqs, c.d.hidden, ceil_div(c.model.vocab_size, c.par.tp)
    if not m:
        return []
    ops = [elementwise(c, "final_norm", "norm", "norm", m * h, 1),
           matmul(c, "lm_head", "lm_head", m, v, h, 1),  # [m, h] x [h, vocab / tp]
           elementwise(c, "sampling", "sampling", "lm_head", m * v, 1)]
    if c.par.tp > 1:  # gather each rank's [m, vocab / tp] logits (top-k candidates) for the sampler
        ops += [Op("lm_head.all_gather", "collective", "collective", c.num.activations, (m * v,),
                   collective="all_gather", group=c.par.tp, collective_bytes=m * v * c.num.stream_bytes * c.par.tp)]
    return ops


def embedding_ops(c: _Ctx) -> list[Op]:
    t, h = c.tokens, c.d.hidden
    rows = t * h * c.num.weight_bytes  # [t, h] rows gathered from the [vocab, h] table
    return [Op("embedding", "embedding", "embedding", c.num.activations, (t * h,), elements=t * h,
               bytes_read=rows, weight_bytes=rows, bytes_written=t * h * c.num.stream_bytes)]


def build_step(model: ModelSpec, shape: StepShape, numerics: Numerics, parallel: Parallel) -> list[Op]:
    """The per-rank op list of one engine step (layers of all pipeline stages, in execution order)."""
    par = check_parallel(model, parallel)
    c = _Ctx(model, shape, numerics, par, dims(model, par))
    if not shape.tokens:
        return []
    ops = embedding_ops(c)
    for is_moe, n in _layer_groups(model):
        ops += attention_block(c, n) + (moe_block(c, n) if is_moe else dense_mlp_block(c, n))
    ops += pp_send_recv(numerics.activations, c.tokens, c.d.hidden, numerics.stream_bytes, par)
    return ops + head_ops(c)
