from __future__ import annotations

import pytest

from infersim.analyze.validate_report import step_layer_section
from infersim.analyze.validate_stats import RowResult, block, error_stats, pooled_mape, summarize, worst


def _r(line: int, metric: str, measured: float, predicted: float | None, hw: str = "inf2",
       scenario: str = "fixed-batch") -> RowResult:
    status = "ok" if predicted is not None else "unsupported: x"
    return RowResult(line, f"r{line}", "S", hw, scenario, metric, measured, predicted, status)


def test_ape_and_kind() -> None:
    r = _r(2, "tpot_p50", 10.0, 12.0)
    assert r.ape == pytest.approx(20.0) and r.kind == "latency"
    assert _r(3, "output_throughput", 100.0, None).ape is None


def test_summary_by_hand() -> None:
    # latency APEs: 10, 20, 60 -> MAPE 30, median 20, p90 = 20 + 0.8 * (60 - 20) = 52
    # throughput APEs: 50 -> MAPE 50; one unsupported row -> coverage 4/5
    results = [_r(2, "ttft_mean", 100, 110), _r(3, "tpot_p50", 10, 8), _r(4, "e2e_latency_mean", 50, 80, "trn1"),
               _r(5, "output_throughput", 200, 100, "trn1"), _r(6, "output_throughput", 1, None)]
    s = summarize(results)
    assert (s["rows"], s["covered"], s["coverage"]) == (5, 4, pytest.approx(0.8))
    assert s["latency"] == {"n": 3, "mape": pytest.approx(30), "median_ape": pytest.approx(20),
                            "p90_ape": pytest.approx(52)}
    assert s["throughput"]["mape"] == pytest.approx(50) and s["throughput"]["n"] == 1
    assert s["by_hardware"]["trn1"]["latency"]["mape"] == pytest.approx(60)
    assert s["by_hardware"]["inf2"]["coverage"] == pytest.approx(2 / 3)
    assert [r.line for r in worst(results, 2)] == [4, 5]


def test_empty_stats_are_none() -> None:
    assert error_stats([]) == {"n": 0, "mape": None, "median_ape": None, "p90_ape": None}


def test_pooled_mape_weights_each_block_by_its_rows() -> None:
    # block one: latency APEs 10 and 30; block two: latency APE 60 and a throughput APE 50
    one = block([_r(2, "ttft_mean", 100, 110), _r(3, "tpot_p50", 10, 13)])
    two = block([_r(4, "tpot_p50", 10, 16), _r(5, "output_throughput", 200, 100)])
    assert pooled_mape([one, two], "latency") == pytest.approx(100 / 3)
    assert pooled_mape([one, two], "throughput") == pytest.approx(50)
    assert pooled_mape([one, two], "all") == pytest.approx(150 / 4)
    assert pooled_mape([one], "throughput") is None


def test_step_layer_keeps_only_fixed_batch_and_single_stream_rows() -> None:
    results = [_r(2, "ttft_mean", 100, 110), _r(3, "tpot_p50", 10, 13, "trn1", "single-stream"),
               _r(4, "ttft_mean", 100, 300, "trn1", "server"), _r(5, "output_throughput", 200, 150)]
    step = summarize(results)["step_layer"]
    assert step["rows"] == 3 and step["latency"]["mape"] == pytest.approx(20)
    assert step["by_hardware"]["trn1"]["latency"]["mape"] == pytest.approx(30)
    assert step["by_source"]["S"]["throughput"]["mape"] == pytest.approx(25)
    text = "\n".join(step_layer_section(step))
    assert "| all step-layer rows | 3 | 3 | 20.00% (2) | 25.00% (1) |" in text and "| hardware: trn1 |" in text
