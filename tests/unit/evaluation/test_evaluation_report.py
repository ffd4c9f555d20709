"""What evaluate writes: the join's leftovers listed, one offline HTML page, a JSON file
without NaN, and site-calibrated sidecars."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest
from evaluation_builders import SHA, exam_row, write_outcomes, write_scores

from mammotriage import defaults
from mammotriage.backfill.schema import FAILED
from mammotriage.errors import ConfigError
from mammotriage.evaluation import evaluate
from mammotriage.evaluation.calibration import DEVICE_PSI_LIMIT, categories_of, slug
from mammotriage.infer.calibrate import decile_thresholds
from mammotriage.infer.scores import category_of
from mammotriage.sidecar import DEMONSTRATION_NOTICE, Sidecar, load_sidecar, sha256_of


def run(root, rows, outcomes, header=None, **options):
    scores = write_scores(root / "scores", [rows])
    path = write_outcomes(root / "outcomes.csv", outcomes, header=header)
    options.setdefault("n_boot", 50)
    return evaluate(scores, path, root / "report", policy=defaults.policy_path(), **options)


def scored_rows(n, station="A", offset=0.0, step=1.0):
    return [
        exam_row(f"{station}{i:03d}", offset + step * (i % 100), 1 + (i % 10), station_name=station)
        for i in range(n)
    ]


def test_unmatched_exams_and_outcomes_are_counted_listed_and_written(tmp_path):
    rows = [exam_row(f"e{i}", 10.0 * i, 1 + i) for i in range(6)]
    outcomes = [
        ("e0", 0, 0, 0),
        ("e2", 1, 0, 1),
        ("e4", 0, 0, 0),
        ("e5", 0, 1, 0),
        ("x9", 0, 0, 0),
        ("x7", 1, 0, 1),
    ]
    result = run(tmp_path, rows, outcomes)
    m = result.metrics
    assert (m["exams"]["with_outcome"], m["exams"]["without_outcome"]) == (4, 2)
    assert m["join"]["exams_without_outcome"] == {"count": 2, "first": ["e1", "e3"]}
    assert m["join"]["outcomes_without_exam"] == {"count": 2, "first": ["x9", "x7"]}
    report = tmp_path / "report"
    exams = pd.read_csv(report / m["files"]["exams_without_outcome"])
    assert exams["exam_id"].tolist() == ["e1", "e3"]
    assert exams["accession_number"].tolist() == ["ACC-e1", "ACC-e3"]
    orphans = pd.read_csv(report / m["files"]["outcomes_without_exam"])
    assert orphans.to_dict("list") == {"exam_id": ["x9", "x7"], "line": [6, 7]}
    # Left out of the outcome figures (2 cancers of 4 matched exams), kept in the workload
    assert m["outcomes"]["cancers"] == 2 and m["auc"]["exams"] == 4
    assert m["workload"]["reads_double_reading_all"] == 12
    html = (report / "report.html").read_text()
    assert "x9" in html and "e1" in html and "outcomes-without-exam.csv" in html


def test_join_on_accession_number(tmp_path):
    rows = [exam_row(f"e{i}", 10.0 * i, 1 + i) for i in range(4)]
    rows[3]["accession_number"] = None  # cannot match anything: listed, not lost
    outcomes = [("ACC-e0", 0, 0), ("ACC-e1", 1, 0), ("ACC-e2", 0, 0), ("ACC-zz", 0, 0)]
    header = ("accession_number", "screen_detected_cancer", "interval_cancer")
    m = run(tmp_path, rows, outcomes, header=header).metrics
    assert m["inputs"]["outcome_key"] == "accession_number"
    assert m["exams"]["with_outcome"] == 3
    assert m["join"]["exams_without_outcome"]["first"] == ["e3"]
    assert m["join"]["outcomes_without_exam"]["first"] == ["ACC-zz"]
    assert m["outcomes"]["recall_known"] == 0


def test_accession_number_shared_by_two_exams_is_refused(tmp_path):
    rows = [
        exam_row("e0", 10.0, 1, accession_number="A"),
        exam_row("e1", 20.0, 2, accession_number="A"),
    ]
    header = ("accession_number", "screen_detected_cancer", "interval_cancer")
    with pytest.raises(
        ConfigError, match=r"1 accession number\(s\) belong to more than one exam.*'A'"
    ):
        run(tmp_path, rows, [("A", 0, 0)], header=header)


def test_no_matching_exam_at_all_is_an_error_naming_both_sides(tmp_path):
    with pytest.raises(ConfigError, match="no exam of .* has an outcome .*joined on exam_id"):
        run(tmp_path, [exam_row("e0", 10.0, 1)], [("E0", 0, 0, 0)])


def test_report_is_one_offline_page_with_embedded_images_and_the_notice(tmp_path):
    rows = scored_rows(60) + [exam_row("u1", None, None, status=FAILED, reason="boom")]
    outcomes = [(r["exam_id"], int(i % 9 == 0), int(i % 13 == 0), 0) for i, r in enumerate(rows)]
    result = run(tmp_path, rows, outcomes)
    html = result.report.read_text()
    assert re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I) is None
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert "@import" not in html and "url(" not in html
    images = re.findall(r'<img[^>]*src="([^"]+)"', html)
    assert len(images) == 3  # ROC, workload curve, devices
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    # the notice comes first, before any figure
    assert html.index(DEMONSTRATION_NOTICE) < html.index("<h1>")
    assert result.metrics["notice"] == DEMONSTRATION_NOTICE
    for words in (SHA, "crd-2024.2", "24 months", "61", "How to read this"):
        assert words in html


def test_no_notice_for_a_model_that_is_not_a_demonstration(tmp_path):
    rows = [exam_row(f"e{i}", 10.0 * i, 1 + i, demonstration_model=False) for i in range(5)]
    result = run(tmp_path, rows, [(f"e{i}", int(i == 4), 0, 0) for i in range(5)])
    assert result.metrics["notice"] is None
    assert DEMONSTRATION_NOTICE not in result.report.read_text()


def test_metrics_json_has_no_nan_even_where_figures_are_undefined(tmp_path):
    # No cancer at all: AUC, sensitivity and every cancer share are undefined.
    rows = [exam_row(f"e{i}", 10.0 * i, 1 + i) for i in range(4)]
    result = run(tmp_path, rows, [(f"e{i}", 0, 0, 0) for i in range(4)])
    text = result.metrics_file.read_text()
    assert "NaN" not in text and "Infinity" not in text
    metrics = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"))
    assert metrics["auc"]["value"] is None and metrics["auc"]["ci95"] is None
    assert metrics["double_reading"]["sensitivity"]["value"] is None
    assert metrics == result.metrics


def test_scores_of_two_models_are_refused(tmp_path):
    rows = [exam_row("e0", 10.0, 1), exam_row("e1", 20.0, 2, model_sha256="cd" * 32)]
    with pytest.raises(ConfigError, match="made by 2 models"):
        run(tmp_path, rows, [("e0", 0, 0, 0), ("e1", 0, 0, 0)])


def test_scores_folder_without_exam_files_is_refused(tmp_path):
    (tmp_path / "scores").mkdir()
    outcomes = write_outcomes(tmp_path / "o.csv", [("e0", 0, 0, 0)])
    with pytest.raises(ConfigError, match="holds no exams/part-"):
        evaluate(tmp_path / "scores", outcomes, tmp_path / "r", policy=defaults.policy_path())


# -- site-calibrated sidecars -----------------------------------------------------------


@pytest.fixture
def packaged():
    model = defaults.model_path()
    sidecar = model.with_suffix(".json")
    before = sidecar.read_bytes()
    yield model, load_sidecar(model).sha256
    assert sidecar.read_bytes() == before, "the packaged sidecar was modified"


def test_sidecars_for_the_site_and_for_a_shifted_device(tmp_path, packaged):
    model, sha = packaged
    # Station A (most exams): scores 0-99; station B: 60 exams squeezed into 50-79.5 (a
    # detector whose images score differently), so B's exams crowd into a few of the site's
    # categories (PSI about 3.9) while A's fit the site's (about 0.03); station C: 5 exams.
    rows = scored_rows(400, "A") + scored_rows(60, "B", offset=50.0, step=0.5)
    rows += scored_rows(5, "C")
    for row in rows:
        row["model_sha256"] = sha
    outcomes = [(r["exam_id"], 0, 0, 0) for r in rows]
    out = tmp_path / "sidecars"
    m = run(tmp_path, rows, outcomes, sidecar_out=out, model=model).metrics
    scores = np.array([r["score"] for r in rows])
    site = Sidecar.model_validate_json((out / "site.json").read_text())
    assert site.calibration.thresholds == decile_thresholds(scores)
    assert site.calibration.exams == 465
    assert site.sha256 == sha and site.preprocess == load_sidecar(model).preprocess
    b_scores = scores[[r["station_name"] == "B" for r in rows]]
    b_file = out / f"device-{slug('ACME / Senograph / B')}.json"
    assert b_file.name == "device-acme-senograph-b.json"
    b = Sidecar.model_validate_json(b_file.read_text())
    assert b.calibration.thresholds == decile_thresholds(b_scores)
    written = {w["scope"]: w for w in m["sidecars"]["written"]}
    assert set(written) == {"site", "ACME / Senograph / B"}
    assert written["ACME / Senograph / B"]["psi"] > DEVICE_PSI_LIMIT
    checked = {c["device"]: c for c in m["sidecars"]["devices_checked"]}
    assert checked["ACME / Senograph / A"]["written"] is False
    assert checked["ACME / Senograph / A"]["psi"] < DEVICE_PSI_LIMIT
    assert checked["ACME / Senograph / C"]["why"] == "fewer than 20 scored exams"
    assert sorted(p.name for p in out.iterdir()) == ["device-acme-senograph-b.json", "site.json"]
    html = (tmp_path / "report" / "report.html").read_text()
    assert "device-acme-senograph-b.json" in html and "site.json" in html


def test_sidecars_refuse_a_model_that_did_not_make_the_scores(tmp_path, packaged):
    model, _ = packaged
    rows = scored_rows(30)  # model_sha256 is SHA, not the packaged model's
    with pytest.raises(ConfigError, match="give --model the .onnx that made them"):
        run(
            tmp_path,
            rows,
            [(r["exam_id"], 0, 0, 0) for r in rows],
            sidecar_out=tmp_path / "s",
            model=model,
        )


def test_sidecars_never_go_into_the_packaged_folder(tmp_path, packaged):
    model, sha = packaged
    rows = [{**r, "model_sha256": sha} for r in scored_rows(30)]
    with pytest.raises(ConfigError, match="packaged demonstration model's folder"):
        run(
            tmp_path,
            rows,
            [(r["exam_id"], 0, 0, 0) for r in rows],
            sidecar_out=model.parent,
            model=model,
        )
    assert not (model.parent / "site.json").exists()


def test_categories_of_places_scores_as_inference_does():
    cuts = (1.0, 2.0, 2.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)
    scores = np.array([0.0, 1.0, 1.5, 2.0, 2.5, 9.0, 9.5, 100.0])
    assert categories_of(scores, cuts).tolist() == [category_of(s, cuts) for s in scores]


def test_sha_helper_matches_the_packaged_model(packaged):
    model, sha = packaged
    assert sha256_of(model) == sha
