"""`infersim validate FILE.csv`: predict every row of a measurements table and report the error."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from infersim.analyze.validate import filter_rows, validate_rows
from infersim.analyze.validate_backend import real_backend
from infersim.analyze.validate_report import SUMMARY_COLS, pct, repeats_section, report_markdown, scatter_png
from infersim.analyze.validate_rows import TruthRow, read_rows
from infersim.analyze.validate_stats import RowResult, repeated_configurations, summarize, worst
from infersim.cli._common import CatalogOpt, JsonOpt, catalog, console, print_json, table
from infersim.errors import InputError

FileArg = typer.Argument(..., help="CSV of measured results in the data/truth/SCHEMA.md schema.")
OutOpt = typer.Option(None, "--out", help="Write a Markdown report (and a scatter PNG beside it).")
SourceOpt = typer.Option(None, "--source", help="Only rows of this source.")
HardwareOpt = typer.Option(None, "--hardware", help="Only rows of this chip.")


def _select(rows: list[TruthRow], source: str | None, hardware: str | None) -> list[TruthRow]:
    chosen = filter_rows(rows, source, hardware)
    if not chosen:
        sources = sorted({r.config.source for r in rows})
        chips = sorted({r.config.hardware for r in rows})
        raise InputError(f"no rows match --source {source or '*'} --hardware {hardware or '*'}; the file has "
                         f"sources {', '.join(sources) or '(none)'} and hardware {', '.join(chips) or '(none)'}")
    return chosen


def _row_cells(name: str, b: dict[str, Any]) -> list[str]:
    lat, thr = b["latency"], b["throughput"]
    cov = None if b["coverage"] is None else 100 * b["coverage"]
    return [name, str(b["rows"]), str(b["covered"]), pct(cov), f'{pct(lat["mape"])} ({lat["n"]})',
            pct(lat["median_ape"]), pct(lat["p90_ape"]), f'{pct(thr["mape"])} ({thr["n"]})',
            pct(thr["median_ape"]), pct(thr["p90_ape"])]


def _print_tables(summary: dict[str, Any], results: Sequence[RowResult]) -> None:
    out = console()
    rows = [_row_cells("all rows", summary)]
    for key in ("by_hardware", "by_source", "by_scenario"):
        rows += [_row_cells(f"{key[3:]}: {name}", b) for name, b in summary[key].items()]
    step = summary["step_layer"]
    rows.append(_row_cells("step-cost layer rows (fixed-batch, single-stream)", step))
    rows += [_row_cells(f"  step layer, hardware: {name}", b) for name, b in step["by_hardware"].items()]
    out.print(table("infersim validate: predicted vs measured", ["set", *SUMMARY_COLS], rows))
    bad = [[r.id[:70], r.metric, f"{r.measured:.4g}", f"{r.predicted:.4g}", pct(r.ape)] for r in worst(results)]
    out.print(table("worst rows", ["row", "metric", "measured", "predicted", "APE"], bad))


def _write_report(out: Path, command: str, summary: dict[str, Any], results: list[RowResult],
                  rows: Sequence[TruthRow]) -> None:
    plot = out.with_name(f"{out.stem}_scatter.png")
    scatter_png(results, plot)
    text = report_markdown("infersim validation report", command, summary, results, plot.name,
                           [*repeats_section(repeated_configurations(rows)), "",
                            "See [calibration.md](calibration.md) for how the engine-profile efficiencies were "
                            "fitted, and the leave-one-source-out / leave-one-hardware-out cross-validation."])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")


def register(app: typer.Typer) -> None:
    @app.command("validate")
    def validate(
        file: Path = FileArg,
        json_out: bool = JsonOpt,
        out: Path = OutOpt,
        source: str = SourceOpt,
        hardware: str = HardwareOpt,
        extra: list[str] = CatalogOpt,
    ) -> None:
        """Predict every row of a measurements table and report coverage and error (MAPE, median, p90)."""
        rows, problems = read_rows(file)
        for p in problems:
            print(f"warning: {file}: {p} (row skipped)", file=sys.stderr)
        rows = _select(rows, source, hardware)
        cat = catalog(extra)
        results = validate_rows(rows, cat, real_backend(cat), workers=min(2, os.cpu_count() or 1))
        summary = summarize(results)
        summary["malformed_rows"] = [str(p) for p in problems]
        if out is not None:
            flags = "".join(f" --{k} {v}" for k, v in (("source", source), ("hardware", hardware)) if v)
            _write_report(out, f"infersim validate {file}{flags} --out {out}", summary, results, rows)
        if json_out:
            return print_json({"summary": summary, "rows": [r.as_dict() for r in results]})
        _print_tables(summary, results)
        return None
