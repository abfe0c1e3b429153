"""Number formats of one deployment: weights, activations (= the matrix-engine compute format) and KV cache.

Rules (no silent fallback):
- the chip must compute natively in the activation format (its matrix engine publishes a peak for it);
- weights may be stored narrower than the activations (weight-only int8/fp8/fp4, dequantised on the fly);
- fp8 compute (fp8 activations) needs chip fp8 support;
- the KV cache may use any storage format (dequantised inside attention).
Unsupported combinations raise one InputError naming the chip, the format and what the chip supports.
"""

from __future__ import annotations

from dataclasses import dataclass

from infersim.errors import InputError
from infersim.specs.chip import Chip
from infersim.specs.dtypes import COMPUTE_CLASS, PEAK_KEYS, bytes_per_element, check_dtype

WEIGHT_ONLY: tuple[str, ...] = ("int8", "fp4")  # integer/fp4 storage formats dequantised to the activations


@dataclass(frozen=True)
class Numerics:
    weights: str = "bf16"
    activations: str = "bf16"
    kv: str = "bf16"

    @property
    def weight_bytes(self) -> float:
        return bytes_per_element(self.weights)

    @property
    def act_bytes(self) -> float:
        return bytes_per_element(self.activations)

    @property
    def stream_bytes(self) -> float:
        """Bytes per element of the residual stream, norms and collectives: 16-bit at least (fp8/int8 compute
        quantises GEMM inputs on the fly; the activations between layers stay in bf16/fp16)."""
        return max(self.act_bytes, 2.0)

    @property
    def kv_bytes(self) -> float:
        return bytes_per_element(self.kv)


def supported_compute(chip: Chip) -> list[str]:
    return [k for k in PEAK_KEYS if chip.peak_flops_per_s.get(k, 0.0) > 0.0]


def _default_activations(chip: Chip, weights: str) -> str:
    """Compute in the weights' format where the matrix engine has it natively (fp4 on Blackwell: NVFP4 GEMMs);
    int8 and fp4 storage on other chips is weight-only, dequantised to bf16 (fp16 where bf16 is missing)."""
    if weights not in WEIGHT_ONLY or (weights == "fp4" and chip.supports("fp4")):
        return weights
    return "bf16" if chip.supports("bf16") else "fp16"


def resolve_numerics(chip: Chip, weights: str = "bf16", activations: str | None = None,
                     kv: str | None = None) -> Numerics:
    """Check and complete a (weights, activations, kv) choice for `chip`; defaults: activations = weights
    (bf16 for int8 and for fp4 on chips without native fp4 compute: weight-only storage), kv = activations."""
    w = check_dtype(weights, "weight dtype")
    a = check_dtype(activations, "activation dtype") if activations else _default_activations(chip, w)
    k = check_dtype(kv, "KV-cache dtype") if kv else a
    if not chip.supports(a):
        hint = " (use --activations bf16 for weight-only storage)" if COMPUTE_CLASS[a] == "fp8" else ""
        raise InputError(f'chip "{chip.name}" cannot compute in {a}{hint}; its matrix engine supports: '
                         f'{", ".join(supported_compute(chip))}')
    if bytes_per_element(w) > bytes_per_element(a):
        raise InputError(f"weights in {w} are wider than the {a} activations; choose activations at least as "
                         f"wide as the weights (supported on {chip.name}: {', '.join(supported_compute(chip))})")
    return Numerics(w, a, k)
