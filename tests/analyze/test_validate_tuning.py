"""trtllm-bench's engine limits, checked against the tool's arithmetic worked by hand."""

from __future__ import annotations

from infersim.analyze.validate_tuning import _round_batch, _round_tokens, bench_limits
from infersim.catalog import load_catalog

CAT = load_catalog()


def test_rounding_steps() -> None:
    assert [_round_batch(x) for x in (10, 70, 300, 1500)] == [64, 96, 384, 1536]
    assert [_round_tokens(x) for x in (100, 3000, 5000, 9000)] == [2048, 3072, 5120, 9216]


def test_llama_8b_h100_fp8_short_run_hits_the_caps() -> None:
    # (79.65 GiB - 8.03 GB) x 0.95 / 6.1e-5 GiB per token / 256 tokens = 4356 requests -> capped at 4096
    assert bench_limits(CAT.model("llama-3.1-8b"), CAT.chip("h100-sxm"), "fp8", "fp8", 1, 1, 128, 128) == (4096, 8192)


def test_llama_70b_a100_tp8_decode_heavy_run() -> None:
    # (8 x 80 GiB - 141.1 GB) x 0.95 / 3.05e-4 GiB per token / 2176 tokens = 714 requests -> 768; 768 x 1.06 -> 2048
    got = bench_limits(CAT.model("llama-3.1-70b"), CAT.chip("a100-sxm-80g"), "fp16", "fp16", 8, 1, 128, 2048)
    assert got == (768, 2048)
