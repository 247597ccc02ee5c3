"""Medians over repetitions, the printed table, the JSON file and the latency plot."""

from __future__ import annotations

import itertools
import logging
import math
import os
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ROWS", "Row", "generator_note", "medians", "plot_latency", "table"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure of a measurement."""

    label: str
    metric: str
    unit: str
    better: str  # "lower", "higher" or "" (context, no ratio)
    digits: int = 1


FANOUT_ROWS = (
    Row("latency p50", "p50_ms", "ms", "lower"),
    Row("latency p95", "p95_ms", "ms", "lower"),
    Row("latency p99", "p99_ms", "ms", "lower"),
    Row("latency max", "max_ms", "ms", "lower"),
    Row("writer's echo p99", "echo_p99_ms", "ms", "lower"),
    Row("deliveries/s", "deliveries_per_s", "/s", "higher", 0),
    Row("missing deliveries", "missing", "", "", 0),
    Row("server CPU", "server_cpu_pct", "%", "lower", 0),
    Row("generator CPU", "generator_cpu_pct", "%", "", 0),
)
ROOMS_ROWS = (
    Row("steady latency p50", "steady_p50_ms", "ms", "lower"),
    Row("steady latency p99", "steady_p99_ms", "ms", "lower"),
    Row("steady deliveries/s", "steady_deliveries_per_s", "/s", "higher", 0),
    Row("steady server CPU", "steady_server_cpu_pct", "%", "lower", 0),
    Row("burst deliveries/s", "burst_deliveries_per_s", "/s", "higher", 0),
    Row("burst latency p50", "burst_p50_ms", "ms", "lower"),
    Row("burst latency p99", "burst_p99_ms", "ms", "lower"),
    Row("burst missing", "burst_missing", "", "", 0),
    Row("burst server CPU", "burst_server_cpu_pct", "%", "lower", 0),
    Row("burst generator CPU", "burst_generator_cpu_pct", "%", "", 0),
)
SYNC_ROWS = (
    Row("initial sync p50 (step 2 applied)", "p50_ms", "ms", "lower"),
    Row("step 2 received p50", "received_p50_ms", "ms", "lower"),
    Row("prefill (edits echoed)", "prefill_s", "s", "", 2),
)


def idle_rows(counts: Iterable[int]) -> tuple[Row, ...]:
    """Rows of the idle measurement for the connection counts used."""
    rows = [Row("RSS, no connection", "rss0_kib", "MiB", "lower", 1)]
    for count in sorted(counts):
        rows.append(Row(f"RSS, {count:,} connections", f"rss_{count}_kib", "MiB", "lower", 1))
        rows.append(Row(f"KiB per connection ({count:,})", f"kib_per_conn_{count}", "KiB",
                        "lower", 1))
        rows.append(Row(f"server CPU, {count:,} idle", f"idle_cpu_{count}_pct", "%", "", 1))
    return tuple(rows)


ROWS: dict[str, tuple[Row, ...]] = {"fanout": FANOUT_ROWS, "rooms": ROOMS_ROWS,
                                     "sync": SYNC_ROWS}


def medians(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """``{measurement: {metric: {target: median over repetitions}}}`` (numbers only)."""
    grouped: dict[str, dict[str, dict[str, list[float]]]] = {}
    for run in runs:
        if run.get("failed"):
            continue
        per_metric = grouped.setdefault(run["measurement"], {})
        for metric, value in run["figures"].items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if isinstance(value, float) and math.isnan(value):
                continue
            per_metric.setdefault(metric, {}).setdefault(run["target"], []).append(value)
    return {m: {metric: {t: statistics.median(v) for t, v in by_target.items()}
                for metric, by_target in metrics.items()}
            for m, metrics in grouped.items()}


def _format(value: float | None, row: Row) -> str:
    if value is None:
        return "—"
    if row.unit == "MiB":
        value = value / 1024
    if row.digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{row.digits}f}"


