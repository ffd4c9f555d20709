"""``report.html``: the evaluation as one self-contained page.

Written from ``metrics.json``'s dictionary alone, so the page can never say something the
JSON does not. Everything is inside the one file: the CSS inline, the plots as base64 PNG
``data:`` URIs, no script, no link to any network address, so that it opens offline, can
be mailed, and still reads the same in ten years. Every value is HTML-escaped.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from mammotriage.atomic import atomic_write

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 62rem; margin: 2rem auto; padding: 0 1rem;
       color: #1d1d1d; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem;
     border-bottom: 1px solid #ccc; }
.notice { background: #b00020; color: white; padding: .8rem 1rem; font-weight: bold;
          font-size: 1.1rem; }
.how { color: #444; font-size: .93rem; background: #f4f6f8; padding: .5rem .8rem; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: right; }
th:first-child, td:first-child, table.plain td { text-align: left; }
th { background: #eef1f4; }
tr.policy td { font-weight: bold; background: #fff7d6; }
.ci { color: #555; font-size: .85em; white-space: nowrap; }
img { max-width: 100%; }
code { background: #f4f4f4; padding: 0 .2rem; }
"""


def _text(value: Any) -> str:
    return escape(str(value), quote=True)


def fmt(estimate: dict[str, Any] | None, kind: str = "share") -> str:
    """An estimate as HTML: the value and its 95 % interval (``kind``: share -> per cent,
    rate -> per 1000 with one decimal, number -> three decimals); "-" when undefined."""
    if not estimate or estimate.get("value") is None:
        return "&ndash;"

    def one(x: float) -> str:
        if kind == "share":
            return f"{100 * x:.1f}&nbsp;%"
        if kind == "rate":
            return f"{x:.1f}"
        return f"{x:.3f}"

    ci = estimate.get("ci95")
    interval = (
        f' <span class="ci">({one(ci[0])} to {one(ci[1])})</span>'
        if ci
        else ' <span class="ci">(no interval)</span>'
    )
    return one(estimate["value"]) + interval


def _table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    classes: Sequence[str] = (),
    *,
    plain: bool = False,
) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join(
        (f'<tr class="{classes[i]}">' if i < len(classes) and classes[i] else "<tr>")
        + "".join(f"<td>{cell}</td>" for cell in row)
        + "</tr>"
        for i, row in enumerate(rows)
    )
    table = '<table class="plain">' if plain else "<table>"
    return f"{table}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _how(text: str) -> str:
    return f'<p class="how"><b>How to read this:</b> {text}</p>'


def _image(images: dict[str, bytes], name: str, alt: str) -> str:
    if name not in images:
        return ""
    data = base64.b64encode(images[name]).decode("ascii")
    return f'<p><img alt="{_text(alt)}" src="data:image/png;base64,{data}"></p>'


def _inputs(m: dict[str, Any]) -> str:
    i, e, b = m["inputs"], m["exams"], m["bootstrap"]
    rows = [
        ("Scores (backfill folder)", f"<code>{_text(i['scores'])}</code>"),
        (
            "Outcomes file",
            f"<code>{_text(i['outcomes'])}</code> (joined on {_text(i['outcome_key'])})",
        ),
        (
            "Policy evaluated",
            f"{_text(i['policy_version'])} (<code>{_text(i['policy_file'])}</code>)",
        ),
        ("Policy of the backfill run", _text(", ".join(i["backfill_policy_versions"]))),
        ("Model", f"{_text(i['model_name'])}, sha256 <code>{_text(i['model_sha256'])}</code>"),
        ("Exams in the scores", str(e["total"])),
        ("Interval-cancer window", f"{_text(i['interval_months'])} months"),
        (
            "Bootstrap",
            f"{b['n_boot']} resamples of the exams, seed {b['seed']}, 95&nbsp;% "
            "percentile intervals",
        ),
    ]
    return _table(["input", "value"], [list(r) for r in rows], plain=True)


def _join(m: dict[str, Any]) -> str:
    e, j, files = m["exams"], m["join"], m["files"]

    def ids(block: dict[str, Any]) -> str:
        shown = ", ".join(_text(x) for x in block["first"])
        more = " ..." if block["count"] > len(block["first"]) else ""
        return f"{shown}{more}" if shown else "&ndash;"

    rows = [
        ["exams in the scores", str(e["total"]), ""],
        ["&nbsp; scored (of them partial)", f"{e['scored']} ({e['partial']})", ""],
        [
            "&nbsp; not scored (of them failed)",
            f"{e['unscored']} ({e['failed']})",
            "read by two people, as without AI",
        ],
        ["exams with an outcome", str(e["with_outcome"]), ""],
        [
            "exams without an outcome",
            str(e["without_outcome"]),
            f"<code>{_text(files['exams_without_outcome'])}</code>; first: "
            + ids(j["exams_without_outcome"]),
        ],
        [
            "outcomes without an exam",
            str(e["outcomes_without_exam"]),
            f"<code>{_text(files['outcomes_without_exam'])}</code>; first: "
            + ids(j["outcomes_without_exam"]),
        ],
    ]
    o = m["outcomes"]
    outcome_rows = [
        ["cancers (screen-detected or interval)", str(o["cancers"])],
        ["&nbsp; screen-detected", str(o["screen_detected"])],
        ["&nbsp; interval", str(o["interval"])],
        ["&nbsp; in exams the model did not score", str(o["cancers_unscored"])],
        ["cancers per 1000 exams", fmt(o["cancer_rate_per_1000"], "rate")],
        ["recalls (of exams with recall known)", f"{o['recalls']} of {o['recall_known']}"],
        ["recall rate", fmt(o["recall_rate"])],
    ]
    return (
        _table(["", "exams", "where listed"], rows)
        + _how(
            "Exams without an outcome count in the reading workload and the device "
            "distribution, but are left out of every outcome figure (AUC, sensitivity, "
            "specificity, the bands). Both lists are in the report folder in full: check them "
            "before trusting the figures; many unmatched rows usually mean a key typed "
            "differently in the two systems."
        )
        + _table(["outcome", "value"], outcome_rows)
    )


