"""The `compare` report: one self-contained HTML file (plotly.js embedded, no network) that renders offline.

Sections: the ranked table; cost vs latency Pareto chart; goodput-latency curves per instance; time and energy
of one decode step by op class and by engine; the memory plan per chip; the assumptions and the status of every
figure used. Output is deterministic (sorted JSON, no timestamps). After every `Plotly.newPlot` promise
resolves, the page sets `data-charts-drawn` on <body> (browser tests look for it).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from infersim.analyze.compare import Comparison, Row
from infersim.specs.provenance import STATUSES

MARK = {"official": "", "third-party": "³", "derived": "ᵈ", "projected": "ᴾ"}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1500px}
h1{font-size:1.5em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:0.85em;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}.projected{background:#fff6e0}.miss{color:#888}
td.why{text-align:left;min-width:300px;max-width:420px;font-size:0.85em}
.chart{width:100%;height:460px}.note{color:#555;font-size:0.9em}code{background:#f4f4f4;padding:0 3px}
"""

SCRIPT = """
(function(){
  var figs = JSON.parse(document.getElementById('infersim-figures').textContent);
  var done = figs.map(function(f){
    return Plotly.newPlot(f.id, f.data, f.layout, {displaylogo: false, responsive: true});
  });
  Promise.all(done).then(function(){
    document.body.setAttribute('data-charts-drawn', String(figs.length));
    document.getElementById('charts-status').textContent = 'charts drawn: ' + figs.length;
  });
})();
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _num(x: float | None, fmt: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return format(x, fmt)


def _name(r: Row) -> str:
    return r.instance.name + MARK[r.status]


# ----- tables -----

def _table(head: Sequence[str], rows: Iterable[Sequence[Any]], classes: Sequence[str] = ()) -> str:
    why = head.index("why") if "why" in head else -1
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if i < len(classes) and classes[i] else ""
        cells = "".join(f'<td class="why">{c}</td>' if j == why else f"<td>{c}</td>" for j, c in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


RANK_HEAD = ("#", "instance", "chips", "configuration", "goodput req/s", "output tok/s", "TTFT p99 ms",
             "TPOT p99 ms", "$/h", "$ / M output tok", "tok / J", "binding resource", "why", "status")


def numbers_text(numbers: dict[str, float]) -> str:
    """'decode batch 8, step 29.8 ms; time: compute 85%, overhead 11%; HBM 130 of 820 GB/s; KV 340k tokens'."""
    n = numbers
    shares = sorted(((k.removeprefix("share."), v) for k, v in n.items() if k.startswith("share.")),
                    key=lambda kv: -kv[1])
    parts = []
    if "batch" in n:
        step = f", step {n['step_ms']:.3g} ms" if "step_ms" in n else ""
        parts.append(f"mean decode batch {n['batch']:.0f}{step}")
    if shares:
        parts.append("time: " + ", ".join(f"{k} {v:.0%}" for k, v in shares if v >= 0.005))
    if "hbm_GB_per_s" in n:
        peak = f" of {n['hbm_peak_GB_per_s']:,.0f}" if "hbm_peak_GB_per_s" in n else ""
        parts.append(f"HBM {n['hbm_GB_per_s']:,.0f}{peak} GB/s")
    if "kv_capacity_tokens" in n:
        use = f", {n['kv_in_use']:.0%} in use" if "kv_in_use" in n else ""
        parts.append(f"KV holds {n['kv_capacity_tokens']:,.0f} tokens{use}")
    known = {"batch", "step_ms", "hbm_GB_per_s", "hbm_peak_GB_per_s", "kv_capacity_tokens", "kv_in_use"}
    parts += [f"{k} {_num(v)}" for k, v in sorted(n.items()) if k not in known and not k.startswith("share.")]
    return "; ".join(parts)


def binding_text(r: Row) -> str:
    b = r.outcome.binding
    if b is None:
        return r.outcome.skipped or "-"
    return numbers_text(b.numbers) + (f"; {b.note}" if b.note else "")


def rank_cells(i: int, r: Row) -> list[str]:
    p, cfg = r.shown, r.outcome.best or r.outcome.closest
    return [str(i) if r.met else "miss", _e(_name(r)), str(r.instance.chips), _e(cfg.label() if cfg else "-"),
            _num(p.goodput_rps if p else None), _num(p.output_tok_s if p else None, ",.0f"),
            _num(p.ttft_p99_s * 1e3 if p else None), _num(p.tpot_p99_s * 1e3 if p else None),
            _num(r.usd_per_h, ".4g"), _num(r.usd_per_mtok), _num(r.tokens_per_j), _e(r.outcome.binding.resource
            if r.outcome.binding else "-"), _e(binding_text(r)), r.status]


def ranked_table(c: Comparison) -> str:
    cls = [("projected " if r.projected else "") + ("" if r.met else "miss") for r in c.rows]
    return _table(RANK_HEAD, [rank_cells(i + 1, r) for i, r in enumerate(c.rows)], cls)


def assumptions(c: Comparison) -> str:
    s = c.space
    items = [("model", c.model), ("workload", c.workload), ("SLOs", f"TTFT p99 <= {c.slo.ttft_p99_s * 1e3:g} ms, "
             f"TPOT p99 <= {c.slo.tpot_p99_s * 1e3:g} ms"), ("engine profile", c.engine), ("pricing", c.pricing),
             ("seed", c.seed), ("dtype policy", s.dtype_policy), ("requests per simulated load point", s.requests),
             ("batch caps searched", ", ".join(map(str, s.batch_caps)) + " and the engine default"),
             ("goodput", "highest Poisson arrival rate whose simulated TTFT p99 and TPOT p99 meet the SLOs "
              f"(bisection, relative tolerance {s.rel_tol:g})"),
             ("$ / M output tokens", "instance $/h / (output tokens/s x 3600) x 1e6 at that load"),
             ("output tokens/s", "steady state: the arrival rate x mean output tokens (a load that meets the SLOs "
              "is sustainable); goodput = rate x the share of requests meeting every SLO"),
             ("tokens / J", "output tokens / energy of all chips of the instance over the whole simulated run, idle "
              "power included; the run ends with a drain at falling load, so this is slightly pessimistic"),
             ("replicas", "each replica of an instance serves an equal share of the Poisson stream (a random split; "
              "a least-outstanding router does a little better), so instance figures are one replica's x replicas"),
             ("step costs in the search", "steps holding prefill work are costed on token counts rounded up by at "
              "most 1/16 (latencies slightly pessimistic); pure decode steps exactly"),
             ("binding resource", "the largest share of a decode step at the mean decode batch of the chosen load; "
              "memory capacity when that batch fills 80% or more of the KV cache")]
    return _table(("assumption", "value"), [(_e(k), _e(v)) for k, v in items])


def provenance_table(c: Comparison) -> str:
    rows, seen = [], set()
    for r in c.rows:
        for owner, prov in ((r.chip.name, r.chip.provenance), (r.instance.name, r.instance.provenance)):
            if owner in seen:
                continue
            seen.add(owner)
            rows += [(_e(owner), _e(k), _num(v.value, ".6g"), _e(v.status) + MARK[v.status], _e(v.source),
                      _e(v.note)) for k, v in sorted(prov.items())]
    return _table(("chip / instance", "figure", "value", "status", "source", "note"), rows)


def engine_table(c: Comparison) -> str:
    """The efficiencies of each (engine profile, chip) used, with where they come from."""
    seen: dict[tuple[str, str], list[str]] = {}
    for r in c.rows:
        if r.engine is None or (r.engine.name, r.chip.name) in seen:
            continue
        eff = r.engine.eff(r.chip.generation, r.chip.name)
        prov = r.engine.provenance_of(r.chip.generation, r.chip.name)
        seen[(r.engine.name, r.chip.name)] = [
            _e(r.engine.name), _e(f"{r.chip.name} ({r.chip.generation})"),
            _e(", ".join(f"{k}={_num(v, '.3g')}" for k, v in sorted(vars(eff).items()))), _e(prov)]
    return _table(("engine profile", "chip (generation)", "efficiencies", "provenance"), list(seen.values()))


# ----- charts (plain plotly figure dicts) -----

def _layout(title: str, x: str, y: str, **extra: Any) -> dict[str, Any]:
    return {"title": {"text": title}, "xaxis": {"title": {"text": x}}, "yaxis": {"title": {"text": y}},
            "margin": {"t": 50, "l": 70, "r": 20, "b": 60}, "legend": {"font": {"size": 10}}, **extra}


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated in (latency, cost), both lower-is-better, sorted by latency."""
    order = sorted(range(len(points)), key=lambda i: points[i])
    front, best = [], math.inf
    for i in order:
        if points[i][1] < best:
            front.append(i)
            best = points[i][1]
    return front


