from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from validate_fakes import NEURON_RUN, FakeBackend, FakeCoster, csv_text, fake_catalog

from infersim.analyze.validate import predict_runs, predict_setup, validate_rows
from infersim.analyze.validate_backend import Lru, workload
from infersim.analyze.validate_predict import (
    Buckets,
    benchmark_requests,
    decode_sum_s,
    extrapolated,
    queueing_note,
    sim_sizes,
    static_batch,
)
from infersim.analyze.validate_rows import parse_rows
from infersim.analyze.validate_setup import (
    LengthSpread,
    Setup,
    Unsupported,
    configure,
    dataset,
    load_rules,
    next_pow2,
)
from infersim.catalog import Catalog
from infersim.graph.batch import decode

METRICS = ("ttft_mean", "tpot_p50", "tpot_p99", "output_throughput", "e2e_latency_mean")


def _rows(**over: str) -> str:
    lines = []
    for i, metric in enumerate(METRICS):
        fields = {"id": f"r{i}", "metric": metric, "value": "7.5", "unit": "ms", "notes": "as published"} | over
        lines.append(NEURON_RUN.format(**fields))
    return csv_text(*lines)


def _setup(**over: object) -> Setup:
    rows, _ = parse_rows(_rows())
    setup = configure(rows[0].config, fake_catalog())
    assert isinstance(setup, Setup)
    return dataclasses.replace(setup, **over)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 64), st.integers(1, 5000), st.integers(0, 3000), st.sampled_from([None, 128, 4096, 8192]))
def test_decode_sum_matches_step_by_step(batch: int, first: int, steps: int, compiled: int | None) -> None:
    coster, buckets = FakeCoster(), Buckets(compiled)
    loop = sum(coster.step_time(decode(batch, buckets.of(first + k))) for k in range(steps))
    assert decode_sum_s(coster, batch, first, steps, buckets) == pytest.approx(loop, rel=1e-9, abs=1e-12)


def test_static_batch_by_hand() -> None:
    # GPU-style (no buckets, TTFT = prefill): batch 2, input 10, output 3 -> decode steps at contexts 11, 12
    setup = _setup(batch=2, input_len=10, output_len=3, compiled_len=None, ttft_includes_first_decode=False)
    c = FakeCoster(fixed_s=1.0, per_token_s=0.5, per_ctx_s=0.01)
    pred = static_batch(setup, c, 24, Buckets(None))
    prefill = 1.0 + 0.5 * 20 + 0.01 * (2 * 55) / 1000
    steps = [1.0 + 0.5 * 2 + 0.01 * 2 * ctx for ctx in (11, 12)]
    e2e = prefill + sum(steps)
    assert pred.metrics["ttft_mean"] == pytest.approx(prefill * 1e3)
    assert pred.metrics["e2e_latency_mean"] == pytest.approx(e2e * 1e3)
    assert pred.metrics["output_throughput"] == pytest.approx(2 * 3 / e2e)
    assert pred.metrics["tpot_mean"] == pytest.approx(sum(steps) / 2 * 1e3)


def test_neuron_ttft_includes_first_decode_and_buckets() -> None:
    setup = _setup()
    assert setup.compiled_len == 256 and setup.ttft_includes_first_decode
    c = FakeCoster()
    pred = static_batch(setup, c, 24, Buckets(256))
    expected = c.step_time(decode(1, 256))
    assert pred.metrics["ttft_mean"] > pred.metrics["tpot_p50"]
    assert pred.metrics["tpot_p50"] == pytest.approx(expected * 1e3)


def test_next_pow2() -> None:
    assert [next_pow2(n) for n in (1, 2, 3, 256, 257, 4096, 8192 + 1)] == [1, 2, 4, 256, 512, 4096, 16384]


def test_value_id_notes_cannot_influence_prediction() -> None:
    base, _ = parse_rows(_rows())
    mutated, _ = parse_rows(_rows(id="tp1-batch64-input8192", value="123456", notes="tp 2; batch 64; input 8192"))
    a = validate_rows(base, fake_catalog(), FakeBackend())
    b = validate_rows(mutated, fake_catalog(), FakeBackend())
    assert [r.predicted for r in a] == [r.predicted for r in b]
    assert all(r.status == "ok" for r in a)
    assert [r.measured for r in b] == [123456.0] * len(METRICS)


