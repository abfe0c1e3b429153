"""Engine profiles (serving stacks, versioned) from `data/engines/<name>.yaml`, merged with calibrated
efficiencies from `data/calibration/<name>.yaml` when such a file exists.

Engine file: policy fields of `EngineProfile`, `efficiency: {<generation or "*">: {<Efficiency field>: value}}`
and `provenance: {<generation>: "where the defaults come from"}`; `extends: <profile>` takes every field of that
profile's file (in the same folder) that the file does not set itself, so a newer version of a stack states only
what changed.
Calibration file (written by the fit under `calibration/`): `efficiency: {<generation>: {field: value}}` and
`provenance: {<generation>: "fitted on ... rows of truth_dev.csv"}`; calibrated fields override the defaults
of the same generation (or the "*" defaults when the generation has none).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from infersim.catalog import Catalog
from infersim.catalog.loader import parse, read_yaml
from infersim.errors import InputError, unknown_name
from infersim.specs.engine import EFFICIENCY_FIELDS, Efficiency, EngineProfile

EffIn = dict[str, float]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EngineFile(_Strict):
    name: str
    framework: str
    version: str
    families: list[str]
    batching: str = Field(pattern="^(continuous|static)$")
    max_batch: int = Field(ge=1)
    max_tokens_per_step: int = Field(ge=1)
    kv_block_tokens: int = Field(ge=0)
    kv_memory_fraction: float = Field(gt=0, le=1)
    kv_memory_basis: str = Field(default="free", pattern="^(free|total)$")
    buckets: list[int] = []
    kv_admission: str = Field(default="grow", pattern="^(grow|reserve)$")
    prefill_per_sequence: bool = False
    rope_in_attention: bool = False
    tp_degrees: dict[str, list[int]] = {}
    lnc: dict[str, int] = {}
    efficiency: dict[str, EffIn]
    provenance: dict[str, str] = {}
    notes: str = ""


class CalibrationFile(_Strict):
    efficiency: dict[str, EffIn]
    provenance: dict[str, str] = {}


def _efficiency(path: Path, gen: str, values: EffIn, base: Efficiency) -> Efficiency:
    bad = sorted(set(values) - set(EFFICIENCY_FIELDS))
    if bad:
        raise InputError(f'{path}: field "efficiency.{gen}.{bad[0]}" is not an Efficiency field; allowed: '
                         f'{", ".join(EFFICIENCY_FIELDS)}')
    neg = [k for k, v in values.items() if v < 0]
    if neg:
        raise InputError(f'{path}: field "efficiency.{gen}.{neg[0]}" must be non-negative')
    return base.scaled(**values)


def _calibration_path(engine_file: Path) -> Path:
    return engine_file.parent.parent / "calibration" / engine_file.name


def _merge(path: Path, eff: dict[str, Efficiency], prov: dict[str, str]) -> None:
    """Calibrated entries over the engine file's: a generation or "*" entry over the same key, a chip entry over
    "*" (the loader does not know a chip's generation, so a fit lists every field that differs from "*")."""
    cal: CalibrationFile = parse(CalibrationFile, path, read_yaml(path))
    for gen, values in cal.efficiency.items():
        eff[gen] = _efficiency(path, gen, values, eff.get(gen) or eff.get("*") or Efficiency())
        prov[gen] = f"calibrated: {cal.provenance.get(gen, str(path))}"


def _engine_data(path: Path, chain: tuple[Path, ...] = ()) -> Any:
    """The mapping of an engine file, over that of the profile it `extends` (top-level keys of the file win)."""
    data = read_yaml(path)
    if not isinstance(data, dict) or "extends" not in data:
        return data
    base = data["extends"]
    siblings = sorted(q.stem for q in path.parent.glob("*.yaml") if q != path)
    if not isinstance(base, str) or base not in siblings:
        raise InputError(f'{path}: field "extends" must name another engine file in {path.parent}; allowed: '
                         f'{", ".join(siblings)}')
    parent = path.parent / f"{base}.yaml"
    if parent in chain:
        raise InputError(f'{path}: field "extends" loops back to {parent.name}; a profile cannot extend itself')
    return {**_engine_data(parent, (*chain, path)), **{k: v for k, v in data.items() if k != "extends"}}


def engine_from_file(path: Path) -> EngineProfile:
    """The profile in `path` (re-read when an engine file of its folder or its calibration file changes)."""
    cal = _calibration_path(path)
    folder = max(q.stat().st_mtime_ns for q in path.parent.glob("*.yaml"))
    return _engine_cached(path, folder, cal.stat().st_mtime_ns if cal.exists() else 0)


@functools.lru_cache(maxsize=64)
def _engine_cached(path: Path, _mtime: int, _cal_mtime: int) -> EngineProfile:
    f: EngineFile = parse(EngineFile, path, _engine_data(path))
    default = _efficiency(path, "*", f.efficiency.get("*", {}), Efficiency())
    eff = {g: (default if g == "*" else _efficiency(path, g, v, default)) for g, v in f.efficiency.items()}
    prov = dict(f.provenance)
    if _calibration_path(path).exists():
        _merge(_calibration_path(path), eff, prov)
    return EngineProfile(name=f.name, framework=f.framework, version=f.version, families=tuple(f.families),
                         batching=f.batching, max_batch=f.max_batch, max_tokens_per_step=f.max_tokens_per_step,
                         kv_block_tokens=f.kv_block_tokens, kv_memory_fraction=f.kv_memory_fraction,
                         kv_memory_basis=f.kv_memory_basis,
                         buckets=tuple(f.buckets), kv_admission=f.kv_admission,
                         prefill_per_sequence=f.prefill_per_sequence,
                         rope_in_attention=f.rope_in_attention, efficiency=eff, provenance=prov,
                         tp_degrees={k: tuple(v) for k, v in f.tp_degrees.items()}, lnc=dict(f.lnc))


def load_engine(cat: Catalog, name: str) -> EngineProfile:
    """The engine profile `name` of the catalog, calibrated overrides merged."""
    if name not in cat.engine_files:
        raise unknown_name("engine profile", name, cat.engine_files)
    return engine_from_file(cat.engine_files[name])


