from __future__ import annotations

import pytest
from validate_fakes import NEURON_RUN, FakeBackend, csv_text, fake_catalog

from infersim.analyze.validate import validate_rows
from infersim.analyze.validate_report import repeats_section
from infersim.analyze.validate_rows import parse_rows
from infersim.analyze.validate_stats import repeated_configurations


def _rows(*values: float) -> str:
    return csv_text(*[NEURON_RUN.format(id=f"run-{i}", metric="ttft_mean", value=v, unit="ms", notes=f"date {i}")
                      for i, v in enumerate(values)])


def test_rows_sharing_every_configuration_column_form_a_group_with_its_error_floor() -> None:
    rows, problems = parse_rows(_rows(100.0, 150.0, 100.0))
    assert not problems
    (group,) = repeated_configurations(rows)
    assert group.ids == ("run-0", "run-1", "run-2") and group.values == (100.0, 150.0, 100.0)
    # predicting 100 costs (0 + 50/150 + 0) / 3 = 11.1%; predicting 150 costs (50 + 0 + 50) / 3 = 33.3%
    assert group.floor_ape == pytest.approx(100 / 9)
    assert "11.1%" in repeats_section([group])[-1]


def test_equal_measurements_or_a_single_row_are_no_repeat() -> None:
    assert repeated_configurations(parse_rows(_rows(100.0, 100.0))[0]) == []
    assert repeated_configurations(parse_rows(_rows(100.0))[0]) == []
    assert repeats_section([]) == []


def test_repeated_rows_get_one_prediction_and_a_diagnosis() -> None:
    rows, _ = parse_rows(_rows(100.0, 150.0))
    results = validate_rows(rows, fake_catalog(), FakeBackend())
    assert results[0].predicted == results[1].predicted
    assert all(r.diagnosis.startswith("repeated configuration: 2 rows") for r in results)