def table(summary: dict[str, dict[str, dict[str, float]]], targets: Sequence[str],
          failures: dict[str, list[str]], idle_counts: Iterable[int]) -> str:
    """The human-readable table: medians per target and our ratio to each peer.

    A ratio is ours ÷ peer: below 1 is better for latency, CPU and memory, above 1 for
    deliveries/s.
    """
    peers = [t for t in targets if t != "ours"] if "ours" in targets else []
    header = ["measurement / figure", *targets, *(f"ours/{p}" for p in peers)]
    lines: list[list[str]] = []
    for measurement, metrics in summary.items():
        kind = measurement.split(" ", 1)[0]
        rows = ROWS.get(kind) or (idle_rows(idle_counts) if kind == "idle" else ())
        lines.append([measurement, *([""] * (len(header) - 1))])
        for row in rows:
            values = metrics.get(row.metric, {})
            if not values:
                continue
            cells = [f"  {row.label}" + (f" ({row.unit})" if row.unit else "")]
            cells += [_format(values.get(t), row) for t in targets]
            for peer in peers:
                ours, theirs = values.get("ours"), values.get(peer)
                if row.better and ours is not None and theirs:
                    cells.append(f"{ours / theirs:.2f}")
                else:
                    cells.append("")
            lines.append(cells)
        failed = failures.get(measurement)
        if failed:
            lines.append([f"  failed runs: {'; '.join(failed)}"[:140],
                          *([""] * (len(header) - 1))])
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header))]
    widths[0] = min(widths[0], 46)

    def fmt(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    out = [fmt(header), "-" * (sum(widths) + 2 * (len(widths) - 1))]
    out += [fmt(cells) for cells in lines]
    out.append("ratios are ours ÷ peer (medians): < 1 is better for ms, %, MiB, KiB; "
               "> 1 is better for /s")
    return "\n".join(out)


def generator_note(runs: Sequence[dict[str, Any]]) -> str:
    """One line on the generator's own CPU: the busiest run (a saturated generator would
    make every server look alike)."""
    busiest: tuple[float, str] = (0.0, "")
    for run in runs:
        for metric in ("generator_cpu_pct", "steady_generator_cpu_pct",
                       "burst_generator_cpu_pct"):
            value = run.get("figures", {}).get(metric)
            if isinstance(value, int | float) and value > busiest[0]:
                phase = metric.split("_")[0] + " " if metric.startswith(("st", "bu")) else ""
                busiest = (value, f"{run['measurement']}, {phase}{run['target']}")
    if not busiest[1]:
        return ""
    warning = " (near saturation: figures there may be the generator's)" \
        if busiest[0] > 80 else ""
    return f"generator CPU peaked at {busiest[0]:.0f}% of a core ({busiest[1]}){warning}"


COLOURS = {"ours": (0x1F, 0x77, 0xB4), "node": (0x2C, 0xA0, 0x2C), "pycrdt": (0xD6, 0x27, 0x28)}
QUANTILES = ("p50_ms", "p99_ms")

Series = dict[str, dict[str, list[tuple[int, float]]]]


def _fanout_series(summary: dict[str, dict[str, dict[str, float]]]) -> Series:
    """``{target: {quantile: [(clients, ms), …]}}`` from the fan-out medians."""
    series: Series = {}
    for measurement, metrics in summary.items():
        if not measurement.startswith("fanout "):
            continue
        clients = int(measurement.split("=", 1)[1].replace(",", ""))
        for quantile in QUANTILES:
            for target, value in metrics.get(quantile, {}).items():
                if value > 0:
                    series.setdefault(target, {}).setdefault(quantile, []).append(
                        (clients, value))
    return series


def plot_latency(summary: dict[str, dict[str, dict[str, float]]], targets: Sequence[str],
                 path: Path, title: str) -> None:
    """PNG: fan-out delivery latency (p50 solid, p99 dashed) against clients in the room.

    Drawn with Qt (QImage + QPainter, offscreen), which the project already ships, so the
    bench adds no plotting dependency. Both axes are logarithmic.
    """
    series = _fanout_series(summary)
    if not series:
        log.warning("no fan-out figures to plot")
        return
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication([])
    image = _LogLogChart(series, title).render([t for t in targets if t in series])
    path.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(path)):
        raise RuntimeError(f"could not write {path}")
    del app


