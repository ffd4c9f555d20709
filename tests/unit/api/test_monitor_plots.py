"""The monitoring view's SVG plot of one device: the calibration's reference as the first
bar, each week's category shares stacked to the full height, the PSI against the rule's
threshold, the device marked when a rule fired for it, and every text from the store
escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date

import pytest

from mammotriage.api.monitor_plots import BARS_HEIGHT, CATEGORY_COLOURS, TOP, device_plot
from mammotriage.monitor.report import DeviceWeek

SVG = "{http://www.w3.org/2000/svg}"
REFERENCE = tuple(0.1 for _ in range(10))


def week(day: date, counts: tuple[int, ...], psi: float | None, site: str = "North") -> DeviceWeek:
    return DeviceWeek(
        site=site,
        device="ACME / Senograph / ROOM-2",
        week=day,
        exams=sum(counts),
        partial=0,
        counts=counts,
        other_model=0,
        unscored=0,
        images=4 * sum(counts),
        unusable_images=0,
        unusable_by_reason={},
        median_score=None,
        psi=psi,
        chi_square=None,
        p_value=None,
    )


WEEKS = [
    week(date(2024, 2, 19), (1,) * 10, 0.0),
    week(date(2024, 2, 26), (0, 0, 0, 0, 0, 0, 0, 2, 5, 3), 1.9),
    week(date(2024, 3, 4), (0,) * 10, None),  # nothing scored by the monitored model
]


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def bars(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == "bar"]


def segments(bar: ET.Element) -> list[ET.Element]:
    return [r for r in bar.iter(f"{SVG}rect") if r.get("class") == "segment"]


def test_the_first_bar_is_the_reference_with_a_tenth_in_each_category() -> None:
    root = parse(device_plot(WEEKS, REFERENCE, psi_threshold=0.2))
    first = bars(root)[0]
    assert first.get("data-reference") == "true" and first.get("data-label") == "reference"
    assert "".join(first.itertext()).endswith("reference")  # the visible label
    shares = [float(r.get("data-share", "")) for r in segments(first)]
    assert shares == pytest.approx([0.1] * 10)
    assert [r.get("fill") for r in segments(first)] == list(CATEGORY_COLOURS)


def test_each_week_is_one_bar_whose_segments_are_its_category_shares_stacked_to_full_height() -> (
    None
):
    root = parse(device_plot(WEEKS, REFERENCE, psi_threshold=0.2))
    by_week = {g.get("data-week"): g for g in bars(root)[1:]}
    assert list(by_week) == ["2024-02-19", "2024-02-26", "2024-03-04"]
    for item in WEEKS[:2]:
        drawn = segments(by_week[item.week.isoformat()])
        assert [int(r.get("data-category", "")) for r in drawn] == list(range(1, 11))
        heights = [float(r.get("height", "")) / BARS_HEIGHT for r in drawn]
        assert heights == pytest.approx(item.shares, abs=1e-5)
        assert sum(heights) == pytest.approx(1.0, abs=1e-5)
        # Category 1 at the bottom, each segment right on top of the one below it.
        bottom = TOP + BARS_HEIGHT
        for rect in drawn:
            y, height = float(rect.get("y", "")), float(rect.get("height", ""))
            assert y + height == pytest.approx(bottom, abs=1e-2)
            bottom = y
        assert bottom == pytest.approx(TOP, abs=1e-2)


def test_a_week_without_scores_is_an_empty_outline_not_a_bar() -> None:
    root = parse(device_plot(WEEKS, REFERENCE, psi_threshold=0.2))
    empty = bars(root)[3]
    assert empty.get("data-week") == "2024-03-04" and segments(empty) == []
    assert [r.get("class") for r in empty.iter(f"{SVG}rect")] == ["empty"]


def test_an_uncalibrated_model_draws_the_reference_bar_empty() -> None:
    root = parse(device_plot(WEEKS, None, psi_threshold=0.2))
    first = bars(root)[0]
    assert first.get("data-label") == "reference" and segments(first) == []


def test_psi_points_for_weeks_with_one_and_the_threshold_line() -> None:
    root = parse(device_plot(WEEKS, REFERENCE, psi_threshold=0.2))
    points = [c for c in root.iter(f"{SVG}circle") if "psi-point" in (c.get("class") or "")]
    assert [(c.get("data-week"), float(c.get("data-psi", ""))) for c in points] == [
        ("2024-02-19", 0.0),
        ("2024-02-26", 1.9),
    ]
    assert ["above" in (c.get("class") or "") for c in points] == [False, True]
    (threshold,) = [line for line in root.iter(f"{SVG}line") if line.get("class") == "threshold"]
    assert threshold.get("data-threshold") == "0.2"
    # Higher PSI is drawn higher: above the threshold line, the zero week below it.
    y_of = {c.get("data-week"): float(c.get("cy", "")) for c in points}
    line_y = float(threshold.get("y1", ""))
    assert y_of["2024-02-26"] < line_y < y_of["2024-02-19"]


def test_no_threshold_line_without_a_psi_rule() -> None:
    root = parse(device_plot(WEEKS, REFERENCE, psi_threshold=None))
    assert not [line for line in root.iter(f"{SVG}line") if line.get("class") == "threshold"]


def test_a_device_with_an_alert_is_marked_and_one_without_is_not() -> None:
    alerted = parse(device_plot(WEEKS, REFERENCE, psi_threshold=0.2, alerts=["category-drift"]))
    assert "alert" in (alerted.get("class") or "").split()
    assert alerted.get("data-alert") == "true"
    texts = [t.text for t in alerted.iter(f"{SVG}text")]
    assert "alert" in texts and "alert: category-drift" in texts
    calm = parse(device_plot(WEEKS, REFERENCE, psi_threshold=0.2))
    assert (calm.get("class") or "").split() == ["device-plot"]
    assert calm.get("data-alert") == "false"
    assert not [t for t in calm.iter(f"{SVG}text") if "alert" in (t.text or "")]


def test_every_text_from_the_store_is_escaped() -> None:
    site = 'St. Mary & St. John <script>alert("x")</script>'
    rule = "drift&<b>"
    weeks = [week(w.week, w.counts, w.psi, site=site) for w in WEEKS]
    svg = device_plot(weeks, REFERENCE, psi_threshold=0.2, alerts=[rule])
    assert "<script>" not in svg and "<b>" not in svg
    root = parse(svg)  # well-formed XML: nothing broke out of its element or attribute
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    assert f"{site} · ACME / Senograph / ROOM-2" in texts
    assert f"alert: {rule}" in texts
    assert site in (root.get("aria-label") or "")
