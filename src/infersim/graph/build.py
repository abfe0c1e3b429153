"""One builder for one engine step of a decoder-only transformer: prefill chunks and decode tokens together.

`build_step(model, shape, numerics, parallel)` returns the per-rank op list of the step (ops repeated per layer
carry `count`). Linear layers see `shape.tokens` rows; attention sees the causal query-key pairs of the prefill
chunks and the KV tokens the decode sequences read; the LM head runs only for sequences that emit a token
(every decode sequence and every prefill sequence: a chunk that does not finish its prompt is counted as
emitting, an upper bound that matters only for chunked prefill). Dimensions per rank follow `graph/shard.py`.

What every step of a deployment shares (dimensions, layer groups, element sizes) is resolved once in a
`StepPlan`; `step_segments(plan, shape)` cuts the op list into segments keyed by the few step counts each
depends on, so the cost layer costs a segment once per key (most depend on the token count only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

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
class StepPlan:
    """What every step of one deployment shares, resolved once: per-rank dimensions, layer groups, element sizes."""

    model: ModelSpec
    num: Numerics
    par: Parallel
    d: Dims
    groups: tuple[tuple[bool, int], ...]  # (is_moe, layer count) of the dense and MoE layers
    stream_bytes: float  # residual stream, norms and collectives (`Numerics.stream_bytes`)
    weight_bytes: float
    kv_bytes: float
    dequant: bool  # weights stored narrower than the compute format, dequantised on the way in
    rope_in_attention: bool = False  # the stack's attention kernel applies the rotary embedding (no rope pass)


def step_plan(model: ModelSpec, numerics: Numerics, parallel: Parallel, rope_in_attention: bool = False) -> StepPlan:
    """The plan of one deployment; `rope_in_attention` drops the rope pass for stacks whose attention kernel
    rotates Q and K as it loads them (`EngineProfile.rope_in_attention`)."""
    par = check_parallel(model, parallel)
    return StepPlan(model, numerics, par, dims(model, par), tuple(_layer_groups(model)), numerics.stream_bytes,
                    numerics.weight_bytes, numerics.kv_bytes, numerics.weights != numerics.activations,
                    rope_in_attention)


@dataclass(frozen=True)
class _Ctx:
    p: StepPlan
    shape: StepShape
    tokens: int
    out_seqs: int  # sequences that emit a token


def matmul(c: _Ctx, name: str, op_class: str, m: int, n: int, k: int, count: int, groups: float = 1.0,
           extra_write: float = 0.0) -> Op:
    """[m, k] x [k, n] -> [m, n] per group; weights [k, n] read once per run (`groups` may be fractional:
    the expected number of experts touched). Weight-only formats (stored narrower than the compute format)
    are dequantised element by element on the way in (`elements`)."""
    a, w = c.p.stream_bytes, c.p.weight_bytes
    weights = k * n * groups * w
    dequant = k * n * groups if c.p.dequant else 0.0
    return Op(name, "matmul", op_class, c.p.num.activations, (m, n, k, max(1, round(groups))),
              flops=2.0 * m * n * k * groups, elements=dequant, bytes_read=weights + m * k * groups * a,
              bytes_written=m * n * groups * a + extra_write, weight_bytes=weights, count=count)


def elementwise(c: _Ctx, name: str, kind: str, op_class: str, elements: float, count: int, inputs: int = 1) -> Op:
    a = c.p.stream_bytes
    return Op(name, kind, op_class, c.p.num.activations, (int(elements),), elements=elements,
              bytes_read=elements * a * inputs, bytes_written=elements * a, count=count)


def prefill_attention(c: _Ctx, n: int) -> list[Op]:
    """[pairs, heads]: scores and softmax never leave on-chip memory (flash style)."""
    s, d, stream = c.shape, c.p.d, c.p.stream_bytes
    if not s.prefill_attn_pairs:
        return []
    pairs = s.prefill_attn_pairs
    kv = s.prefill_tokens * d.kv_elems * c.p.kv_bytes
    return [Op("attn.prefill", "attention_prefill", "attention", c.p.num.activations,
               (pairs, d.heads, d.prefill_k_dim, d.prefill_v_dim),
               flops=2.0 * pairs * d.heads * (d.prefill_k_dim + d.prefill_v_dim), elements=pairs * d.heads,
               bytes_read=s.prefill_tokens * d.heads * d.prefill_k_dim * stream + kv, kv_bytes=kv,
               bytes_written=s.prefill_tokens * d.heads * d.prefill_v_dim * stream, count=n, kv_group=_group(d))]


def decode_attention(c: _Ctx, n: int) -> list[Op]:
    """[ctx_tokens, kv_heads, k+v] streamed from the paged KV cache; every term is linear in ctx."""
    if not c.shape.decode_seqs:
        return []
    d, ctx = c.p.d, c.shape.decode_ctx_tokens
    kv = ctx * d.kv_elems * c.p.kv_bytes
    return [Op("attn.decode", "attention_decode", "attention", c.p.num.activations,
               (ctx, d.heads, d.k_dim, d.v_dim), flops=2.0 * ctx * d.heads * (d.k_dim + d.v_dim),
               elements=ctx * d.heads, bytes_read=kv, kv_bytes=kv, count=n, kv_group=_group(d),
               seqs=c.shape.decode_seqs)]


def _group(d: Dims) -> float:
    """Query heads sharing one KV head (or one MLA latent) on this rank."""
    return d.heads / max(1, d.kv_heads)


def _qkv(c: _Ctx, n: int) -> list[Op]:
    a, d, t, h = c.p.model.attention, c.p.d, c.tokens, c.p.d.hidden
    append = t * d.kv_elems * c.p.kv_bytes  # new K/V (or MLA latent) written to the cache
    if a.kind != "mla":  # [t, h] x [h, (heads + 2 kv_heads) * head_dim / tp]
        return [matmul(c, "attn.qkv", "attention", t, d.heads * a.head_dim + d.kv_elems, h, n, extra_write=append)]
    qk = a.qk_nope_head_dim + a.qk_rope_head_dim
    rank = a.kv_lora_rank or 0
    q = ([matmul(c, "attn.q_a", "attention", t, a.q_lora_rank, h, n),  # [t, q_lora] replicated
          matmul(c, "attn.q_b", "attention", t, d.heads * qk, a.q_lora_rank, n)] if a.q_lora_rank
         else [matmul(c, "attn.q", "attention", t, d.heads * qk, h, n)])
    kv_a = matmul(c, "attn.kv_a", "attention", t, rank + a.qk_rope_head_dim, h, n, extra_write=append)
    return [*q, kv_a, matmul(c, "attn.kv_b", "attention", t, d.heads * (a.qk_nope_head_dim + a.v_head_dim), rank, n)]


def attention_in(c: _Ctx, n: int) -> list[Op]:
    """The attention block up to the attention kernels: norm, projections, rotary embedding (unless the attention
    kernel applies it)."""
    t, d = c.tokens, c.p.d
    ops = [elementwise(c, "attn.norm", "norm", "norm", t * d.hidden, n)]
    ops += _qkv(c, n)
    if not c.p.rope_in_attention:
        ops.append(elementwise(c, "attn.rope", "rope", "attention", t * (d.heads + d.kv_heads) * d.rotary, n))
    return ops


def attention_out(c: _Ctx, n: int) -> list[Op]:
    """The attention block after the attention kernels: output projection, all-reduce, residual add."""
    t, d, p = c.tokens, c.p.d, c.p
    ops = [matmul(c, "attn.o", "attention", t, d.hidden, d.heads * p.model.attention.v_head_dim, n)]
    if not p.model.parallel_block:  # GPT-J sums attention and MLP before one all-reduce
        ops += tp_all_reduce("attn.all_reduce", "collective", p.num.activations, t, d.hidden, p.stream_bytes, p.par,
                             n)
        ops.append(elementwise(c, "attn.residual", "residual", "other", t * d.hidden, n, inputs=2))
    return ops


def attention_block(c: _Ctx, n: int) -> list[Op]:
    return attention_in(c, n) + prefill_attention(c, n) + decode_attention(c, n) + attention_out(c, n)


def _ffn(c: _Ctx, prefix: str, op_class: str, m: int, inter: int, n: int, groups: float = 1.0) -> list[Op]:
    """Dense MLP or experts of inner size `inter` (already per rank): [m, h] -> [m, inter] -> [m, h]."""
    h = c.p.d.hidden
    gated = c.p.model.mlp in ("swiglu", "geglu")
    up = matmul(c, f"{prefix}.gate_up" if gated else f"{prefix}.up", op_class, m, inter * (2 if gated else 1), h,
                n, groups)
    act = elementwise(c, f"{prefix}.act", "activation", op_class, m * inter * groups, n, inputs=2 if gated else 1)
    return [up, act, matmul(c, f"{prefix}.down", op_class, m, h, inter, n, groups)]


def _close_block(c: _Ctx, n: int, reduce: bool) -> list[Op]:
    t, h, p = c.tokens, c.p.d.hidden, c.p
    ops = tp_all_reduce("mlp.all_reduce", "collective", p.num.activations, t, h, p.stream_bytes, p.par, n) \
        if reduce else []
    return [*ops, elementwise(c, "mlp.residual", "residual", "other", t * h, n,
                              inputs=3 if p.model.parallel_block else 2)]


def dense_mlp_block(c: _Ctx, n: int) -> list[Op]:
    t, p = c.tokens, c.p
    norm = [] if p.model.parallel_block else [elementwise(c, "mlp.norm", "norm", "norm", t * p.d.hidden, n)]
    body = _ffn(c, "mlp", "mlp", t, ceil_div(p.model.intermediate_size, p.par.tp), n)
    return norm + body + _close_block(c, n, True)


def experts_touched(num_experts: int, top_k: int, tokens: int) -> float:
    """Expected distinct experts hit by `tokens` tokens each routed to top_k of num_experts (uniform routing)."""
    return num_experts * (1.0 - (1.0 - top_k / num_experts) ** tokens) if tokens else 0.0


def moe_block(c: _Ctx, n: int) -> list[Op]:
    moe, t, h, p = c.p.model.moe, c.tokens, c.p.d.hidden, c.p.par
    assert moe is not None
    ops = [elementwise(c, "mlp.norm", "norm", "norm", t * h, n),
           matmul(c, "moe.router", "moe", t, moe.num_experts, h, n),  # [t, h] x [h, E], replicated
           elementwise(c, "moe.topk", "sampling", "moe", t * moe.num_experts, n)]
    ops += ep_all_to_all("moe.all_to_all", c.p.num.activations, t, h, moe.experts_per_token, c.p.stream_bytes, p, n)
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
    p, m = c.p, c.out_seqs
    h, v = p.d.hidden, ceil_div(p.model.vocab_size, p.par.tp)
    if not m:
        return []
    ops = [elementwise(c, "final_norm", "norm", "norm", m * h, 1),
           matmul(c, "lm_head", "lm_head", m, v, h, 1),  # [m, h] x [h, vocab / tp]
           elementwise(c, "sampling", "sampling", "lm_head", m * v, 1)]
    if p.par.tp > 1:  # gather each rank's [m, vocab / tp] logits (top-k candidates) for the sampler
        ops += [Op("lm_head.all_gather", "collective", "collective", p.num.activations, (m * v,),
                   collective="all_gather", group=p.par.tp, collective_bytes=m * v * p.stream_bytes * p.par.tp)]
    return ops


def embedding_ops(c: _Ctx) -> list[Op]:
    t, h = c.tokens, c.p.d.hidden
    rows = t * h * c.p.weight_bytes  # [t, h] rows gathered from the [vocab, h] table
    return [Op("embedding", "embedding", "embedding", c.p.num.activations, (t * h,), elements=t * h,
               bytes_read=rows, weight_bytes=rows, bytes_written=t * h * c.p.stream_bytes)]


def pipeline_ops(c: _Ctx) -> list[Op]:
    p = c.p
    return pp_send_recv(p.num.activations, c.tokens, p.d.hidden, p.stream_bytes, p.par)


SegmentKey = tuple[str, int, int, int]
Segment = tuple[SegmentKey, Callable[[], list[Op]]]


def _layer_segments(c: _Ctx, i: int, is_moe: bool, n: int) -> list[Segment]:
    s, t = c.shape, c.tokens
    return [(("attn.in", i, t, 0), partial(attention_in, c, n)),
            (("attn.prefill", i, s.prefill_tokens, s.prefill_attn_pairs), partial(prefill_attention, c, n)),
            (("attn.decode", i, s.decode_seqs, s.decode_ctx_tokens), partial(decode_attention, c, n)),
            (("attn.out", i, t, 0), partial(attention_out, c, n)),
            (("moe" if is_moe else "mlp", i, t, 0), partial(moe_block if is_moe else dense_mlp_block, c, n))]


def step_segments(plan: StepPlan, shape: StepShape) -> list[Segment]:
    """The op list of one step cut into segments in execution order, each keyed by the step counts it depends
    on (layer group, then token count, prefill tokens and pairs, decode sequences and KV tokens, or emitting
    sequences): equal keys give equal ops, so a caller may memoise a segment's cost by its key."""
    if not shape.tokens:
        return []
    c = _Ctx(plan, shape, shape.tokens, shape.decode_seqs + shape.prefill_seqs)
    segs: list[Segment] = [(("embedding", 0, c.tokens, 0), partial(embedding_ops, c))]
    for i, (is_moe, n) in enumerate(plan.groups):
        segs += _layer_segments(c, i, is_moe, n)
    segs.append((("pipeline", 0, c.tokens, 0), partial(pipeline_ops, c)))
    return [*segs, (("head", 0, c.out_seqs, 0), partial(head_ops, c))]


def plan_ops(plan: StepPlan, shape: StepShape) -> list[Op]:
    """The per-rank op list of one engine step (layers of all pipeline stages, in execution order)."""
    return [op for _, make in step_segments(plan, shape) for op in make()]


def build_step(model: ModelSpec, shape: StepShape, numerics: Numerics, parallel: Parallel) -> list[Op]:
    """The per-rank op list of one engine step (layers of all pipeline stages, in execution order)."""
    return plan_ops(step_plan(model, numerics, parallel), shape)
