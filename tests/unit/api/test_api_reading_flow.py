"""The reading API end to end on a real store: the queue in policy order, claim, decide,
release, blinded double reading, consensus, expired claims, and the audit trail."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from api_site import NOW, STUDY_ROOT, Site
from mammotriage.worklist.models import AuditRow


def test_worklist_lists_exams_in_policy_order_with_their_rule(site: Site) -> None:
    low = site.exam(1, 2, timedelta(hours=3))
    top = site.exam(2, 10, timedelta(minutes=10))
    mid = site.exam(3, 7, timedelta(hours=2))
    anna, _ = site.login("anna")
    body = anna.get("/worklist").json()
    assert [item["exam_id"] for item in body["items"]] == [str(top), str(mid), str(low)]
    assert body["total"] == 3
    assert body["oldest_waiting_seconds"] == 3 * 3600
    first = body["items"][0]
    assert (first["category"], first["mode"], first["priority"]) == (10, "double", True)
    assert body["items"][2]["rule"].startswith("category 2 <= 5")
    assert body["items"][2]["waiting_seconds"] == 3 * 3600


def test_worklist_filters_by_queue_and_pages(site: Site) -> None:
    for n, category in enumerate((1, 3, 6, 8, 10)):
        site.exam(n, category)
    anna, _ = site.login("anna")
    assert anna.get("/worklist", params={"queue": "single"}).json()["total"] == 2
    assert anna.get("/worklist", params={"queue": "double"}).json()["total"] == 3
    assert anna.get("/worklist", params={"queue": "priority"}).json()["total"] == 1
    page = anna.get("/worklist", params={"offset": 1, "limit": 2}).json()
    assert (len(page["items"]), page["total"], page["offset"]) == (2, 5, 1)
    assert anna.get("/worklist", params={"queue": "nonsense"}).status_code == 422


def test_claim_then_decide_reads_a_single_reading_exam(site: Site) -> None:
    exam = site.exam(1, 2)
    anna, csrf = site.login("anna")
    headers = {"X-CSRF-Token": csrf}
    claimed = anna.post(f"/exams/{exam}/claim", headers=headers)
    assert claimed.status_code == 200
    assert claimed.json()["expires_at"].startswith("2024-03-11T12:20")
    assert anna.get("/worklist", params={"queue": "mine"}).json()["total"] == 1
    ben, ben_csrf = site.login("ben")
    assert ben.post(f"/exams/{exam}/claim", headers={"X-CSRF-Token": ben_csrf}).status_code == 409
    decided = anna.post(
        f"/exams/{exam}/decision", json={"recall": False, "birads": 1}, headers=headers
    )
    assert decided.json() == {"status": "read", "decisions": 1, "readers_needed": 1}
    assert anna.get("/worklist").json()["total"] == 0


def test_release_gives_the_exam_back(site: Site) -> None:
    exam = site.exam(1, 2)
    anna, csrf = site.login("anna")
    anna.post(f"/exams/{exam}/claim", headers={"X-CSRF-Token": csrf})
    assert anna.post(f"/exams/{exam}/release", headers={"X-CSRF-Token": csrf}).status_code == 204
    ben, ben_csrf = site.login("ben")
    assert ben.post(f"/exams/{exam}/claim", headers={"X-CSRF-Token": ben_csrf}).status_code == 200


def test_deciding_without_a_claim_conflicts_and_unknown_exam_is_404(site: Site) -> None:
    exam = site.exam(1, 2)
    anna, csrf = site.login("anna")
    headers = {"X-CSRF-Token": csrf}
    answer = anna.post(f"/exams/{exam}/decision", json={"recall": True}, headers=headers)
    assert answer.status_code == 409
    assert "claim" in answer.json()["detail"]
    assert anna.post(f"/exams/{uuid.uuid4()}/claim", headers=headers).status_code == 404


def test_birads_outside_0_to_6_is_422(site: Site) -> None:
    exam = site.exam(1, 2)
    anna, csrf = site.login("anna")
    headers = {"X-CSRF-Token": csrf}
    anna.post(f"/exams/{exam}/claim", headers=headers)
    bad = anna.post(f"/exams/{exam}/decision", json={"recall": True, "birads": 7}, headers=headers)
    assert bad.status_code == 422


def test_double_reading_is_blinded_until_both_readers_decided(site: Site) -> None:
    exam = site.exam(1, 8)
    anna, a_csrf = site.login("anna")
    ben, b_csrf = site.login("ben")
    anna.post(f"/exams/{exam}/claim", headers={"X-CSRF-Token": a_csrf})
    anna.post(
        f"/exams/{exam}/decision",
        json={"recall": True, "birads": 4, "note": "spiculated mass L"},
        headers={"X-CSRF-Token": a_csrf},
    )
    again = anna.post(f"/exams/{exam}/claim", headers={"X-CSRF-Token": a_csrf})
    assert again.status_code == 409  # the second reader cannot be the first
    ben.post(f"/exams/{exam}/claim", headers={"X-CSRF-Token": b_csrf})
    seen = ben.get(f"/exams/{exam}")
    assert seen.status_code == 200
    assert seen.json()["decisions"] == [] and seen.json()["blinded"] is True
    assert "spiculated" not in seen.text
    ben.post(f"/exams/{exam}/decision", json={"recall": True}, headers={"X-CSRF-Token": b_csrf})
    after = ben.get(f"/exams/{exam}").json()
    assert {d["reader"] for d in after["decisions"]} == {"anna", "ben"}
    assert after["blinded"] is False and after["status"] == "read"


def test_disagreement_goes_to_the_consensus_queue_of_both_first_readers(site: Site) -> None:
    exam = site.exam(1, 7)
    readers = {}
    for name, recall in (("anna", True), ("ben", False)):
        client, csrf = site.login(name)
        readers[name] = (client, {"X-CSRF-Token": csrf})
        client.post(f"/exams/{exam}/claim", headers=readers[name][1])
        last = client.post(
            f"/exams/{exam}/decision", json={"recall": recall}, headers=readers[name][1]
        )
    assert last.json()["status"] == "consensus"
    carl, csrf = site.login("carl")
    assert carl.get("/worklist", params={"queue": "consensus"}).json()["items"] == []
    assert carl.post(f"/exams/{exam}/claim", headers={"X-CSRF-Token": csrf}).status_code == 409
    for client, headers in readers.values():
        queue = client.get("/worklist", params={"queue": "consensus"}).json()
        assert [item["exam_id"] for item in queue["items"]] == [str(exam)]
        client.post(f"/exams/{exam}/claim", headers=headers)
        shown = client.get(f"/exams/{exam}").json()
        assert {d["reader"] for d in shown["decisions"] if not d["consensus"]} == {"anna", "ben"}
        done = client.post(f"/exams/{exam}/decision", json={"recall": True}, headers=headers)
    assert done.json()["status"] == "read"


def test_an_abandoned_claim_times_out_and_another_reader_may_claim(site: Site) -> None:
    exam = site.exam(1, 2)
    anna, a_csrf = site.login("anna")
    ben, b_csrf = site.login("ben")
    anna.post(f"/exams/{exam}/claim", headers={"X-CSRF-Token": a_csrf})
    assert ben.post(f"/exams/{exam}/claim", headers={"X-CSRF-Token": b_csrf}).status_code == 409
    site.clock.now = NOW + timedelta(minutes=21)  # claim_timeout_minutes is 20
    assert ben.post(f"/exams/{exam}/claim", headers={"X-CSRF-Token": b_csrf}).status_code == 200
    late = anna.post(
        f"/exams/{exam}/decision", json={"recall": False}, headers={"X-CSRF-Token": a_csrf}
    )
    assert late.status_code == 409


def test_views_claims_and_decisions_are_audited(site: Site) -> None:
    exam = site.exam(1, 2)
    anna, csrf = site.login("anna")
    headers = {"X-CSRF-Token": csrf}
    anna.post(f"/exams/{exam}/claim", headers=headers)
    anna.get(f"/exams/{exam}")
    anna.post(f"/exams/{exam}/decision", json={"recall": False, "note": "ok"}, headers=headers)
    with site.store.db.session() as session:
        rows = session.execute(
            select(AuditRow.actor, AuditRow.action, AuditRow.exam_public_id, AuditRow.detail)
            .where(AuditRow.exam_public_id == exam)
            .order_by(AuditRow.id)
        ).all()
    assert [(r.actor, r.action) for r in rows] == [
        ("anna", "claimed"),
        ("anna", "exam-viewed"),
        ("anna", "decided"),
    ]
    assert rows[2].detail["recall"] is False and "note" not in rows[2].detail


def test_no_study_uid_appears_in_worklist_urls_or_bodies(site: Site) -> None:
    for n, category in enumerate((2, 7, 10)):
        site.exam(n, category)
    anna, csrf = site.login("anna")
    root, _ = site.login("root")
    bodies = [anna.get("/worklist").text, root.get("/worklist").text, anna.get("/").text]
    exam_id = anna.get("/worklist").json()["items"][0]["exam_id"]
    answer = anna.post(f"/ui/exams/{exam_id}/claim", data={"csrf_token": csrf})
    bodies += [answer.headers["location"], anna.get(answer.headers["location"]).text]
    for body in bodies:
        assert STUDY_ROOT not in body
