"""The Pareto view of a :class:`~infersave.solver.pareto.ParetoResult`: a picture (PNG, SVG or
HTML) and a compact text chart for the terminal.

The picture is total billed cost against throughput (TPS, log scale) of every configuration that
fits in memory under the price cap, with the Pareto front as a staircase (the cheapest total
cost that reaches each TPS), the SLO as a vertical line, the price cap as the most a
configuration can cost at each TPS (cap $/h x the hours billed at that TPS), and the
recommendation and the Max-Performance baseline labelled.

HTML is the SVG that matplotlib draws, inlined in a minimal self-contained page with the front
as a table below it. plotly would add interactivity (hover on each point), but also a second
plotting dependency of ~15 MB and a 3.5 MB script in every page (or a CDN the page needs at
view time); one renderer keeps the three formats identical and the page readable offline.
"""

from __future__ import annotations

import html
import io
import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infersave.solver.scenario import InputError

if TYPE_CHECKING:
    from infersave.solver.pareto import ParetoPoint, ParetoResult
    from infersave.solver.records import Record

FORMATS = (".png", ".svg", ".html")
"""File extensions :func:`write_pareto` writes."""

_COLORS = {
    "meets": "#4c72b0",
    "misses": "#b0b0b0",
    "front": "#dd8452",
    "rec": "#2ca02c",
    "base": "#c44e52",
    "slo": "#555555",
    "cap": "#8c564b",
}


def check_plot_path(path: str | Path) -> Path:
    """``path`` as a Path if :func:`write_pareto` can write its extension.

    Raises:
        InputError: otherwise (one line naming the extensions it can write).
    """
    p = Path(path)
    if p.suffix.lower() not in FORMATS:
        raise InputError(
            f"--plot: cannot write {str(path)!r}; give a file ending in {', '.join(FORMATS)}"
        )
    return p


def _same(p: ParetoPoint, r: Record | None) -> bool:
    return (
        r is not None
        and p.instance_type == r.instance_type
        and p.batch_size == r.batch_size
        and abs(p.offload_ratio - r.offload_ratio) < 1e-9
    )


def _config(r: Record | ParetoPoint) -> str:
    off = f", offload {r.offload_ratio:.0%}" if r.offload_ratio > 0 else ""
    return f"{r.instance_type}, batch {r.batch_size}{off}"


def _slos(s: Any) -> str:
    """The scenario's SLOs in words (``SLO 100 TPS, TTFT <= 0.5 s``)."""
    parts = [f"{s.slo_tps:g} TPS"] if s.slo_tps is not None else []
    for name in ("ttft", "tpot", "e2e"):
        v = getattr(s, f"{name}_slo")
        if v is not None:
            parts.append(f"{name.upper()} <= {v:g} s")
    return "SLO " + ", ".join(parts)


def _title(result: ParetoResult) -> str:
    s = result.scenario
    cap = "no price cap" if s.max_price is None else f"cap ${s.max_price:g}/h"
    return (
        f"{s.model}: {s.requests:,} requests of {s.input_len} in + {s.output_len} out tokens,"
        f" {_slos(s)}, {cap}\n{s.region} ({s.catalog}, {s.pricing}, {s.billing}"
        " billing)"
    )