def pareto_figure(c: Comparison) -> dict[str, Any]:
    rows = [r for r in c.met if math.isfinite(r.usd_per_mtok)]
    pts = [(r.shown.tpot_p99_s * 1e3, r.usd_per_mtok) for r in rows]
    traces = [{"type": "scatter", "mode": "markers", "name": _name(r), "x": [x], "y": [y],
               "text": [f"{_name(r)}: {r.outcome.best.label() if r.outcome.best else ''}"], "hoverinfo": "text+x+y",
               "marker": {"size": 11, "color": PALETTE[i % len(PALETTE)],
                          "symbol": "diamond-open" if r.projected else "circle"}}
              for i, (r, (x, y)) in enumerate(zip(rows, pts, strict=True))]
    front = pareto_front(pts)
    traces.append({"type": "scatter", "mode": "lines", "name": "Pareto front", "x": [pts[i][0] for i in front],
                   "y": [pts[i][1] for i in front], "line": {"dash": "dot", "color": "#444"}})
    return {"id": "chart-pareto", "data": traces,
            "layout": _layout("Cost vs latency at max goodput (open diamonds: projected)", "TPOT p99 (ms)",
                              "$ per million output tokens", yaxis={"type": "log", "title": {"text": "$ / M tok"}})}


def curve_figure(c: Comparison, metric: str) -> dict[str, Any]:
    label = {"ttft_p99_s": "TTFT p99 (ms)", "tpot_p99_s": "TPOT p99 (ms)"}[metric]
    traces = []
    for i, r in enumerate(x for x in c.rows if x.outcome.curve):
        pts = r.outcome.curve
        traces.append({"type": "scatter", "mode": "lines+markers", "name": _name(r),
                       "x": [p.rate_rps for p in pts], "y": [min(getattr(p, metric), 1e3) * 1e3 for p in pts],
                       "line": {"color": PALETTE[i % len(PALETTE)], "dash": "dash" if r.projected else "solid"}})
    slo = c.slo.ttft_p99_s if metric == "ttft_p99_s" else c.slo.tpot_p99_s
    return {"id": f"chart-{metric}", "data": traces,
            "layout": _layout(f"{label.split(' (')[0]} vs load, best configuration of each instance",
                              "arrival rate per instance (req/s, log scale)", label,
                              xaxis={"type": "log", "title": {"text": "arrival rate per instance (req/s)"}},
                              yaxis={"type": "log", "title": {"text": label}},
                              shapes=[{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": slo * 1e3,
                                       "y1": slo * 1e3, "line": {"color": "red", "dash": "dot"}}])}


