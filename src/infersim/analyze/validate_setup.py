"""Row configuration -> an infersim run (`Setup`), by the stated rules in `validate_benchmarks.yaml`.

Reads only a `RowConfig` (configuration columns), never the measured value, id or notes. A row whose chip,
model or engine profile is not in the catalog becomes `Unsupported` with the reason.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infersim.analyze.validate_rows import RowConfig
from infersim.catalog import Catalog

RULES_FILE = Path(__file__).with_name("validate_benchmarks.yaml")


@dataclass(frozen=True)
class LengthSpread:
    """Lengths of a real-text request set around its published means: log-normal with coefficient of variation
    `cv`, clipped to the set's length limits, rescaled so that the set's means are the published means."""

    cv: float
    max_input_len: int
    max_output_len: int


@dataclass(frozen=True)
class Dataset:
    dataset: str
    input_len: int | None
    output_len: int | None
    requests: int
    beams: int
    citation: str
    lengths: tuple[int, int] | None = None  # the (input, output) means this definition applies to; None = any
    spread: LengthSpread | None = None  # None: every request has exactly the published lengths
    min_duration_s: float = 0.0  # a server run lasts at least this long (0: the dataset's requests once)


# Scenarios the step model predicts in closed form; every other scenario goes to the serving simulator.
CLOSED_FORM_SCENARIOS: tuple[str, ...] = ("fixed-batch", "single-stream")


@dataclass(frozen=True)
class Rules:
    profiles: tuple[tuple[str, str, str], ...]  # (framework, source pattern, profile)
    ttft_includes_first_decode: frozenset[str]
    bench_tuned_profiles: frozenset[str]
    static_compiled_profiles: frozenset[str]
    min_bucket_tokens: int
    min_concurrent_requests: int
    exact_sim_requests: int
    max_sim_requests: int
    min_sim_requests: int
    sim_generations: int
    server_sim_requests: int
    datasets: tuple[tuple[tuple[str, ...], str, Dataset], ...]  # (sources, model pattern, definition)


@dataclass(frozen=True)
class Setup:
    """One benchmark run as infersim sees it. `tp`/`pp` count chips (GPU/TPU) or NeuronCores (Neuron)."""

    chip: str
    family: str
    profile: str
    model: str
    weights: str
    kv: str
    tp: int | None  # None: chosen by the smallest-fitting-TP rule at prediction time
    pp: int
    units: int  # chips (GPU/TPU) or NeuronCores (Neuron) available to the run
    scenario: str
    batch: int | None
    qps: float | None
    input_len: int
    output_len: int
    requests: int  # requests of the public benchmark definition
    beams: int
    compiled_len: int | None  # static-batch compiled sequence length (Neuron), else None
    ttft_includes_first_decode: bool
    assumptions: tuple[str, ...]
    bench_tuned: bool = False  # batch and token limits set by the benchmark tool from the run's lengths
    spread: LengthSpread | None = None  # request lengths spread around input_len / output_len (their means)
    min_duration_s: float = 0.0  # a server run lasts at least this long (benchmark rules)

    def replicas(self, tp: int) -> int:
        return max(1, self.units // (tp * self.pp))


@dataclass(frozen=True)
class Unsupported:
    reason: str


def _dataset(d: Mapping[str, Any]) -> tuple[tuple[str, ...], str, Dataset]:
    lengths = (int(d["lengths"][0]), int(d["lengths"][1])) if "lengths" in d else None
    spread = d.get("spread")
    ds = Dataset(d["dataset"], d.get("input_len"), d.get("output_len"), int(d["requests"]), int(d["beams"]),
                 d["citation"], lengths,
                 LengthSpread(float(spread["cv"]), int(spread["max_input_len"]), int(spread["max_output_len"]))
                 if spread else None, float(d.get("min_duration_s", 0.0)))
    return tuple(d["sources"]), str(d["model"]), ds


@functools.lru_cache(maxsize=4)
def load_rules(path: Path = RULES_FILE) -> Rules:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return Rules(
        profiles=tuple((p["framework"], p["source"], p["profile"]) for p in raw["profiles"]),
        ttft_includes_first_decode=frozenset(raw["ttft_includes_first_decode"]),
        bench_tuned_profiles=frozenset(raw["bench_tuned_profiles"]),
        static_compiled_profiles=frozenset(raw["static_compiled_profiles"]),
        min_bucket_tokens=int(raw["min_bucket_tokens"]), min_concurrent_requests=int(raw["min_concurrent_requests"]),
        max_sim_requests=int(raw["max_sim_requests"]), min_sim_requests=int(raw["min_sim_requests"]),
        sim_generations=int(raw["sim_generations"]), server_sim_requests=int(raw["server_sim_requests"]),
        exact_sim_requests=int(raw["exact_sim_requests"]),
        datasets=tuple(_dataset(d) for d in raw["datasets"]),
    )


def engine_profile(rules: Rules, framework: str, source: str) -> str | None:
    return next((p for fw, pat, p in rules.profiles if fw == framework and fnmatch.fnmatchcase(source, pat)), None)


def dataset(rules: Rules, source: str, model: str, lengths: tuple[int | None, int | None] = (None, None)
            ) -> Dataset | None:
    """The first benchmark definition for the source and model (and, where it names them, the row's lengths)."""
    return next((d for sources, pat, d in rules.datasets if source in sources and fnmatch.fnmatchcase(model, pat)
                 and d.lengths in (None, lengths)), None)


def next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _lengths(cfg: RowConfig, ds: Dataset | None) -> tuple[int, int, tuple[str, ...]] | Unsupported:
    notes = []
    inp, out = cfg.input_len, cfg.output_len
    if inp is None and ds is not None and ds.input_len is not None:
        inp = ds.input_len
        notes.append(f"input_len {inp} assumed ({cfg.source} benchmark definition)")
    if out is None and ds is not None and ds.output_len is not None:
        out = ds.output_len
        notes.append(f"output_len {out} assumed ({cfg.source} benchmark definition)")
    if ds is not None and ds.spread is not None:
        notes.append(f"lengths spread around the means (log-normal, cv {ds.spread.cv:g}; {ds.dataset})")
    if inp is None or out is None or out < 1:
        return Unsupported(f"no input/output length published and no benchmark definition for "
                           f"({cfg.source}, {cfg.model})")
    return inp, out, tuple(notes)


def _catalog_check(cfg: RowConfig, cat: Catalog, profile: str | None) -> Unsupported | None:
    if cfg.hardware not in cat.chips:
        return Unsupported(f'chip "{cfg.hardware}" not in the catalog')
    if cfg.model not in cat.model_files:
        return Unsupported(f'model "{cfg.model}" not in the catalog')
    if profile is None:
        return Unsupported(f'no engine profile rule for framework "{cfg.framework}" with source "{cfg.source}"')
    if profile not in cat.engine_files:
        return Unsupported(f'engine profile "{profile}" not in the catalog')
    return None


def configure(cfg: RowConfig, cat: Catalog, rules: Rules | None = None) -> Setup | Unsupported:
    """The run a row describes, or why infersim cannot run it."""
    rules = rules or load_rules()
    profile = engine_profile(rules, cfg.framework, cfg.source)
    bad = _catalog_check(cfg, cat, profile)
    if bad is not None:
        return bad
    assert profile is not None
    ds = dataset(rules, cfg.source, cfg.model, (cfg.input_len, cfg.output_len))
    lengths = _lengths(cfg, ds)
    if isinstance(lengths, Unsupported):
        return lengths
    inp, out, notes = lengths
    chip = cat.chips[cfg.hardware]
    units = cfg.n_chips * (chip.cores if chip.family == "neuron" else 1)
    compiled = next_pow2(inp + out) if profile in rules.static_compiled_profiles else None
    if cfg.tp is None:
        notes = (*notes, "tp not published: smallest fitting power-of-two TP, data-parallel replicas on the rest")
    return Setup(chip=cfg.hardware, family=chip.family, profile=profile, model=cfg.model, weights=cfg.weight_dtype,
                 kv=cfg.kv_dtype, tp=cfg.tp, pp=cfg.pp, units=units, scenario=cfg.scenario, batch=cfg.batch,
                 qps=cfg.qps, input_len=inp, output_len=out, requests=ds.requests if ds else 1000,
                 beams=ds.beams if ds else 1, compiled_len=compiled,
                 ttft_includes_first_decode=profile in rules.ttft_includes_first_decode, assumptions=notes,
                 bench_tuned=profile in rules.bench_tuned_profiles, spread=ds.spread if ds else None,
                 min_duration_s=ds.min_duration_s if ds else 0.0)