def test_rows_of_one_run_share_one_prediction() -> None:
    rows, _ = parse_rows(_rows())
    backend = FakeBackend()
    runs = predict_runs([r.config for r in rows], fake_catalog(), backend)
    assert len(runs) == 1 and backend.calls == 1


def test_missing_tp_picks_a_fitting_tp_and_replicas() -> None:
    setup = _setup(tp=None, scenario="offline", batch=None, units=16)
    backend = FakeBackend(min_tp=4)
    pred = predict_setup(setup, backend, load_rules())
    assert (pred.tp, pred.replicas) == (4, 4)
    single = predict_setup(dataclasses.replace(setup, units=4), FakeBackend(min_tp=4), load_rules())
    assert pred.metrics["output_throughput"] == pytest.approx(4 * single.metrics["output_throughput"])


def test_unknown_chip_or_model_is_unsupported() -> None:
    rows, _ = parse_rows(_rows())
    cat = fake_catalog()
    no_chip = Catalog({}, {}, cat.model_files, cat.engine_files)
    no_model = Catalog(cat.chips, {}, {}, cat.engine_files)
    assert configure(rows[0].config, no_chip) == Unsupported('chip "inf2" not in the catalog')
    assert configure(rows[0].config, no_model) == Unsupported('model "llama-3.1-8b" not in the catalog')
    results = validate_rows(rows, no_chip, FakeBackend())
    assert all(r.status.startswith("unsupported: chip") and r.predicted is None for r in results)


def test_prediction_failure_is_reported_not_raised() -> None:
    rows, _ = parse_rows(_rows())
    results = validate_rows(rows, fake_catalog(), FakeBackend(min_tp=64))
    assert all(r.status.startswith("unsupported: InputError") for r in results)


def test_parallel_runs_equal_serial() -> None:
    text = "\n".join(_rows().splitlines()[1:])
    lines = [text.replace(",fixed-batch,1,,128,128,", f",fixed-batch,{b},,128,{n},")
             for b in (1, 2, 4) for n in (64, 128, 256)]
    rows, _ = parse_rows(csv_text(*lines))
    serial = validate_rows(rows, fake_catalog(), FakeBackend())
    parallel = validate_rows(rows, fake_catalog(), FakeBackend(), workers=2)
    assert len({r.config.run_key() for r in rows}) == 9
    assert [r.predicted for r in serial] == [r.predicted for r in parallel]


def test_extrapolated_makespan_by_hand() -> None:
    # 10 requests in 10 s, 20 in 16 s -> steady 10 requests per 6 s; 50 requests -> 16 + 30 * 0.6 = 34 s
    setup = _setup(input_len=100, output_len=50)
    out = extrapolated(setup, {"request_throughput": 1.0}, 10, {"request_throughput": 1.25, "ttft_mean": 7.0}, 20,
                       50)
    assert out["request_throughput"] == pytest.approx(50 / 34)
    assert out["output_throughput"] == pytest.approx(50 * 50 / 34)
    assert out["total_throughput"] == pytest.approx(50 * 150 / 34)
    assert out["ttft_mean"] == 7.0


def test_queueing_note() -> None:
    assert queueing_note({"ttft_mean": 100.0}, 0.010) == "TTFT is 10x one prefill: queueing-dominated"
    assert queueing_note({"ttft_mean": 30.0}, 0.010) == ""


def test_server_runs_simulate_the_queue_to_steady_state() -> None:
    rules = load_rules()
    server = _setup(scenario="server", qps=10.0, requests=24576, units=1)
    offline = _setup(scenario="offline", requests=24576, units=1)
    assert sim_sizes(server, 64, 1, rules) == (24576, rules.server_sim_requests)
    assert sim_sizes(offline, 64, 1, rules)[1] <= rules.max_sim_requests


