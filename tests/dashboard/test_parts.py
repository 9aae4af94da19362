"""The dashboard's pure parts: labels, sorting, the calendar, the SVG charts."""

from __future__ import annotations

from datetime import date

from hie.dashboard.charts import bar, histogram, line_chart
from hie.dashboard.i18n import LABELS, Translator, pick_language
from hie.dashboard.overview import ROW_ORDER, SORT_KEYS, declared_share, sort_rows
from hie.dashboard.upload_calendar import month_weeks
from hie.metrics.export import columns_for
from hie.metrics.flags import FLAG_RULES
from hie.metrics.trend import FIGURES


def test_the_overview_writes_cells_in_the_bulletins_order() -> None:
    for kind, order in ROW_ORDER.items():
        assert [c.key for c in columns_for(kind)] == order
        assert set(order) <= set(SORT_KEYS)


def test_every_label_has_both_languages_and_every_flag_and_figure_a_label() -> None:
    assert all(len(pair) == 2 and all(pair) for pair in LABELS.values())
    assert set(FLAG_RULES) <= set(LABELS)
    assert {f"fig.{f}" for f in FIGURES} <= set(LABELS)
    assert Translator("en")("overview.cumulative", month="July 2019", n="3").endswith(": 3.")
    assert Translator("zh").month(date(2019, 7, 1)) == "2019年7月"
    assert pick_language(None, None) == "zh"
    assert pick_language("xx", "en") == "en"


def test_sorting_puts_no_reply_last_either_way() -> None:
    rows = [
        {"institution": "A", "declared": None},
        {"institution": "B", "declared": 3},
        {"institution": "C", "declared": 9},
    ]
    assert [r["institution"] for r in sort_rows(rows, "declared_required", "asc")] == [
        "B",
        "C",
        "A",
    ]
    assert [r["institution"] for r in sort_rows(rows, "declared_required", "desc")] == [
        "C",
        "B",
        "A",
    ]
    assert sort_rows(rows, "nonsense", "asc") == rows
    assert declared_share({"declared": 4, "missing_declared_tables": ["X"]}) == 0.75
    assert declared_share({"declared": None, "missing_declared_tables": []}) is None


def test_a_month_calendar_starts_on_monday() -> None:
    weeks = month_weeks(date(2019, 7, 1), {date(2019, 7, 2): 10, date(2019, 7, 3): 1}, {})
    first = weeks[0]
    assert first[0] is not None and first[0].day == date(2019, 7, 1)  # a Monday
    assert first[1] is not None and first[1].level == 4
    assert first[2] is not None and first[2].level == 1
    assert sum(1 for week in weeks for d in week if d is not None) == 31


def test_charts_escape_their_text_and_show_gaps() -> None:
    svg = line_chart("<b>x</b>", ["2019-06", "2019-07", "2019-08"], [1, None, 3])
    assert "<b>" not in svg and "&lt;b&gt;" in svg
    assert svg.count("<polyline") == 2  # a gap where a month has no value
    assert "no data" in line_chart("t", ["2019-07"], [None])
    assert 'aria-label="a &amp; b"' in bar(0.5, "a & b")
    assert bar(None, "x") == ""
    assert histogram("h", ["<1h", "<2h"], [0, 5]).count("<rect") == 2
