"""Fallbacks for chips without a fit: weighted by how alike the fitted chips of their generation are."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import yaml

from infersim.analyze.validate_calibrate import PARAMS, Group, calibration_doc, defaults, kin_weights
from infersim.analyze.validate_fit import FitResult, geometric_default
from infersim.catalog import load_catalog
from infersim.catalog.engines import engine_from_file
from infersim.specs.engine import Efficiency, EngineProfile

CHIPS = load_catalog().chips


@dataclasses.dataclass(frozen=True)
class BaseOnly:
    """The one backend call `defaults` makes: the uncalibrated efficiency a fallback starts from (that of
    `engine` when given, as the real backend's)."""

    engine: EngineProfile | None = None

    def base_efficiency(self, profile: str, key: str) -> Efficiency:
        if self.engine is None:
            return Efficiency(attention=0.33)
        chip = CHIPS.get(key)
        return self.engine.eff(chip.generation if chip else key, key)


def _fit(profile: str, chip: str, hbm: float) -> FitResult:
    eff = Efficiency(hbm=hbm, matmul=0.5, kv_read=0.7, op_overhead_s=1e-6, step_overhead_s=1e-4, attention=0.33)
    return FitResult((profile, chip), eff, PARAMS["gpu"], ("r",), 0.2, 0.1, 9)


def _groups(fits: dict) -> dict:
    return {k: Group(k, CHIPS[k[1]].family, CHIPS[k[1]].generation, (), ()) for k in fits}


def test_kin_weights_lean_on_the_most_alike_chip() -> None:
    w = kin_weights(CHIPS["h200"], {c: CHIPS[c] for c in ("h100-sxm", "h100-pcie")})
    assert sum(w.values()) == pytest.approx(1.0)
    assert w["h100-sxm"] > 0.8 > 0.2 > w["h100-pcie"]  # same 700 W SXM part, HBM 3.35 vs 2.0 TB/s


def test_chips_with_identical_figures_share_all_the_weight() -> None:
    w = kin_weights(CHIPS["trn1n"], {c: CHIPS[c] for c in ("inf2", "trn1", "trn2")})
    assert w == {"inf2": 0.5, "trn1": 0.5}


def test_equal_weights_give_the_plain_geometric_mean() -> None:
    effs = {"a": Efficiency(hbm=0.4), "b": Efficiency(hbm=0.9)}
    params = PARAMS["gpu"][:1]
    plain = geometric_default(effs, params, Efficiency())
    assert geometric_default(effs, params, Efficiency(), {"a": 0.5, "b": 0.5}).hbm == pytest.approx(plain.hbm)
    assert geometric_default(effs, params, Efficiency(), {"a": 0.9, "b": 0.1}).hbm < plain.hbm


def test_unfitted_chips_of_a_fitted_generation_take_their_kin() -> None:
    fits = {k: _fit(*k, hbm) for k, hbm in ((("p", "h100-sxm"), 0.8), (("p", "h100-pcie"), 0.4))}
    out = defaults(fits, _groups(fits), BaseOnly(), CHIPS)
    assert out[("p", "hopper")].hbm == pytest.approx((0.8 * 0.4) ** 0.5, rel=1e-3)
    assert out[("p", "hopper")].hbm < out[("p", "h200")].hbm < 0.8  # leans on the SXM part
    assert out[("p", "h200")].attention == 0.33  # unfitted fields come from the chip's uncalibrated base
    assert ("p", "b200") not in out and ("p", "l4") not in out  # no fitted blackwell / ada chip: "*" serves
    assert ("p", "h100-sxm") not in out  # a fitted chip keeps its own fit


def test_a_kin_fallback_round_trips_through_the_engine_loader(tmp_path: Path) -> None:
    src = load_catalog().engine_files["trtllm-0.17"]
    (tmp_path / "engines").mkdir()
    (tmp_path / "calibration").mkdir()
    engine = Path(shutil.copy(src, tmp_path / "engines" / src.name))
    fits = {k: _fit(*k, hbm) for k, hbm in ((("trtllm-0.17", "h100-sxm"), 0.8), (("trtllm-0.17", "h100-pcie"), 0.4))}
    uncalibrated = engine_from_file(engine)
    fallbacks = defaults(fits, _groups(fits), BaseOnly(uncalibrated), CHIPS)
    mine = {key: e for (_, key), e in fallbacks.items()}
    doc = calibration_doc("trtllm-0.17", fits, mine, "calibration/fit.py", CHIPS)
    (tmp_path / "calibration" / src.name).write_text(yaml.safe_dump(doc, sort_keys=True))
    profile = engine_from_file(engine)
    assert profile.eff("hopper", "h200").hbm == pytest.approx(mine["h200"].hbm, rel=1e-3)
    assert profile.eff("hopper", "h200").attention == uncalibrated.eff("hopper").attention
    assert profile.provenance_of("hopper", "h200").startswith(
        "calibrated: no fit of its own: geometric mean of the fitted hopper chips weighted h100-sxm 0.91")