def test_server_runs_last_the_benchmark_minimum_duration() -> None:
    rules = load_rules()
    server = _setup(scenario="server", qps=100.0, requests=15000, units=8, min_duration_s=600.0)
    assert benchmark_requests(server) == 60000  # 100 qps x 600 s: the dataset's samples are reused
    assert sim_sizes(server, 64, 8, rules)[0] == 7500
    assert benchmark_requests(dataclasses.replace(server, qps=10.0)) == 15000  # the dataset once is longer
    assert benchmark_requests(dataclasses.replace(server, scenario="offline", qps=None)) == 15000
    assert benchmark_requests(dataclasses.replace(server, min_duration_s=0.0)) == 15000


def test_mlperf_runs_have_the_ten_minute_minimum() -> None:
    rules = load_rules()
    assert dataset(rules, "MLP-v4.1", "llama-2-70b").min_duration_s == 600.0
    assert dataset(rules, "TRT-SERVE", "llama-3.1-8b", (467, 16)).min_duration_s == 0.0


def test_spread_runs_are_simulated_in_full() -> None:
    rules = load_rules()
    spread = LengthSpread(0.8, 1024, 1024)
    offline = _setup(scenario="offline", requests=2000, units=1, spread=spread)
    assert sim_sizes(offline, 64, 1, rules) == (2000, 2000)
    assert sim_sizes(dataclasses.replace(offline, spread=None), 64, 1, rules)[1] == 2 * 64


def test_dataset_rule_matches_published_lengths() -> None:
    rules = load_rules()
    spread_set = dataset(rules, "TRT-SERVE", "llama-3.1-8b", (202, 214))
    fixed_set = dataset(rules, "TRT-SERVE", "llama-3.1-8b", (467, 256))
    assert spread_set is not None and spread_set.spread is not None and spread_set.lengths == (202, 214)
    assert fixed_set is not None and fixed_set.spread is None and fixed_set.requests == 500


def test_workload_lengths_spread_around_the_published_means() -> None:
    setup = _setup(scenario="offline", input_len=202, output_len=214, spread=LengthSpread(0.8, 1024, 1024))
    work = workload(setup, 500, 1)
    for got, mean in ((work.input_tokens, 202), (work.output_tokens, 214)):
        assert abs(got.mean() - mean) < 1.0 and got.max() <= 1024 and got.min() >= 1
        assert 0.5 < got.std() / got.mean() < 1.0
    again = workload(setup, 500, 1)
    assert (again.output_tokens == work.output_tokens).all()
    fixed = workload(dataclasses.replace(setup, spread=None), 500, 1)
    assert set(fixed.output_tokens.tolist()) == {214}


def _run_rows(throughput: float) -> str:
    values = {"ttft_mean": (50.0, "ms"), "tpot_p50": (10.0, "ms"), "output_throughput": (throughput, "tok/s")}
    return csv_text(*[NEURON_RUN.format(id=f"r-{m}", metric=m, value=v, unit=u, notes="")
                      for m, (v, u) in values.items()])


def test_inconsistent_published_throughput_is_diagnosed_not_predicted() -> None:
    # batch 1, 128 output tokens: TTFT 50 ms + 127 x 10 ms = 1.32 s -> the run's latencies imply 97 tok/s
    consistent, problems = parse_rows(_run_rows(97.0))
    contradicted, _ = parse_rows(_run_rows(40.0))
    assert not problems and len(contradicted) == 3
    a = validate_rows(consistent, fake_catalog(), FakeBackend())
    b = validate_rows(contradicted, fake_catalog(), FakeBackend())
    assert [r.predicted for r in a] == [r.predicted for r in b]
    assert not any("inconsistent" in r.diagnosis for r in a)
    assert [("inconsistent measurements" in r.diagnosis) for r in b] == [False, False, True]
    assert "0.41x the 96.97 tok/s" in b[2].diagnosis


def test_backend_cache_keeps_the_most_recently_used_entries() -> None:
    built: list[str] = []

    def build(key: str) -> str:
        built.append(key)
        return key.upper()

    cache: Lru[str, str] = Lru(2)
    assert [cache.get_or_build(k, lambda k=k: build(k)) for k in ("a", "b", "a", "c", "a", "b")] == \
        ["A", "B", "A", "C", "A", "B"]
    assert built == ["a", "b", "c", "b"]  # "b" was the least recently used when "c" came in
    assert list(cache) == ["a", "b"]
