"""Charts as SVG drawn on the server: no script, nothing to download, and they print.

Each chart carries a text alternative (role="img" with an aria-label, and a <title> per point) so
that the figures are not locked in the picture; the pages also show them as tables.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

Format = Callable[[float], str]


def _svg(parts: list[str]) -> Markup:
    # Every text interpolated into the parts went through escape(); the rest are numbers.
    return Markup("".join(parts))  # noqa: S704


def _plain(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def bar(share: float | None, label: str) -> Markup:
    """A completeness bar: the filled part is ``share`` (0 to 1) of a 100-unit track; its size on
    the page comes from the stylesheet (one of these is drawn per row of a 1,000-row table)."""
    if share is None:
        return _svg([])
    filled = round(max(0.0, min(1.0, share)) * 100)
    level = "good" if share >= 0.9 else "fair" if share >= 0.6 else "poor"
    return _svg(
        [
            f'<svg class="bar" viewBox="0 0 100 10" role="img" aria-label="{escape(label)}">'
            f'<rect class="bar-track" width="100" height="10"/>'
            f'<rect class="bar-{level}" width="{filled}" height="10"/></svg>'
        ]
    )


def line_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    fmt: Format = _plain,
    empty: str = "no data",
    width: int = 280,
    height: int = 120,
) -> Markup:
    """A month-by-month line; gaps where a month has no value. Axis: 0 to the largest value."""
    left, right, top, bottom = 44, 8, 10, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    known = [v for v in values if v is not None]
    peak = max(known, default=0) or 1
    step = plot_w / max(1, len(values) - 1)

    def x(i: int) -> float:
        return left + i * step

    def y(v: float) -> float:
        return top + plot_h - (v / peak) * plot_h

    parts = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}">',
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{width - right}" '
        f'y2="{top + plot_h}"/>',
        f'<line class="grid" x1="{left}" y1="{top}" x2="{width - right}" y2="{top}"/>',
        f'<text class="tick" x="{left - 4}" y="{top + 4}" text-anchor="end">'
        f"{escape(fmt(peak) if known else '')}</text>",
        f'<text class="tick" x="{left - 4}" y="{top + plot_h + 4}" text-anchor="end">0</text>',
    ]
    if labels:
        parts.append(
            f'<text class="tick" x="{left}" y="{height - 6}">{escape(labels[0])}</text>'
            f'<text class="tick" x="{width - right}" y="{height - 6}" text-anchor="end">'
            f"{escape(labels[-1])}</text>"
        )
    segment: list[str] = []
    segments: list[list[str]] = []
    for i, v in enumerate(values):
        if v is None:
            if segment:
                segments.append(segment)
            segment = []
        else:
            segment.append(f"{x(i):.1f},{y(v):.1f}")
    if segment:
        segments.append(segment)
    for points in segments:
        parts.append(f'<polyline class="line" points="{" ".join(points)}"/>')
    for i, v in enumerate(values):
        if v is not None:
            parts.append(
                f'<circle class="point" cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5">'
                f"<title>{escape(labels[i])}: {escape(fmt(v))}</title></circle>"
            )
    if not known:
        parts.append(
            f'<text class="empty" x="{left + plot_w / 2}" y="{top + plot_h / 2}" '
            f'text-anchor="middle">{escape(empty)}</text>'
        )
    parts.append("</svg>")
    return _svg(parts)


def histogram(
    title: str, labels: Sequence[str], counts: Sequence[int], *, width: int = 560, height: int = 140
) -> Markup:
    """Vertical bars, one per bucket, labelled underneath."""
    left, bottom, top = 8, 30, 14
    plot_h = height - top - bottom
    slot = (width - left * 2) / max(1, len(counts))
    peak = max(counts, default=0) or 1
    parts = [
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}">'
    ]
    for i, (label, count) in enumerate(zip(labels, counts, strict=True)):
        h = count / peak * plot_h
        bx = left + i * slot
        parts.append(
            f'<rect class="column" x="{bx + 2:.1f}" y="{top + plot_h - h:.1f}" '
            f'width="{slot - 4:.1f}" height="{h:.1f}"><title>{escape(label)}: {count:,}</title>'
            f"</rect>"
            f'<text class="tick" x="{bx + slot / 2:.1f}" y="{height - 16}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
        if count:
            parts.append(
                f'<text class="tick" x="{bx + slot / 2:.1f}" y="{top + plot_h - h - 3:.1f}" '
                f'text-anchor="middle">{count:,}</text>'
            )
    parts.append(
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{width - left}" '
        f'y2="{top + plot_h}"/></svg>'
    )
    return _svg(parts)
