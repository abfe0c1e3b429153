"""Batching policies as frozen configurations in a plain `{name: cls}` registry.

- `static`: Neuron transformers-neuronx style. A batch of up to `max_batch` queued requests runs to completion
  at the compiled batch size; prompts and KV are padded to the smallest sequence-length bucket that holds them
  and each sequence owns one KV block sized to its bucket.
- `continuous`: iteration-level batching (vLLM/TensorRT-LLM in-flight style). At every step boundary queued
  requests are admitted while sequence slots (`max_batch`), the step token budget (`max_tokens_per_step`) and free
  KV blocks allow; a step mixes whole prefills with the running decodes (`mixed_steps=False`: decodes pause
  during prefill steps). Running out of KV blocks preempts the
  most recently admitted sequence (recompute or swap); with `reserve_full` a request is admitted only when the
  KV of its whole sequence fits, and nothing is ever preempted.
- `chunked-prefill`: Sarathi style: decodes first, then prompt chunks fill the rest of the token budget.
- `prefix-caching`: continuous batching where a request whose shared prefix is cached on the replica skips its
  prefill (compute only: its KV blocks are still counted per request, a conservative simplification).
- `speculative`: continuous batching with a draft model proposing `draft_tokens` tokens per step; each step
  yields the expected accepted tokens (1 - a^(k+1)) / (1 - a) (Leviathan et al. 2023, eq. 1) per sequence.
Disaggregated prefill/decode pools are a cluster layout (`serve.cluster.disaggregated`), not a step policy.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from infersim.cost.protocol import StepCoster, WrappedCoster
from infersim.errors import InputError, unknown_name
from infersim.graph.batch import StepShape
from infersim.specs.engine import EngineProfile


@dataclass(frozen=True)
class Speculative:
    draft_tokens: int = 4  # k tokens proposed per step
    acceptance: float = 0.7  # probability each draft token is accepted
    draft_fraction: float = 0.1  # a draft step's time as a fraction of a target step (if no draft coster)
    draft: StepCoster | None = None  # a separate draft-model coster, used instead of draft_fraction

    @property
    def tokens_per_step(self) -> float:
        a, k = self.acceptance, self.draft_tokens
        return float(k + 1) if a >= 1.0 else (1.0 - a ** (k + 1)) / (1.0 - a)


@dataclass(frozen=True)
class ContinuousPolicy:
    max_batch: int = 256
    max_tokens_per_step: int = 8192
    kv_block_tokens: int = 16
    chunked_prefill: bool = False
    # False: a step holds prefills or decodes, never both (vLLM V0 without chunked prefill; Neuron NxDI's separate
    # context-encoding and token-generation graphs): running decodes pause while prompts are prefilled
    mixed_steps: bool = True
    prefix_caching: bool = False
    prefix_cache_entries: int = 64  # distinct prefixes a replica keeps (LRU)
    # Sequences with one prefix id keep one copy of the prefix's KV (beam search: TensorRT-LLM runs one context
    # phase per request and its cache indirection points every beam at the one copy of the prompt's KV): members
    # after the first skip the prefix's prefill and, under whole-sequence reservation (reserve_full, or block size
    # 0), reserve the prefix's whole blocks only once
    shared_prefix_kv: bool = False
    # Decode attention reads a prefix that running sequences share once per step, not once per sequence (kernels
    # that batch a prefix's readers, e.g. cascade attention); TensorRT-LLM's beam kernels read it per beam
    shared_prefix_reads: bool = False
    reserve_full: bool = False  # admit only if the whole sequence's KV fits (TensorRT-LLM GUARANTEED_NO_EVICT)
    preemption: Literal["recompute", "swap"] = "recompute"
    swap_s_per_token: float = 0.0  # seconds to move one token's KV to or from host memory (caller computes it)
    speculative: Speculative | None = None
    macro_steps: bool = True  # jump over runs of pure-decode steps (identical results; off for testing)

    def check(self) -> None:
        if self.max_batch < 1 or self.max_tokens_per_step < 1 or self.kv_block_tokens < 0:
            raise InputError("max_batch and max_tokens_per_step must be >= 1 and kv_block_tokens >= 0")
        if self.preemption not in ("recompute", "swap"):
            raise InputError(f'preemption "{self.preemption}" is not allowed; allowed: recompute, swap')


@dataclass(frozen=True)
class ChunkedPrefillPolicy(ContinuousPolicy):
    max_tokens_per_step: int = 2048
    chunked_prefill: bool = True


@dataclass(frozen=True)
class PrefixCachingPolicy(ContinuousPolicy):
    prefix_caching: bool = True


@dataclass(frozen=True)
class SpeculativePolicy(ContinuousPolicy):
    speculative: Speculative | None = Speculative()


@dataclass(frozen=True)
class StaticPolicy:
    max_batch: int = 8  # the compiled batch size (partial batches are padded to it)
    buckets: tuple[int, ...] = (128, 256, 512, 1024, 2048, 4096, 8192)  # compiled sequence-length buckets

    def check(self) -> None:
        if self.max_batch < 1 or any(b < 1 for b in self.buckets):
            raise InputError("static batching needs max_batch >= 1 and positive buckets")

    def bucket(self, tokens: int) -> int:
        """The smallest compiled bucket holding `tokens` (beyond the largest: the length itself)."""
        return next((b for b in sorted(self.buckets) if b >= tokens), tokens)


Policy = ContinuousPolicy | StaticPolicy

POLICIES: dict[str, type[ContinuousPolicy] | type[StaticPolicy]] = {
    "static": StaticPolicy,
    "continuous": ContinuousPolicy,
    "chunked-prefill": ChunkedPrefillPolicy,
    "prefix-caching": PrefixCachingPolicy,
    "speculative": SpeculativePolicy,
}


def make_policy(name: str, **overrides: Any) -> Policy:
    """A policy by name with some fields overridden (unknown fields are ignored only when None)."""
    if name not in POLICIES:
        raise unknown_name("batching policy", name, POLICIES)
    cls = POLICIES[name]
    allowed = {f.name for f in fields(cls)}
    bad = sorted(k for k, v in overrides.items() if v is not None and k not in allowed)
    if bad:
        raise InputError(f'policy "{name}" has no setting "{bad[0]}"; allowed: {", ".join(sorted(allowed))}')
    pol = replace(cls(), **{k: v for k, v in overrides.items() if v is not None})
    pol.check()
    return pol


def policy_for(profile: EngineProfile, name: str | None = None, **overrides: Any) -> Policy:
    """The engine profile's batching defaults (policy, batch and token limits, KV blocks and admission), under
    another policy name or with some settings overridden (None keeps the profile's value)."""
    name = name or profile.batching
    given = {k: v for k, v in overrides.items() if v is not None}
    if name == "static":
        return make_policy("static", max_batch=given.get("max_batch", profile.max_batch),
                           buckets=tuple(profile.buckets) or None)
    defaults = {"max_batch": profile.max_batch, "max_tokens_per_step": profile.max_tokens_per_step,
                "kv_block_tokens": profile.kv_block_tokens, "reserve_full": profile.kv_admission == "reserve"}
    return make_policy(name, **{**defaults, **given})


class SpeculativeCoster(WrappedCoster):
    """A target coster whose steps also pay for `k` draft steps (draft model or a fraction of the target).

    Verifying k+1 tokens per sequence reads the same weights and KV as decoding one, so the verification is
    costed as one target step (memory-bound decode assumption)."""

    def __init__(self, target: StepCoster, spec: Speculative) -> None:
        super().__init__(target)
        self.spec = spec

    def _draft_scale(self) -> float:
        return self.spec.draft_tokens * self.spec.draft_fraction

    def step_time(self, shape: StepShape) -> float:
        t = self.inner.step_time(shape)
        if self.spec.draft is not None:
            return t + self.spec.draft_tokens * self.spec.draft.step_time(shape)
        return t * (1.0 + self._draft_scale())

    def step_energy(self, shape: StepShape) -> float:
        e = self.inner.step_energy(shape)
        if self.spec.draft is not None:
            return e + self.spec.draft_tokens * self.spec.draft.step_energy(shape)
        return e * (1.0 + self._draft_scale())

    def decode_affine(self, decode_seqs: int) -> tuple[float, float]:
        base, slope = self.inner.decode_affine(decode_seqs)
        if self.spec.draft is not None:
            db, ds = self.spec.draft.decode_affine(decode_seqs)
            k = self.spec.draft_tokens
            return base + k * db, slope + k * ds
        s = 1.0 + self._draft_scale()
        return base * s, slope * s