def figure(result: ParetoResult) -> Any:
    """The matplotlib Figure of the Pareto view, on an Agg canvas (no pyplot, no GUI, and the
    global backend is left alone)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.4, 5.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    pts = result.points
    meets = [p for p in pts if p.meets_slo]
    misses = [p for p in pts if not p.meets_slo]
    if meets:
        ax.scatter(
            [p.tps for p in meets],
            [p.total_cost_usd for p in meets],
            s=9,
            color=_COLORS["meets"],
            alpha=0.35,
            linewidths=0,
            label=f"configuration meeting the SLO ({len(meets):,})",
        )
    if misses:
        ax.scatter(
            [p.tps for p in misses],
            [p.total_cost_usd for p in misses],
            s=9,
            marker="x",
            color=_COLORS["misses"],
            alpha=0.6,
            linewidths=0.8,
            label=f"configuration below the SLO ({len(misses):,})",
        )
    front = result.front
    if front:
        ax.plot(
            [p.tps for p in front],
            [p.total_cost_usd for p in front],
            drawstyle="steps-pre",
            color=_COLORS["front"],
            linewidth=1.6,
            marker="o",
            markersize=5,
            label=f"Pareto front ({len(front)}): cheapest total cost for its TPS",
        )
    if result.slo_tps is not None:
        ax.axvline(
            result.slo_tps,
            color=_COLORS["slo"],
            linestyle="--",
            linewidth=1.2,
            label=f"SLO {result.slo_tps:g} TPS",
        )
    if result.cap_line:
        ax.plot(
            [c.tps for c in result.cap_line],
            [c.total_cost_usd for c in result.cap_line],
            color=_COLORS["cap"],
            linestyle=":",
            linewidth=1.6,
            label=f"price cap ${result.max_price:g}/h x billed hours",
        )
    rec, base = result.recommendation, result.max_performance
    if base is not None:
        ax.scatter(
            [base.tps],
            [base.total_cost_usd],
            s=120,
            marker="D",
            color=_COLORS["base"],
            edgecolors="black",
            zorder=5,
            label="Max-Performance baseline",
        )
        ax.annotate(
            f"Max-Performance: {_config(base)}\n{base.tps:,.0f} TPS, ${base.total_cost_usd:,.2f}",
            (base.tps, base.total_cost_usd),
            xytext=(-12, 14),
            textcoords="offset points",
            ha="right",
            fontsize=8.5,
            color=_COLORS["base"],
            arrowprops={"arrowstyle": "-", "color": _COLORS["base"], "linewidth": 0.8},
        )
    if rec is not None:
        ax.scatter(
            [rec.tps],
            [rec.total_cost_usd],
            s=260,
            marker="*",
            color=_COLORS["rec"],
            edgecolors="black",
            zorder=6,
            label="recommendation",
        )
        saved = result.result.baseline.savings_pct
        note = f"\n{saved:.0f}% cheaper than Max-Performance" if saved is not None else ""
        ax.annotate(
            f"recommended: {_config(rec)}\n{rec.tps:,.0f} TPS, ${rec.total_cost_usd:,.2f}{note}",
            (rec.tps, rec.total_cost_usd),
            xytext=(14, -4),
            textcoords="offset points",
            ha="left",
            va="top",
            fontsize=8.5,
            color=_COLORS["rec"],
            fontweight="bold",
        )
    ax.set_xscale("log")
    costs = [p.total_cost_usd for p in pts] + [c.total_cost_usd for c in result.cap_line]
    if costs and max(costs) / max(min(costs), 1e-12) > 20:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.set_xlabel("throughput, tokens/s (input + output, all replicas; log scale)")
    ax.set_ylabel("total billed cost of the task, $")
    ax.set_title(_title(result), fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    fig.legend(loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    if not pts:
        ax.text(
            0.5,
            0.5,
            "no configuration fits in memory under the price cap",
            transform=ax.transAxes,
            ha="center",
        )
    return fig


def _html_page(result: ParetoResult, svg: str) -> str:
    rec, base = result.recommendation, result.max_performance
    rows = []
    for p in result.front:
        role = "recommended" if _same(p, rec) else "Max-Performance" if _same(p, base) else ""
        cells = [
            p.instance_type,
            f"{p.gpu} x{p.gpu_count:g}",
            str(p.batch_size),
            f"{p.offload_ratio:.2f}",
            f"{p.tps:,.1f}",
            f"${p.total_cost_usd:,.2f}",
            f"${p.price_per_hour:.4g}",
            "yes" if p.meets_slo else "no",
            role,
        ]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = ["instance", "GPU", "batch", "offload", "TPS", "total $", "$/h", "meets SLO", ""]
    title = html.escape(_title(result).replace("\n", " "))
    msg = "" if result.result.status == "ok" else f"<p>{html.escape(result.result.message)}</p>"
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head><meta charset='utf-8'>"
        f"<title>infersave Pareto view: {title}</title>\n"
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
        "td,th{padding:.2em .7em;border-bottom:1px solid #ddd;text-align:right}"
        "td:first-child,th:first-child{text-align:left}svg{max-width:100%;height:auto}</style>"
        f"</head>\n<body>\n<h1>Pareto view</h1>\n<p>{title}</p>\n{msg}\n{svg}\n"
        f"<h2>Pareto front ({len(rows)} of {len(result.points):,} configurations)</h2>\n"
        "<table>\n<tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr>\n"
        + "\n".join(rows)
        + "\n</table>\n</body>\n</html>\n"
    )


def write_pareto(result: ParetoResult, path: str | Path) -> Path:
    """Write the Pareto view to ``path``: ``.png`` or ``.svg`` (matplotlib), or ``.html`` (the
    SVG in a minimal page, with the front as a table). Returns the path written.

    Raises:
        InputError: on any other extension (nothing is written).
        OSError: if the file cannot be written.
    """
    from infersave.catalog.output_files import write_bytes_atomic

    p = check_plot_path(path)
    fig = figure(result)
    suffix = p.suffix.lower()
    out = io.BytesIO()
    if suffix == ".png":
        fig.savefig(out, format="png", dpi=110)
    elif suffix == ".svg":
        fig.savefig(out, format="svg")
    else:
        buf = io.StringIO()
        fig.savefig(buf, format="svg")
        svg = buf.getvalue()
        svg = svg[svg.index("<svg") :]  # drop the XML prolog and DOCTYPE: inline in HTML
        out.write(_html_page(result, svg).encode("utf-8"))
    write_bytes_atomic(out.getvalue(), p)  # whole or not at all
    return p


def _scale(lo: float, hi: float, width: int) -> Any:
    span = math.log(hi / lo) if hi > lo else 1.0

    def col(x: float) -> int:
        return max(0, min(width, round(width * math.log(max(x, lo) / lo) / span)))

    return col


def _short_gpu(p: ParetoPoint) -> str:
    """``8xA100`` for eight A100-SXM4-40GB: the instance type tells the variant."""
    return f"{p.gpu_count:g}x{p.gpu.split('-')[0]}"


def text_pareto(result: ParetoResult, width: int = 72) -> str:
    """A compact terminal version: the front (plus the recommendation and the baseline) one line
    each, cheapest first, with a bar of its TPS on a log scale and ``|`` at the SLO."""
    rec, base = result.recommendation, result.max_performance
    rows = [p for p in result.points if p.on_front or _same(p, rec) or _same(p, base)]
    rows.sort(key=lambda p: (p.total_cost_usd, -p.tps))
    s = result.scenario
    cap = "no price cap" if s.max_price is None else f"under ${s.max_price:g}/h"
    lines = textwrap.wrap(
        f"Pareto front: {len(result.front)} of {len(result.points):,} configurations that fit"
        f" {cap} (lowest total $, highest TPS). * recommended, ^ Max-Performance baseline;"
        f" bar: TPS (log scale){f', | SLO {s.slo_tps:g}' if s.slo_tps else ''}.",
        width,
    )
    if not rows:
        lines.append("No configuration fits in memory " + cap + ".")
        if result.result.message:
            lines.append(result.result.message)
        return "\n".join(lines) + "\n"
    names = max(len(p.instance_type) for p in rows)
    gpus = max(len(_short_gpu(p)) for p in rows)
    fixed = 2 + 10 + 9 + 1 + names + 1 + gpus + 5 + 5 + 2
    bar_w = max(8, width - fixed)
    tps = [p.tps for p in rows] + ([s.slo_tps] if s.slo_tps else [])
    col = _scale(min(tps) / 1.5, max(tps), bar_w)
    slo = col(s.slo_tps) if s.slo_tps else None
    head = (
        f"  {'total $':>10}{'TPS':>9} {'instance':<{names}} {'GPUs':<{gpus}}"
        f"{'batch':>5} {'off':>4}  TPS"
    )
    lines.append(head)
    for p in rows:
        mark = "*" if _same(p, rec) else "^" if _same(p, base) else " "
        n = col(p.tps)
        bar = ["█" if i < n else " " for i in range(bar_w + 1)]
        if slo is not None:
            bar[min(slo, bar_w)] = "|"
        gpu = _short_gpu(p)
        lines.append(
            f"{mark} {'$' + format(p.total_cost_usd, ',.2f'):>10}{p.tps:>9,.0f}"
            f" {p.instance_type:<{names}} {gpu:<{gpus}}{p.batch_size:>5}"
            f" {p.offload_ratio:>4.1f}  {''.join(bar).rstrip()}"
        )
    if rec is not None:
        line = f"Recommended: {_config(rec)}, {rec.tps:,.0f} TPS, ${rec.total_cost_usd:,.2f}"
        saved = result.result.baseline.savings_pct
        if base is not None and saved is not None:
            line += f"; Max-Performance {base.instance_type} ${base.total_cost_usd:,.2f}"
            line += f" ({saved:.1f}% saved)"
        lines.extend(textwrap.wrap(line + ".", width))
    else:
        lines.extend(textwrap.wrap(f"Nothing feasible: {result.result.message}", width))
    return "\n".join(lines) + "\n"