def _stacked(fig_id: str, title: str, y: str, rows: Sequence[Row], attr: str, scale: float) -> dict[str, Any]:
    names = [_name(r) for r in rows]
    parts = [getattr(r.outcome.binding, attr) if r.outcome.binding else {} for r in rows]
    keys = sorted({k for p in parts for k in p})
    traces = [{"type": "bar", "name": k, "x": names, "y": [p.get(k, 0.0) * scale for p in parts]} for k in keys]
    return {"id": fig_id, "data": traces, "layout": _layout(title, "instance", y, barmode="stack")}


def breakdown_figures(c: Comparison) -> list[dict[str, Any]]:
    rows = [r for r in c.rows if r.outcome.binding]
    step = "one decode step at the mean batch of the chosen load, per replica"
    return [_stacked("chart-time-class", f"Time by op class ({step})", "ms", rows, "time_by_class_s", 1e3),
            _stacked("chart-energy-class", f"Energy by op class ({step})", "J", rows, "energy_by_class_j", 1.0),
            _stacked("chart-time-engine", f"Busy time by engine ({step})", "ms", rows, "time_by_engine_s", 1e3),
            _stacked("chart-memory", "Memory plan per chip (best configuration)", "GB", rows, "memory_bytes",
                     1e-9)]


def figures(c: Comparison) -> list[dict[str, Any]]:
    return [pareto_figure(c), curve_figure(c, "ttft_p99_s"), curve_figure(c, "tpot_p99_s"),
            *breakdown_figures(c)]


