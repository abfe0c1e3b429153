"""Cross-op engine overlap: how much of a step the compiler's schedule hides by running one op's engines while
another op's are busy (NeuronCore: the weight DMA of the next matmul streams while TensorE multiplies, VectorE
normalises and a collective runs).

Each op is first costed on its own (`cost/neuron.py`: the busiest of its engines plus its fixed latencies), and
a step of such ops run one after another takes their sum, the serial time. With perfect overlap a step takes its
busiest resource's total instead (each of Tensor, Vector, Scalar, DMA and the collectives summed over the step)
plus every op's fixed latencies. An engine profile's `overlap` (Efficiency) is the share of the difference that
the schedule hides:

    step = serial - overlap x (serial - (max over resources of their totals + fixed latencies))

Decode attention is never overlapped: its time is linear in the KV tokens read, which keeps a decode step affine
in them (`StepCostModel.decode_affine` stays exact). GPU ops are not overlapped either (kernels on one stream
run one after another): both enter as fixed time.
"""

from __future__ import annotations

from dataclasses import dataclass

RESOURCES: tuple[str, ...] = ("Tensor", "Vector", "Scalar", "DMA", "collective")


@dataclass(frozen=True, slots=True)
class Busy:
    """Seconds of some ops: run one after another (`serial_s`), per resource, and never overlapped (`fixed_s`)."""

    serial_s: float = 0.0
    engines_s: tuple[float, ...] = (0.0,) * len(RESOURCES)  # busy seconds per RESOURCES
    fixed_s: float = 0.0

    def __add__(self, other: Busy) -> Busy:
        return Busy(self.serial_s + other.serial_s,
                    tuple(a + b for a, b in zip(self.engines_s, other.engines_s, strict=True)),
                    self.fixed_s + other.fixed_s)

    def times(self, n: float) -> Busy:
        return Busy(self.serial_s * n, tuple(e * n for e in self.engines_s), self.fixed_s * n)

    @property
    def overlapped_s(self) -> float:
        """The time with perfect overlap: the busiest resource's total plus the fixed latencies."""
        return max(self.engines_s) + self.fixed_s

    def hidden_s(self, overlap: float) -> float:
        """Seconds the schedule hides at `overlap` (0: none, ops run one after another; 1: perfect overlap)."""
        return overlap * max(self.serial_s - self.overlapped_s, 0.0)


def busy_on(resource: str, seconds: float) -> Busy:
    """An op that keeps one of RESOURCES busy for all of its `seconds` (a collective on the links)."""
    return Busy(seconds, tuple(seconds if r == resource else 0.0 for r in RESOURCES), 0.0)


def unoverlapped(seconds: float) -> Busy:
    """An op that runs on its own: all of its time is fixed."""
    return Busy(seconds, (0.0,) * len(RESOURCES), seconds)