def _operating(m: dict[str, Any]) -> str:
    d, p, a = m["double_reading"], m["priority"], m["auc"]
    rows = [
        [
            f"double reading (policy {_text(m['inputs']['policy_version'])}, safety net included)",
            fmt(d["sensitivity"]),
            fmt(d["specificity"]),
            fmt(d["sensitivity_screen_detected"]),
            fmt(d["sensitivity_interval"]),
        ],
        [
            f"priority (category &ge; {p['min_category']})",
            fmt(p["sensitivity"]),
            fmt(p["specificity"]),
            fmt(p["sensitivity_screen_detected"]),
            fmt(p["sensitivity_interval"]),
        ],
    ]
    left = a["unscored_left_out"]
    return (
        f"<p>AUC of the exam score for cancer: <b>{fmt(a, 'number')}</b> over {a['exams']} "
        f"scored exams with an outcome ({a['cancers']} cancers); {left['exams']} exams the "
        f"model did not score ({left['cancers']} cancers) are left out.</p>"
        + _how(
            "The AUC is the chance that a cancer exam scores higher than a cancer-free one "
            "(0.5: no better than chance; 1: perfect). Sensitivity is the share of cancers the "
            "policy flags (sends to two readers, or to the front of the queue); specificity "
            "the share of cancer-free exams it does not flag. Both are over scored exams with "
            "an outcome. A low double-reading sensitivity means cancers that get one reader."
        )
        + _table(
            [
                "flagged as",
                "sensitivity",
                "specificity",
                "sensitivity, screen-detected",
                "sensitivity, interval",
            ],
            rows,
        )
    )


def _workload(m: dict[str, Any]) -> str:
    w = m["workload"]
    rows = [
        [
            _text(mode),
            str(w["exams_by_mode"][mode]),
            str(w["reads_by_mode"][mode]),
            fmt(w["mode_share"][mode]),
        ]
        for mode in w["mode_share"]
    ]
    c = m["cancers_by_reading"]
    cancer_rows = [
        [label.replace("_", " "), str(c[label]["count"]), fmt(c[label]["share"])]
        for label in ("one_reader", "no_reader", "two_readers")
    ]
    return (
        f"<p>Reads under the policy: <b>{w['reads']}</b> of {w['reads_double_reading_all']} "
        f"under double reading of every exam: workload <b>{fmt(w, 'number')}</b>, change "
        f"<b>{fmt(w['change'], 'share')}</b>. Exams not scored: {fmt(w['unscored_share'])}; "
        f"priority: {fmt(w['priority_share'])}.</p>"
        + _how(
            "One reader costs 1 read, two readers 2, rule-out 0; an exam the model did not "
            "score is read by two people (2 reads). Workload is the policy's reads divided "
            "by the reads of double reading every exam: 0.67 means a third fewer reads. "
            "Every exam in the scores counts here, with or without an outcome. Consensus "
            "reads after a disagreement are not counted."
        )
        + _table(["reading", "exams", "reads", "share of exams"], rows)
        + "<p>Where the cancers (with an outcome) went:</p>"
        + _table(["cancers read by", "count", "share of cancers"], cancer_rows)
    )


def _bands(m: dict[str, Any]) -> str:
    rows = [
        [
            _text(b["band"]),
            str(b["exams"]),
            str(b["screen_detected"]),
            str(b["interval"]),
            f"{b['recalls']} / {b['recall_known']}",
            str(b["cancers_one_reader"]),
            fmt(b["cancer_rate_per_1000"], "rate"),
            fmt(b["cancer_share"]),
            fmt(b["recall_rate"]),
        ]
        for b in m["bands"]
    ]
    return _how(
        "One row per category (1: least suspicious) and one for exams the model did not "
        "score, over exams with an outcome. Each category is meant to hold about a tenth "
        "of a screening population, so cancers should gather in the top rows. 'One "
        "reader' counts the cancers the policy would have left to a single reader."
    ) + _table(
        [
            "category",
            "exams",
            "screen-detected",
            "interval",
            "recalls / known",
            "cancers, one reader",
            "cancers per 1000",
            "share of cancers",
            "recall rate",
        ],
        rows,
    )