# ----- the page -----

def _section(title: str, body: str) -> str:
    return f"<h2>{_e(title)}</h2>\n{body}\n"


def _chart_divs(figs: Sequence[dict[str, Any]]) -> str:
    return "\n".join(f'<div class="chart" id="{f["id"]}"></div>' for f in figs)


def _summary(c: Comparison) -> str:
    if not c.met:
        return ("<p><b>No instance meets these SLOs.</b> The rows below show the closest configuration of each "
                "instance (the load point nearest to meeting both SLOs).</p>")
    top = c.met[0]
    return (f"<p>Cheapest within the SLOs: <b>{_e(_name(top))}</b> ({_e(top.outcome.best.label())}) at "
            f"<b>${_num(top.usd_per_mtok)}</b> per million output tokens, {_num(top.shown.goodput_rps)} req/s per "
            f"instance, bound by <b>{_e(top.outcome.binding.resource if top.outcome.binding else '-')}</b>.</p>")


def render(c: Comparison, plotly_js: str) -> str:
    """The whole page as a string; `plotly_js` is the plotly.js bundle to embed."""
    figs = _clean(figures(c))
    data = json.dumps(figs, sort_keys=True, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    legend = ", ".join(f"{MARK[s] or '(none)'} {s}" for s in STATUSES)
    parts = [f"<h1>infersim compare: {_e(c.model)} on {_e(c.workload)}</h1>", _summary(c),
             f'<p class="note">Status marks: {_e(legend)}. Projected rows (no vendor figure) are shaded.</p>',
             _section("Ranked instances ($ per million output tokens within the SLOs)", ranked_table(c)),
             _section("Cost vs latency", _chart_divs(figs[:1])),
             _section("Goodput-latency curves", _chart_divs(figs[1:3])),
             _section("Where the time and energy go", _chart_divs(figs[3:6])),
             _section("Memory plan per chip", _chart_divs(figs[6:])),
             _section("Assumptions", assumptions(c)),
             _section("Engine profiles: calibrated efficiencies and where they come from", engine_table(c)),
             _section("Every hardware figure used, with its status and source", provenance_table(c)),
             '<p class="note" id="charts-status">charts not drawn (JavaScript disabled?)</p>']
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>infersim compare: {_e(c.model)}</title><style>{CSS}</style>"
            f"<script>{plotly_js}</script></head>\n<body>\n" + "\n".join(parts) +
            f'\n<script type="application/json" id="infersim-figures">{data}</script>\n<script>{SCRIPT}</script>\n'
            "</body></html>\n")


def _clean(obj: Any) -> Any:
    """Replace non-finite floats (an unmet row's $/Mtok) so the figure JSON stays valid."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def plotly_bundle() -> str:
    """plotly.js from the installed plotly package (never a CDN: the report must work offline)."""
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def write_report(c: Comparison, path: str | Path, plotly_js: str | None = None) -> Path:
    """Write the page whole (temp file, then rename), so a failed run leaves nothing half-written."""
    plotly_js = plotly_bundle() if plotly_js is None else plotly_js
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render(c, plotly_js), encoding="utf-8")
    tmp.replace(path)
    return path
