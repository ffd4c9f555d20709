"""Reading rules of the store on SQLite and PostgreSQL: queues per reader, claims, blinded
double reading, consensus, expiry, users and tokens."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from test_store import exam_score

from mammotriage.errors import ConfigError, ConflictError, ForbiddenError, NotFoundError
from mammotriage.triage import ExamForTriage, ReadingMode, TriagePolicy, decide
from mammotriage.worklist import ReadingStatus, Store
from mammotriage.worklist.models import Role

NOW = datetime(2024, 3, 11, 12, 0, tzinfo=timezone.utc)
POLICY = TriagePolicy(version="test-1", max_wait_days=5)


def add_exam(store: Store, study: str, category: int, received: datetime = NOW):
    score = exam_score(study, category)
    triage = ExamForTriage(study, score.score or 0.0, category, 30, False, received)
    return store.exams.save_score(score, decide(POLICY, triage), received)


def test_queue_is_in_policy_order_and_shows_the_rule(store: Store) -> None:
    low = add_exam(store, "1.1", 2)
    high = add_exam(store, "1.2", 10, NOW + timedelta(minutes=5))
    mid = add_exam(store, "1.3", 7)
    page = store.readings.reader_queue("anna", NOW + timedelta(hours=1), POLICY)
    assert [i.exam_id for i in page.items] == [high, mid, low]
    assert page.items[0].priority and page.items[0].mode is ReadingMode.DOUBLE
    assert page.items[2].rule.startswith("category 2 <= 5")
    assert page.total == 3
    assert page.oldest_waiting == timedelta(hours=1)


def test_queue_filters_and_pages(store: Store) -> None:
    for i, category in enumerate((1, 3, 6, 8, 10)):
        add_exam(store, f"2.{i}", category)
    later = NOW + timedelta(minutes=1)
    assert store.readings.reader_queue("anna", later, POLICY, queue="single").total == 2
    assert store.readings.reader_queue("anna", later, POLICY, queue="double").total == 3
    assert store.readings.reader_queue("anna", later, POLICY, queue="priority").total == 1
    page = store.readings.reader_queue("anna", later, POLICY, offset=1, limit=2)
    assert (len(page.items), page.total) == (2, 5)


def test_single_reading_one_reader_at_a_time_then_read(store: Store) -> None:
    exam = add_exam(store, "3.1", 2)
    store.readings.claim(exam, "anna", NOW)
    with pytest.raises(ConflictError, match="claimed by another reader"):
        store.readings.claim(exam, "ben", NOW)
    assert store.readings.reader_queue("ben", NOW, POLICY).total == 0
    assert store.readings.reader_queue("anna", NOW, POLICY, queue="mine").total == 1
    outcome = store.readings.record_decision(exam, "anna", recall=False, now=NOW)
    assert outcome.status is ReadingStatus.READ
    assert store.readings.reader_queue("anna", NOW, POLICY).total == 0


def test_double_reading_is_blinded_until_both_decided(store: Store) -> None:
    exam = add_exam(store, "4.1", 8)
    store.readings.claim(exam, "anna", NOW)
    store.readings.record_decision(exam, "anna", recall=True, birads=4, note="mass L", now=NOW)
    with pytest.raises(ConflictError, match="read this exam already"):
        store.readings.claim(exam, "anna", NOW)
    store.readings.claim(exam, "ben", NOW)
    seen_by_ben = store.readings.exam_detail(exam, "ben", NOW)
    assert seen_by_ben.decisions == ()
    outcome = store.readings.record_decision(exam, "ben", recall=True, now=NOW)
    assert outcome.status is ReadingStatus.READ
    after = store.readings.exam_detail(exam, "ben", NOW)
    assert {(d.reader, d.note) for d in after.decisions} == {("anna", "mass L"), ("ben", None)}


def test_disagreement_goes_to_consensus_which_both_first_readers_end(store: Store) -> None:
    exam = add_exam(store, "5.1", 7)
    for reader, recall in (("anna", True), ("ben", False)):
        store.readings.claim(exam, reader, NOW)
        last = store.readings.record_decision(exam, reader, recall=recall, now=NOW)
    assert last.status is ReadingStatus.CONSENSUS
    (item,) = store.readings.reader_queue("anna", NOW, POLICY, queue="consensus").items
    assert item.exam_id == exam
    with pytest.raises(ConflictError, match="consensus needs both first readers"):
        store.readings.claim(exam, "carl", NOW)  # the default policy's consensus
    store.readings.claim(exam, "anna", NOW)
    shown = store.readings.exam_detail(exam, "anna", NOW)
    assert {d.reader for d in shown.decisions} == {"anna", "ben"}  # consensus sees both
    half = store.readings.record_decision(exam, "anna", recall=True, now=NOW)
    assert half.status is ReadingStatus.CONSENSUS
    store.readings.claim(exam, "ben", NOW)
    done = store.readings.record_decision(exam, "ben", recall=True, now=NOW)
    assert done.status is ReadingStatus.READ
    final = store.readings.exam_detail(exam, "ben", NOW)
    assert [d.consensus for d in final.decisions] == [False, False, True, True]
    assert final.consensus_by == ("anna", "ben")


def test_two_readers_may_hold_a_double_reading_exam_but_not_a_third(store: Store) -> None:
    exam = add_exam(store, "6.1", 9)
    store.readings.claim(exam, "anna", NOW)
    store.readings.claim(exam, "ben", NOW)
    with pytest.raises(ConflictError):
        store.readings.claim(exam, "carl", NOW)


def test_an_abandoned_claim_expires(store: Store) -> None:
    exam = add_exam(store, "7.1", 2)
    expires = store.readings.claim(exam, "anna", NOW)
    assert expires == NOW + store.readings.claim_timeout
    store.readings.claim(exam, "ben", expires + timedelta(seconds=1))
    with pytest.raises(ConflictError, match="claim the exam"):
        store.readings.record_decision(
            exam, "anna", recall=False, now=expires + timedelta(seconds=2)
        )


def test_release_puts_the_exam_back_unread(store: Store) -> None:
    exam = add_exam(store, "8.1", 2)
    store.readings.claim(exam, "anna", NOW)
    store.readings.release(exam, "anna", NOW)
    (item,) = store.readings.reader_queue("ben", NOW, POLICY).items
    assert item.status is ReadingStatus.UNREAD


def test_opening_an_exam_needs_a_claim_and_not_another_readers(store: Store) -> None:
    exam = add_exam(store, "9.1", 3)
    with pytest.raises(ForbiddenError, match="claim the exam"):
        store.readings.exam_detail(exam, "anna", NOW)
    store.readings.claim(exam, "anna", NOW)
    with pytest.raises(ForbiddenError, match="another reader"):
        store.readings.exam_detail(exam, "ben", NOW)
    detail = store.readings.exam_detail(exam, "anna", NOW)
    assert detail.category == 3 and len(detail.images) == 4 and len(detail.findings) == 1
    assert detail.claim_expires_at is not None


def test_unknown_exam_is_not_found(store: Store) -> None:
    import uuid

    with pytest.raises(NotFoundError):
        store.readings.claim(uuid.uuid4(), "anna", NOW)


def test_racing_readers_get_one_claim_of_a_single_reading_exam(store: Store) -> None:
    exam = add_exam(store, "10.1", 1)
    winners, losers = [], []
    barrier = threading.Barrier(4)

    def race(reader: str) -> None:
        barrier.wait()
        try:
            store.readings.claim(exam, reader, NOW)
            winners.append(reader)
        except ConflictError:
            losers.append(reader)

    threads = [threading.Thread(target=race, args=(f"r{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1 and len(losers) == 3


def test_bad_birads_is_refused(store: Store) -> None:
    exam = add_exam(store, "11.1", 1)
    store.readings.claim(exam, "anna", NOW)
    with pytest.raises(ValueError, match="BI-RADS"):
        store.readings.record_decision(exam, "anna", recall=False, birads=9, now=NOW)


def test_stats_count_bands_queues_and_throughput(store: Store) -> None:
    for i, category in enumerate((1, 1, 6, 10)):
        add_exam(store, f"12.{i}", category, NOW - timedelta(hours=i))
    stats = store.readings.queue_stats(NOW, POLICY)
    assert stats.waiting == 4
    assert stats.by_category[1] == 2 and stats.by_category[10] == 1
    assert stats.by_queue.double == 2 and stats.by_queue.priority == 1
    assert stats.waiting_seconds.max == 3 * 3600


def test_users_and_tokens(store: Store) -> None:
    store.users.add("anna", Role.RADIOLOGIST, "argon2-hash")
    with pytest.raises(ConflictError, match="exists"):
        store.users.add("anna", Role.ADMIN, None)
    with pytest.raises(ConfigError):
        store.users.add("Anna Smith", Role.ADMIN, None)
    store.users.add("ris", Role.SERVICE, None)
    store.users.add_token("ris", "f" * 64, "RIS feed")
    user = store.users.for_token("f" * 64)
    assert user is not None and user.username == "ris" and user.role is Role.SERVICE
    assert store.users.for_token("0" * 64) is None
    assert [u.username for u in store.users.all()] == ["anna", "ris"]


def test_a_queue_snapshot_is_shared_but_dropped_by_this_processs_own_changes(
    store: Store, store_url: str
) -> None:
    import time

    store.readings.queue_snapshot_seconds = 60.0
    first = add_exam(store, "13.1", 2)
    assert store.readings.reader_queue("anna", NOW, POLICY).total == 1
    worker = Store(store_url)  # another process: the worker storing a new exam
    try:
        score = exam_score("13.2", 3)
        triage = ExamForTriage("13.2", score.score or 0.0, 3, 30, False, NOW)
        worker.exams.save_score(score, decide(POLICY, triage), NOW)
    finally:
        worker.close()
    assert store.readings.reader_queue("anna", NOW, POLICY).total == 1  # served from the snapshot
    store.readings.claim(first, "ben", NOW)  # our own change: the snapshot goes
    page = store.readings.reader_queue("anna", NOW, POLICY)
    assert page.total == 1 and page.items[0].exam_id != first
    store.readings.queue_snapshot_seconds = 0.05
    time.sleep(0.1)
    assert store.readings.reader_queue("carl", NOW, POLICY).total == 1


def test_each_store_has_its_own_queue_snapshot(store: Store, store_url: str) -> None:
    other = Store(store_url)
    try:
        other.readings.queue_snapshot_seconds = 60.0
        assert store.readings.queue_snapshot_seconds == 0.0
        assert other.readings._snapshots is not store.readings._snapshots
        assert other.readings._snapshots._lock is not store.readings._snapshots._lock
    finally:
        other.close()
