"""The screening decision (issue 14, part 4): the site's decision categories and reasons in
the form and the API (any other refused), stored as chosen, the readers' agreement decided on
recall; back on the queue the next unread exam is offered, the rule is in a reader's words,
the claim's expiry is a machine-readable time, the keyboard help comes before the rows."""

from __future__ import annotations

import re
import uuid

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from api_site import Site, make_site
from mammotriage.api.settings import ApiSettings
from mammotriage.worklist.models import AuditRow

#: A site with its own categories: no recall, and a recall with two reasons, one required.
SITE_CATEGORIES = [
    {"code": "normal", "label": "Normal: routine recall in 3 years", "outcome": "no-recall"},
    {
        "code": "assess",
        "label": "Recall to assessment clinic",
        "outcome": "recall",
        "reason_required": True,
        "reasons": [
            {"code": "mass", "label": "Mass"},
            {"code": "calc", "label": "Calcification"},
        ],
    },
]


def _holding(site: Site, name: str, exam: uuid.UUID) -> tuple[object, dict[str, str]]:
    client, csrf = site.login(name)
    headers = {"X-CSRF-Token": csrf}
    assert client.post(f"/exams/{exam}/claim", headers=headers).status_code == 200
    return client, headers


def test_the_form_offers_exactly_the_configured_categories_and_no_birads(site: Site) -> None:
    custom = make_site(site.store, decision_categories=SITE_CATEGORIES)
    exam = custom.exam(1, 2)
    client, _ = _holding(custom, "anna", exam)
    html = client.get(f"/ui/exams/{exam}").text
    assert re.findall(r'name="category" value="([^"]+)"', html) == ["normal", "assess"]
    assert re.findall(r'name="reason" value="([^"]+)"', html) == ["assess:mass", "assess:calc"]
    assert "Recall to assessment clinic" in html and "BI-RADS" not in html
    assert 'name="birads"' not in html


def test_the_default_categories_are_recall_no_recall_and_technical_recall(site: Site) -> None:
    exam = site.exam(1, 2)
    client, _ = _holding(site, "anna", exam)
    html = client.get(f"/ui/exams/{exam}").text
    assert re.findall(r'data-outcome="([^"]+)"', html) == [
        "no-recall",
        "recall",
        "technical-recall",
    ]
    for reason in ("mass", "calcifications", "architectural-distortion", "asymmetry"):
        assert f'value="recall:{reason}"' in html


def test_the_page_stores_the_category_and_its_reasons_only(site: Site) -> None:
    custom = make_site(site.store, decision_categories=SITE_CATEGORIES)
    exam = custom.exam(1, 2)
    client, headers = _holding(custom, "anna", exam)
    # A reason ticked under another category (changed one's mind) is dropped.
    form = {
        "csrf_token": headers["X-CSRF-Token"],
        "category": "assess",
        "reason": ["assess:calc", "normal:mass"],
    }
    answer = client.post(f"/ui/exams/{exam}/decision", data=form)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    (decision,) = client.get(f"/exams/{exam}").json()["decisions"]
    assert decision["recall"] is True and decision["outcome"] == "recall"
    assert decision["category"] == "assess" and decision["reasons"] == ["calc"]
    assert "Recall to assessment clinic (Calcification)" in client.get(f"/ui/exams/{exam}").text
    with custom.store.db.session() as session:
        detail = session.execute(
            select(AuditRow.detail).where(
                AuditRow.exam_public_id == exam, AuditRow.action == "decided"
            )
        ).scalar_one()
    assert detail["category"] == "assess" and detail["reasons"] == ["calc"]


#: Decisions the site above does not offer, each refused.
REFUSED: list[dict[str, object]] = [
    {"category": "birads-6"},
    {"category": "assess", "reasons": ["asymmetry"]},
    {"category": "assess"},  # its reason is required
    {"category": "normal", "reasons": ["mass"]},
    {"category": "assess", "reasons": ["mass"], "recall": False},
    {"reasons": ["mass"], "recall": True},
    {},
]


def test_the_api_refuses_what_the_site_does_not_offer(site: Site) -> None:
    custom = make_site(site.store, decision_categories=SITE_CATEGORIES)
    exam = custom.exam(1, 2)
    client, headers = _holding(custom, "anna", exam)
    for body in REFUSED:
        answer = client.post(f"/exams/{exam}/decision", json=body, headers=headers)
        assert answer.status_code == 422, (body, answer.text)
        assert isinstance(answer.json()["detail"], list)  # the shape of any invalid body
    assert client.get(f"/exams/{exam}").json()["decisions"] == []  # nothing recorded


