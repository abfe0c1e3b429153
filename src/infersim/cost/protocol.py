"""The contract between the cost layer and the serving simulator: a replica's step cost, nothing more."""

from __future__ import annotations

from typing import Protocol

from infersim.graph.batch import StepShape


class StepCoster(Protocol):
    """What `serve/` needs of one replica (TP x PP chips or NeuronCores running one model copy)."""

    def step_time(self, shape: StepShape) -> float:
        """Seconds one engine step takes (cached: a warm call costs microseconds)."""
        ...

    def step_energy(self, shape: StepShape) -> float:
        """Joules the replica's chips spend on one step, idle power included."""
        ...

    def decode_affine(self, decode_seqs: int) -> tuple[float, float]:
        """(base_s, s_per_ctx_token) such that a pure decode step of `decode_seqs` sequences reading C KV
        tokens takes exactly base_s + s_per_ctx_token * C. Lets the simulator jump many steps at once."""
        ...

    @property
    def kv_capacity_tokens(self) -> int:
        """KV-cache tokens the replica holds (from the memory plan)."""
        ...

    @property
    def idle_power_w(self) -> float:
        """Power the replica's chips draw when no step runs."""
        ...


class WrappedCoster:
    """A step coster built on another one (`inner`): the replica's KV capacity and idle power are the inner
    coster's, and so is `decode_affine` unless a subclass changes it; subclasses give the step costs."""

    def __init__(self, inner: StepCoster) -> None:
        self.inner = inner

    def decode_affine(self, decode_seqs: int) -> tuple[float, float]:
        return self.inner.decode_affine(decode_seqs)

    @property
    def kv_capacity_tokens(self) -> int:
        return self.inner.kv_capacity_tokens

    @property
    def idle_power_w(self) -> float:
        return self.inner.idle_power_w
