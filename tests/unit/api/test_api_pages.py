"""The reading-room page, server-rendered: the queue with its rows and filters, claim ->
exam -> decision -> back to the queue through plain forms, the blinded notice, the admin
page. Browser behaviour (keyboard shortcuts) is for the Playwright tests."""

from __future__ import annotations

import re

from api_site import Site


def _rows(html: str) -> list[str]:
    return re.findall(r'data-testid="queue-row" data-exam-id="([^"]+)"', html)


def test_queue_page_lists_rows_in_policy_order_with_category_and_mode(site: Site) -> None:
    low, top = site.exam(1, 2), site.exam(2, 10)
    anna, _ = site.login("anna")
    html = anna.get("/").text
    assert _rows(html) == [str(top), str(low)]
    assert 'data-category="10"' in html and 'data-mode="double"' in html
    assert 'data-testid="queue-total" data-total="2"' in html
    assert 'data-testid="shortcut-help"' in html
    assert html.count('data-testid="queue-tab"') == 6
    assert "/static/app.js" in html and "//cdn" not in html


def test_claim_open_decide_and_return_through_the_page(site: Site) -> None:
    exam = site.exam(1, 2)
    anna, csrf = site.login("anna")
    opened = anna.post(f"/ui/exams/{exam}/claim", data={"csrf_token": csrf})
    page = anna.get(opened.headers["location"])
    assert page.status_code == 200
    for testid in ("pacs-notice", "decision-form", "decide-submit", "release", "model-sha256"):
        assert f'data-testid="{testid}"' in page.text, testid
    assert "diagnostic read happens in the PACS viewer" in page.text
    decided = anna.post(
        f"/ui/exams/{exam}/decision",
        data={"csrf_token": csrf, "recall": "false", "birads": "1", "note": ""},
    )
    assert decided.status_code == 303 and decided.headers["location"] == "/"
    queue = anna.get("/").text
    assert 'data-testid="flash"' in queue and _rows(queue) == []


def test_the_page_says_when_a_double_reading_is_blinded(site: Site) -> None:
    exam = site.exam(1, 8)
    anna, csrf = site.login("anna")
    anna.post(f"/ui/exams/{exam}/claim", data={"csrf_token": csrf})
    anna.post(
        f"/ui/exams/{exam}/decision",
        data={"csrf_token": csrf, "recall": "true", "note": "spiculated R"},
    )
    ben, b_csrf = site.login("ben")
    ben.post(f"/ui/exams/{exam}/claim", data={"csrf_token": b_csrf})
    html = ben.get(f"/ui/exams/{exam}").text
    assert 'data-testid="blinded-notice"' in html and "spiculated" not in html


def test_a_bad_decision_form_is_422_on_an_error_page(site: Site) -> None:
    exam = site.exam(1, 2)
    anna, csrf = site.login("anna")
    anna.post(f"/ui/exams/{exam}/claim", data={"csrf_token": csrf})
    answer = anna.post(
        f"/ui/exams/{exam}/decision", data={"csrf_token": csrf, "recall": "true", "birads": "9"}
    )
    assert answer.status_code == 422 and 'data-testid="error-message"' in answer.text


def test_admin_page_shows_stats_readers_and_policy(site: Site) -> None:
    site.exam(1, 4)
    root, _ = site.login("root")
    html = root.get("/admin").text
    assert 'data-testid="stat-waiting">1<' in html
    assert html.count('data-testid="reader"') == 5
    assert "test-1" in html
    assert 'data-testid="claim"' not in root.get("/").text  # admins look, they do not read


def test_logout_ends_the_session(site: Site) -> None:
    anna, csrf = site.login("anna")
    assert anna.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert anna.get("/worklist").status_code == 401