@pytest.mark.parametrize(
    ("second", "status"),
    [("technical-recall", "read"), ("no-recall", "consensus")],
)
def test_readers_agree_on_recall_whichever_recall_they_chose(
    site: Site, second: str, status: str
) -> None:
    exam = site.exam(1, 8)  # double reading
    for name, category in (("anna", "recall"), ("ben", second)):
        client, headers = _holding(site, name, exam)
        body = {"category": category, "reasons": ["mass"] if category == "recall" else []}
        answer = client.post(f"/exams/{exam}/decision", json=body, headers=headers)
        assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == status


@pytest.mark.parametrize(
    ("categories", "message"),
    [
        ([SITE_CATEGORIES[0], SITE_CATEGORIES[0]], "codes repeat"),
        ([SITE_CATEGORIES[1], {**SITE_CATEGORIES[1], "code": "other"}], "no-recall"),
        ([SITE_CATEGORIES[0], {**SITE_CATEGORIES[1], "outcome": "birads-6"}], "outcome"),
        ([SITE_CATEGORIES[0], {**SITE_CATEGORIES[1], "code": "Has Space"}], "code"),
    ],
)
def test_wrong_categories_are_refused_at_load(categories: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ApiSettings(environment="development", decision_categories=categories)


def test_after_a_decision_the_queue_offers_the_next_unread_exam_not_the_consensus(
    site: Site,
) -> None:
    disputed = site.exam(1, 9)
    for name, recall in (("anna", True), ("ben", False)):
        client, headers = _holding(site, name, disputed)
        client.post(f"/exams/{disputed}/decision", json={"recall": recall}, headers=headers)
    done, unread = site.exam(2, 4), site.exam(3, 3)
    client, headers = _holding(site, "anna", done)
    form = {"csrf_token": headers["X-CSRF-Token"], "category": "no-recall"}
    assert client.post(f"/ui/exams/{done}/decision", data=form).status_code == 303
    html = client.get("/").text
    rows = re.findall(r'data-exam-id="([^"]+)"[^>]*data-status="([^"]+)"', html)
    assert rows[0] == (str(disputed), "consensus")  # first in order: the highlighted one
    assert f'action="/ui/exams/{unread}/claim" class="inline" data-testid="next-unread-form"' in (
        html
    )
    assert html.count('data-next-unread="true"') == 1
    # Only right after a decision.
    assert 'data-testid="next-unread-form"' not in client.get("/").text


def test_queue_rule_in_words_help_first_and_the_order_explained(site: Site) -> None:
    site.exam(1, 3)
    site.exam(2, 10)
    client, _ = site.login("anna")
    html = client.get("/").text
    rules = re.findall(r'title="([^"]+)" data-testid="queue-rule">([^<]+)</td>', html)
    assert rules == [
        (
            "category 10 &gt; 5: double reading; category 10 &gt;= 10: priority",
            "read first: category 10 (double reading)",
        ),
        ("category 3 &lt;= 5: single reading", "single reading: category 3"),
    ]
    assert html.index('data-testid="shortcut-help"') < html.index('data-testid="queue-row"')
    assert "within a category the longest wait first" in html


def test_the_claim_expiry_is_a_time_the_browser_shows_locally(site: Site) -> None:
    exam = site.exam(1, 2)
    client, _ = _holding(site, "anna", exam)
    expires = client.get(f"/exams/{exam}").json()["claim_expires_at"]
    html = client.get(f"/ui/exams/{exam}").text
    match = re.search(
        r'<time datetime="([^"]+)" data-local-time="time">(\d\d:\d\d) UTC</time>', html
    )
    assert match, "no machine-readable expiry"
    assert match.group(1)[:16] == expires[:16] and match.group(2) == expires[11:16]


def test_the_earlier_forms_recall_field_is_a_decision_without_a_category(site: Site) -> None:
    exam = site.exam(1, 2)
    client, headers = _holding(site, "anna", exam)
    form = {"csrf_token": headers["X-CSRF-Token"], "recall": "true"}
    assert client.post(f"/ui/exams/{exam}/decision", data=form).status_code == 303
    (decision,) = client.get(f"/exams/{exam}").json()["decisions"]
    assert (decision["recall"], decision["category"], decision["reasons"]) == (True, None, [])
    assert "Decision recorded (recall); exam now read." in client.get("/").text
