"""The reading page says "demonstration model, not for clinical use" on an exam whose score
came from the packaged demonstration model (known by its sha256), and not otherwise."""

from __future__ import annotations

import dataclasses

from api_site import NOW, POLICY, STUDY_ROOT, Site, exam_score
from mammotriage import defaults
from mammotriage.sidecar import load_sidecar
from mammotriage.triage import ExamForTriage, decide

NOTICE = 'data-testid="demonstration-notice"'


def _exam_page(site: Site, sha: str, name: str) -> str:
    study = f"{STUDY_ROOT}.42"
    score = dataclasses.replace(exam_score(study, 3), model_sha256=sha, model_name=name)
    triage = ExamForTriage(study, float(score.score or 0), 3, 30, False, NOW)
    exam = site.store.exams.save_score(score, decide(POLICY, triage), NOW)
    anna, csrf = site.login("anna")
    opened = anna.post(f"/ui/exams/{exam}/claim", data={"csrf_token": csrf})
    page = anna.get(opened.headers["location"])
    assert page.status_code == 200
    return page.text


def test_an_exam_scored_by_the_packaged_demonstration_model_says_so(site: Site) -> None:
    shipped = load_sidecar(defaults.model_path())
    assert shipped.demonstration
    html = _exam_page(site, shipped.sha256, shipped.name)
    assert NOTICE in html
    assert "demonstration model, not for clinical use" in html


def test_an_exam_scored_by_another_model_has_no_such_notice(site: Site) -> None:
    assert NOTICE not in _exam_page(site, "b" * 64, "site-model")