def _devices(m: dict[str, Any], images: dict[str, bytes]) -> str:
    headers = ["device", "scored exams", *[str(k) for k in range(1, 11)], "PSI"]
    rows = [
        [
            _text(d["device"]),
            str(d["exams_scored"]),
            *[
                "&ndash;"
                if d["share"][str(k)]["value"] is None
                else f"{100 * d['share'][str(k)]['value']:.0f}"
                for k in range(1, 11)
            ],
            fmt(d["psi"], "number"),
        ]
        for d in m["devices"]
    ]
    return (
        _how(
            "Per cent of each device's scored exams in each category (the calibration "
            "reference puts 10 % in each; intervals for every share are in metrics.json). "
            "The population stability index (PSI) sums (p &minus; q)&middot;ln(p/q) over the "
            "categories: below 0.1 is usually read as stable, 0.1 to 0.2 as a moderate "
            "shift, above 0.2 as a device whose categories do not mean what they mean "
            "elsewhere (recalibrate: <code>--sidecar-out</code>). A PSI cannot be negative, "
            "so resampling noise alone pushes it up: its interval may sit above the value; "
            "read the value against 0.1 and 0.2."
        )
        + _table(headers, rows)
        + _image(images, "devices", "category distribution per device")
    )


def _cut_offs(m: dict[str, Any], images: dict[str, bytes]) -> str:
    if not m["cut_offs"]:
        return "<p>No scored exam with an outcome: no cut-off table.</p>"
    rows, classes = [], []
    for c in m["cut_offs"]:
        rows.append(
            [
                str(c["single_reading_max_category"]) + (" (policy)" if c["policy"] else ""),
                fmt(c["workload"], "number"),
                fmt(c["single_share"]),
                fmt(c["cancers_double_read_share"]),
                fmt(c["specificity"]),
            ]
        )
        classes.append("policy" if c["policy"] else "")
    return (
        _how(
            "Each row keeps the policy's other rules (safety net, rule-out) and changes only "
            "the highest category read by one reader. Workload falls as the cut-off rises; "
            "so does the share of cancers that still get two readers (the sensitivity of "
            "the double-reading decision). Over scored exams with an outcome."
        )
        + _table(
            [
                "single reading up to category",
                "workload",
                "exams single-read",
                "cancers double-read (sensitivity)",
                "specificity",
            ],
            rows,
            classes,
        )
        + _image(images, "workload", "workload and cancers double-read against the cut-off")
    )


def _sidecars(m: dict[str, Any]) -> str:
    s = m["sidecars"]
    if s is None:
        return ""
    rows = [
        [_text(w["scope"]), f"<code>{_text(w['file'])}</code>", str(w["exams"]), _text(w["why"])]
        for w in s["written"]
    ]
    skipped = [
        [_text(c["device"]), str(c["exams"]), _text(c["why"])]
        for c in s["devices_checked"]
        if not c["written"]
    ]
    return (
        "<h2>Site-calibrated sidecars</h2>"
        + _how(
            f"Calibrations of <code>{_text(s['model'])}</code> from this site's own scores. "
            "Only the category thresholds differ from the model's sidecar; to use one, copy "
            "the .onnx beside it under the same name (site.onnx next to site.json)."
        )
        + _table(["for", "file", "exams", "why"], rows)
        + (_table(["device not given its own", "exams", "why"], skipped) if skipped else "")
    )


def render(metrics: dict[str, Any], images: dict[str, bytes]) -> str:
    """The report page for ``metrics`` (as in ``metrics.json``) and the PNG ``images``."""
    m = metrics
    notice = (
        f'<p class="notice">{_text(m["notice"])}: these scores were made by a model trained '
        "on synthetic phantoms; they say nothing about patients.</p>"
        if m["demonstration_model"]
        else ""
    )
    title = f"Go-live evaluation: policy {_text(m['inputs']['policy_version'])}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>"
        f"{notice}<h1>{title}</h1>"
        "<p>Every figure is followed by its 95&nbsp;% bootstrap interval in brackets "
        "(exams resampled with replacement).</p>"
        f"<h2>Inputs</h2>{_inputs(m)}"
        f"<h2>Exams, outcomes and the join</h2>{_join(m)}"
        f"<h2>Discrimination and the policy's cut-offs</h2>{_operating(m)}"
        f"{_image(images, 'roc', 'ROC curve of the exam score')}"
        f"<h2>Reading workload</h2>{_workload(m)}"
        f"<h2>Cancers and recalls per category</h2>{_bands(m)}"
        f"<h2>Categories per device against the calibration reference</h2>{_devices(m, images)}"
        f"<h2>Choosing the single-reading cut-off</h2>{_cut_offs(m, images)}"
        f"{_sidecars(m)}"
        f"{notice}</body></html>\n"
    )


def write_report(metrics: dict[str, Any], images: dict[str, bytes], path: Path) -> Path:
    """Write :func:`render`'s page to ``path`` (whole or not at all) and return ``path``."""
    with atomic_write(Path(path)) as handle:
        handle.write(render(metrics, images).encode("utf-8"))
    return Path(path)