class _LogLogChart:
    """A small log-log line chart painted with QPainter."""

    WIDTH, HEIGHT = 900, 560
    LEFT, RIGHT, TOP, BOTTOM = 80, 170, 50, 60

    def __init__(self, series: Series, title: str) -> None:
        from PySide6.QtCore import QRectF

        self.series = series
        self.title = title
        xs = [x for s in series.values() for pts in s.values() for x, _ in pts]
        ys = [y for s in series.values() for pts in s.values() for _, y in pts]
        self.x_values = sorted(set(xs))
        self.x_lo, self.x_hi = math.log10(min(xs)), math.log10(max(xs))
        if self.x_hi - self.x_lo < 1e-9:
            self.x_lo, self.x_hi = self.x_lo - 0.5, self.x_hi + 0.5
        self.y_lo = math.floor(math.log10(max(min(ys), 0.01)))
        self.y_hi = max(self.y_lo + 1, math.ceil(math.log10(max(ys))))
        self.plot = QRectF(self.LEFT, self.TOP, self.WIDTH - self.LEFT - self.RIGHT,
                           self.HEIGHT - self.TOP - self.BOTTOM)

    def to_px(self, x: float, y: float) -> Any:
        """A QPointF for data coordinates."""
        from PySide6.QtCore import QPointF

        fx = (math.log10(x) - self.x_lo) / (self.x_hi - self.x_lo)
        fy = (math.log10(max(y, 10.0 ** self.y_lo)) - self.y_lo) / (self.y_hi - self.y_lo)
        return QPointF(self.plot.left() + fx * self.plot.width(),
                       self.plot.bottom() - fy * self.plot.height())

    def render(self, targets: Sequence[str]) -> Any:
        """The chart as a QImage."""
        from PySide6.QtGui import QColor, QFont, QImage, QPainter

        image = QImage(self.WIDTH, self.HEIGHT, QImage.Format.Format_ARGB32)
        image.fill(QColor("white"))
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont()
        font.setPixelSize(13)
        painter.setFont(font)
        self._axes(painter)
        self._lines(painter, targets)
        painter.end()
        return image

    def _axes(self, painter: Any) -> None:
        from PySide6.QtCore import QPointF, QRectF, Qt
        from PySide6.QtGui import QColor, QFont, QPen

        plot = self.plot
        grid = QPen(QColor(225, 225, 225))
        text = QColor(40, 40, 40)
        right_v = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        centre = int(Qt.AlignmentFlag.AlignHCenter)
        for exponent in range(self.y_lo, self.y_hi + 1):
            y = self.to_px(10 ** self.x_lo, 10.0 ** exponent).y()
            painter.setPen(grid)
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            painter.setPen(text)
            painter.drawText(QRectF(0, y - 9, self.LEFT - 8, 18), right_v,
                             f"{10.0 ** exponent:g}")
        for clients in self.x_values:
            x = self.to_px(clients, 10.0 ** self.y_lo).x()
            painter.setPen(grid)
            painter.drawLine(QPointF(x, plot.top()), QPointF(x, plot.bottom()))
            painter.setPen(text)
            painter.drawText(QRectF(x - 40, plot.bottom() + 4, 80, 18), centre, f"{clients:,}")
        painter.setPen(QPen(text, 1.2))
        painter.drawRect(plot)
        painter.drawText(QRectF(plot.left(), self.HEIGHT - 30, plot.width(), 20), centre,
                         "clients in the room (log scale)")
        painter.save()
        painter.translate(18, plot.center().y())
        painter.rotate(-90)
        painter.drawText(QRectF(-150, -10, 300, 20), centre, "delivery latency, ms (log scale)")
        painter.restore()
        font = painter.font()
        bold = QFont(font)
        bold.setBold(True)
        bold.setPixelSize(15)
        painter.setFont(bold)
        painter.drawText(QRectF(0, 12, self.WIDTH, 24), centre, self.title)
        painter.setFont(font)

    def _lines(self, painter: Any, targets: Sequence[str]) -> None:
        from PySide6.QtCore import QPointF, Qt
        from PySide6.QtGui import QColor, QPen

        text = QColor(40, 40, 40)
        legend_y = self.TOP + 10
        for target in targets:
            colour = QColor(*COLOURS.get(target, (90, 90, 90)))
            for quantile, style in zip(QUANTILES, (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine),
                                       strict=True):
                points = sorted(self.series[target].get(quantile, []))
                pixels = [self.to_px(x, y) for x, y in points]
                painter.setPen(QPen(colour, 2.4, style))
                for a, b in itertools.pairwise(pixels):
                    painter.drawLine(a, b)
                painter.setBrush(colour)
                for point in pixels:
                    painter.drawEllipse(point, 3.5, 3.5)
                painter.setBrush(Qt.BrushStyle.NoBrush)
                x0 = self.plot.right() + 16
                painter.drawLine(QPointF(x0, legend_y), QPointF(x0 + 30, legend_y))
                painter.setPen(text)
                painter.drawText(QPointF(x0 + 38, legend_y + 5),
                                 f"{target} {quantile.split('_')[0]}")
                legend_y += 22
