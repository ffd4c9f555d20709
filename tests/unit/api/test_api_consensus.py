"""Consensus through the API and the page, as the policy's ``consensus`` says: the 409 says
why a reader may not take the consensus, the queue shows it only to those who may, and the
exam shows who recorded the consensus."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from api_site import POLICY, Site
from mammotriage.api.app import create_app
from mammotriage.triage import ConsensusMode

Reader = tuple[TestClient, dict[str, str]]


def under(site: Site, consensus: ConsensusMode) -> Site:
    """The site served under the test policy with another consensus mode."""
    policy = POLICY.model_copy(update={"consensus": consensus})
    site.app = create_app(site.settings, store=site.store, policy=policy, clock=site.clock)
    return site


def readers(site: Site) -> dict[str, Reader]:
    out = {}
    for name in ("anna", "ben", "carl"):
        client, csrf = site.login(name)
        out[name] = (client, {"X-CSRF-Token": csrf})
    return out


def disagree(site: Site, people: dict[str, Reader]) -> uuid.UUID:
    """A double-reading exam anna recalled and ben did not: in consensus."""
    exam = site.exam(1, 8)
    for name, recall in (("anna", True), ("ben", False)):
        client, headers = people[name]
        assert client.post(f"/exams/{exam}/claim", headers=headers).status_code == 200
        outcome = client.post(f"/exams/{exam}/decision", json={"recall": recall}, headers=headers)
    assert outcome.json()["status"] == "consensus"
    return exam


def consensus_queue(reader: Reader) -> list[str]:
    page = reader[0].get("/worklist", params={"queue": "consensus"}).json()
    return [item["exam_id"] for item in page["items"]]


def claim(reader: Reader, exam: uuid.UUID) -> tuple[int, str]:
    answer = reader[0].post(f"/exams/{exam}/claim", headers=reader[1])
    return answer.status_code, answer.json().get("detail", "")


def decide(reader: Reader, exam: uuid.UUID, recall: bool) -> dict[str, object]:
    answer = reader[0].post(f"/exams/{exam}/decision", json={"recall": recall}, headers=reader[1])
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


def test_default_both_first_readers_record_the_consensus_with_their_names(site: Site) -> None:
    people = readers(site)
    exam = disagree(site, people)
    anna, ben, carl = people["anna"], people["ben"], people["carl"]
    assert consensus_queue(carl) == []
    assert consensus_queue(anna) == consensus_queue(ben) == [str(exam)]
    assert claim(carl, exam) == (
        409,
        "consensus needs both first readers (anna and ben): you were not one of them",
    )
    assert claim(anna, exam)[0] == claim(ben, exam)[0] == 200  # both hold it at once
    assert decide(anna, exam, True) == {"status": "consensus", "decisions": 1, "readers_needed": 2}
    assert anna[0].get(f"/exams/{exam}").json()["consensus_by"] == ["anna"]
    assert decide(ben, exam, True) == {"status": "read", "decisions": 2, "readers_needed": 2}
    shown = ben[0].get(f"/exams/{exam}").json()
    assert shown["consensus_by"] == ["anna", "ben"]
    assert [d["reader"] for d in shown["decisions"] if d["consensus"]] == ["anna", "ben"]
    page = anna[0].get(f"/ui/exams/{exam}")
    assert "Consensus recorded by anna and ben." in page.text


def test_both_readers_a_disagreeing_consensus_leaves_the_exam_in_consensus(site: Site) -> None:
    people = readers(site)
    exam = disagree(site, people)
    anna, ben = people["anna"], people["ben"]
    claim(anna, exam)
    claim(ben, exam)
    decide(anna, exam, True)
    assert decide(ben, exam, False)["status"] == "consensus"
    assert claim(anna, exam)[0] == 200  # each may decide again; the latest counts
    assert decide(anna, exam, False) == {"status": "read", "decisions": 2, "readers_needed": 2}


def test_third_reader_an_arbitrator_decides_and_the_first_readers_may_not(site: Site) -> None:
    people = readers(under(site, ConsensusMode.THIRD_READER))
    exam = disagree(site, people)
    anna, carl = people["anna"], people["carl"]
    assert consensus_queue(anna) == []
    assert consensus_queue(carl) == [str(exam)]
    assert claim(anna, exam) == (409, "an arbitrator reads this consensus: you were a first reader")
    assert claim(carl, exam)[0] == 200
    assert decide(carl, exam, True) == {"status": "read", "decisions": 1, "readers_needed": 1}
    assert carl[0].get(f"/exams/{exam}").json()["consensus_by"] == ["carl"]
    assert "Consensus recorded by carl." in carl[0].get(f"/ui/exams/{exam}").text


def test_either_reader_one_first_reader_closes_it_but_a_third_may_not(site: Site) -> None:
    people = readers(under(site, ConsensusMode.EITHER_READER))
    exam = disagree(site, people)
    ben, carl = people["ben"], people["carl"]
    assert consensus_queue(carl) == []
    status, why = claim(carl, exam)
    assert (status, why.startswith("one of the first readers (anna and ben)")) == (409, True)
    assert claim(ben, exam)[0] == 200
    assert claim(people["anna"], exam) == (
        409,
        "the other first reader holds this consensus reading",
    )
    assert decide(ben, exam, False) == {"status": "read", "decisions": 1, "readers_needed": 1}


def test_the_page_claims_under_the_policy_too(site: Site) -> None:
    people = readers(under(site, ConsensusMode.THIRD_READER))
    exam = disagree(site, people)
    anna, carl = people["anna"], people["carl"]
    csrf = {"csrf_token": anna[1]["X-CSRF-Token"]}
    refused = anna[0].post(f"/ui/exams/{exam}/claim", data=csrf)
    assert refused.status_code == 409
    assert "an arbitrator reads this consensus" in refused.text
    opened = carl[0].post(f"/ui/exams/{exam}/claim", data={"csrf_token": carl[1]["X-CSRF-Token"]})
    assert opened.status_code == 303
    decided = carl[0].post(
        f"/ui/exams/{exam}/decision",
        data={"recall": "false", "csrf_token": carl[1]["X-CSRF-Token"]},
    )
    assert decided.status_code == 303
    assert carl[0].get(f"/exams/{exam}").json()["status"] == "read"
