from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from infersim.analyze.validate_calibrate import PARAMS, calibration_doc, record_doc
from infersim.analyze.validate_fit import FitResult
from infersim.catalog import load_catalog
from infersim.catalog.engines import engine_from_file
from infersim.specs.engine import Efficiency


def _fit(chip: str, hbm: float) -> FitResult:
    eff = Efficiency(hbm=hbm, matmul=0.42, kv_read=0.31, collective_latency_s=7.5e-6, step_overhead_s=1.25e-3)
    return FitResult(("neuron-tnx-2.18", chip), eff, PARAMS["neuron"], ("row-a", "row-b"), 0.2, 0.05, 40)


def test_calibration_file_round_trips_through_the_engine_loader(tmp_path: Path) -> None:
    src = load_catalog().engine_files["neuron-tnx-2.18"]
    (tmp_path / "engines").mkdir()
    (tmp_path / "calibration").mkdir()
    engine = Path(shutil.copy(src, tmp_path / "engines" / src.name))
    fits = {("neuron-tnx-2.18", "inf2"): _fit("inf2", 0.777)}
    gen = Efficiency(hbm=0.6, matmul=0.3, kv_read=0.3, collective_latency_s=2e-5, step_overhead_s=2e-3)
    star = Efficiency(hbm=0.5, matmul=0.2, kv_read=0.2, collective_latency_s=1e-5, step_overhead_s=1e-3)
    doc = calibration_doc("neuron-tnx-2.18", fits, {"neuroncore-v2": gen, "*": star}, "calibration/fit.py", {})
    (tmp_path / "calibration" / src.name).write_text(yaml.safe_dump(doc, sort_keys=True))
    profile = engine_from_file(engine)
    got = profile.eff("neuroncore-v2", "inf2")
    assert (got.hbm, got.matmul, got.kv_read) == (0.777, 0.42, 0.31)
    assert got.collective_latency_s == pytest.approx(7.5e-6) and got.step_overhead_s == pytest.approx(1.25e-3)
    assert profile.eff("neuroncore-v2", "trn1").hbm == 0.6  # an unfitted chip takes its generation's fallback
    assert profile.eff("neuroncore-v3", "trn2").hbm == 0.5  # a generation without fitted chips falls back to "*"
    assert profile.provenance_of("neuroncore-v2", "inf2").startswith("calibrated: fitted by calibration/fit.py on 2")


def test_record_lists_rows_and_bounds() -> None:
    rec = record_doc("neuron-tnx-2.18", {("neuron-tnx-2.18", "inf2"): _fit("inf2", 0.7)}, "x.py")
    gen = rec["chips"]["inf2"]
    assert gen["fitted_on"] == ["row-a", "row-b"] and gen["bounds"]["hbm"] == [0.15, 0.95]
    assert (gen["male_before"], gen["male_after"]) == (0.2, 0.05)
