"""The batch and token limits TensorRT-LLM's benchmark tool builds an engine with when given the run's dataset
(`trtllm-bench build --dataset`, v0.15-v0.17: tensorrt_llm/bench/build/tuning.py, calc_engine_setting and
finetune_setting). Arithmetic as the tool does it, GB of parameters against GiB of device memory included:

  KV requests = 0.95 x (device memory x GPUs - parameters x bytes) / KV bytes per token / (ISL + OSL)
  max_batch_size = KV requests / PP (capped at 4096), rounded up to 32 (at least 64), 128 or 256
  max_num_tokens = max_batch_size x (1 + ISL / OSL) (capped at 32768), rounded up to 256 (at least 2048), 512, 1024
where KV bytes per token count at least one KV head per TP rank.
"""

from __future__ import annotations

import math

from infersim.specs.chip import Chip
from infersim.specs.dtypes import bytes_per_element
from infersim.specs.model import ModelSpec

GIB = 1024.0**3
KV_FRACTION = 0.95


def _round_batch(raw: float) -> int:
    if raw < 256:
        return max(64, 32 * math.ceil(raw / 32))
    step = 128 if raw < 1024 else 256
    return step * math.ceil(raw / step)


def _round_tokens(raw: float) -> int:
    if raw < 4096:
        return max(2048, 256 * math.ceil(raw / 256))
    step = 512 if raw < 8192 else 1024
    return step * math.ceil(raw / step)


def bench_limits(spec: ModelSpec, chip: Chip, weights: str, kv: str, tp: int, pp: int, isl: int, osl: int
                 ) -> tuple[int, int]:
    """(max_batch_size, max_num_tokens) of the engine trtllm-bench builds for this run."""
    att = spec.attention
    kv_heads = max(tp, att.num_kv_heads)
    kv_gib_per_token = 2 * spec.num_layers * kv_heads * att.head_dim * bytes_per_element(kv) / GIB
    engine_gb = spec.param_count() / 1e9 * bytes_per_element(weights)
    available = chip.hbm_bytes / GIB * tp * pp - engine_gb
    requests = max(KV_FRACTION * available / kv_gib_per_token / (isl + osl), 1.0)
    raw_bs = min(requests, 4096.0) / pp
    raw_tokens = min(raw_bs * (1.0 + isl / osl), 32768.0)
    return _round_batch(raw_bs), _round_tokens(raw_tokens)
