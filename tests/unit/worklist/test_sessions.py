"""Page sessions and token lifecycle in the store: sessions end on logout, when idle, at their
lifetime, and with their user's deactivation or password change; tokens expire, are revoked
by name or all, and record their last use without a write per request."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from mammotriage.errors import NotFoundError
from mammotriage.worklist import Store
from mammotriage.worklist.models import Role, SessionRow
from mammotriage.worklist.sessions import KEEP_ENDED, session_sha256
from mammotriage.worklist.users import SessionEnd

T0 = datetime(2024, 3, 11, 8, 0, tzinfo=timezone.utc)
LIFETIME = timedelta(hours=12)
IDLE = timedelta(minutes=30)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = Store(store_url)
    store.migrate()
    store.users.add("anna", Role.RADIOLOGIST, "hash")
    store.users.add("ben", Role.RADIOLOGIST, "hash")
    store.users.add("ris", Role.SERVICE, None)
    yield store
    store.close()


def _last_seen(store: Store, session_id: str) -> datetime:
    with store.db.session() as session:
        return session.execute(
            select(SessionRow.last_seen_at).where(
                SessionRow.session_sha256 == session_sha256(session_id)
            )
        ).scalar_one()


def test_only_the_session_ids_sha256_is_stored(store: Store) -> None:
    session_id = store.sessions.start("anna", T0, LIFETIME)
    with store.db.session() as session:
        stored = session.execute(select(SessionRow.session_sha256)).scalars().all()
    assert stored == [session_sha256(session_id)] and session_id not in stored
    found = store.sessions.find(session_id, T0, IDLE)
    assert found is not None and found.user.username == "anna"
    assert found.refusal(T0, IDLE) is None and found.expires_at == T0 + LIFETIME
    assert store.sessions.find("not-a-session", T0, IDLE) is None


def test_a_session_ended_by_logout_stays_ended(store: Store) -> None:
    session_id = store.sessions.start("anna", T0, LIFETIME)
    assert store.sessions.end(session_id, T0, SessionEnd.LOGOUT)
    assert not store.sessions.end(session_id, T0, SessionEnd.LOGOUT)  # already ended
    found = store.sessions.find(session_id, T0 + timedelta(seconds=1), IDLE)
    assert found is not None and found.refusal(T0, IDLE) is SessionEnd.LOGOUT
    assert not found.ended_now


def test_an_idle_session_is_ended_once_and_says_so_once(store: Store) -> None:
    session_id = store.sessions.start("anna", T0, LIFETIME)
    late = T0 + IDLE + timedelta(seconds=1)
    first = store.sessions.find(session_id, late, IDLE)
    assert first is not None and first.ended_now and first.end_reason is SessionEnd.IDLE
    again = store.sessions.find(session_id, late, IDLE)
    assert again is not None and not again.ended_now
    assert again.refusal(late, IDLE) is SessionEnd.IDLE
    # Ended for good: a request inside the idle time after that does not bring it back.
    assert again.refusal(T0, IDLE) is SessionEnd.IDLE


def test_requests_keep_a_session_alive_until_its_lifetime(store: Store) -> None:
    session_id = store.sessions.start("anna", T0, LIFETIME)
    now = T0
    while now + timedelta(minutes=20) < T0 + LIFETIME:
        now += timedelta(minutes=20)
        found = store.sessions.find(session_id, now, IDLE)
        assert found is not None and found.refusal(now, IDLE) is None, now
    end = T0 + LIFETIME
    found = store.sessions.find(session_id, end, IDLE)
    assert found is not None and found.ended_now and found.end_reason is SessionEnd.EXPIRED


def test_last_seen_is_written_at_most_once_a_minute(store: Store) -> None:
    session_id = store.sessions.start("anna", T0, LIFETIME)
    store.sessions.find(session_id, T0 + timedelta(seconds=30), IDLE)
    assert _last_seen(store, session_id) == T0
    store.sessions.find(session_id, T0 + timedelta(seconds=61), IDLE)
    assert _last_seen(store, session_id) == T0 + timedelta(seconds=61)


def test_deactivation_and_a_password_change_end_every_session_of_the_user(store: Store) -> None:
    annas = [store.sessions.start("anna", T0, LIFETIME) for _ in range(2)]
    bens = store.sessions.start("ben", T0, LIFETIME)
    assert store.users.set_active("anna", active=False, now=T0) == 2
    for session_id in annas:
        found = store.sessions.find(session_id, T0, IDLE)
        assert found is not None and found.refusal(T0, IDLE) is SessionEnd.DEACTIVATED
    store.users.set_active("anna", active=True)
    found = store.sessions.find(annas[0], T0, IDLE)
    assert found is not None and found.refusal(T0, IDLE) is SessionEnd.DEACTIVATED

    assert store.users.set_password("ben", "new hash", T0) == 1
    found = store.sessions.find(bens, T0, IDLE)
    assert found is not None and found.refusal(T0, IDLE) is SessionEnd.PASSWORD_CHANGED
    user = store.users.get("ben")
    assert user is not None and user.password_hash == "new hash"


def test_end_all_and_the_open_counts(store: Store) -> None:
    store.sessions.start("anna", T0, LIFETIME)
    store.sessions.start("anna", T0, LIFETIME)
    store.sessions.start("ben", T0 - timedelta(hours=1), LIFETIME)  # idle by T0
    assert store.sessions.open_counts(T0, IDLE) == {"anna": 2}
    assert store.sessions.end_all("anna", T0, SessionEnd.REVOKED) == 2
    assert store.sessions.open_counts(T0, IDLE) == {}
    with pytest.raises(NotFoundError, match="no user 'nobody'"):
        store.sessions.end_all("nobody", T0, SessionEnd.REVOKED)


def test_a_token_expires_and_is_revoked_by_name_or_all(store: Store) -> None:
    store.users.add_token("ris", "a" * 64, "feed", expires_at=T0 + timedelta(days=90))
    store.users.add_token("ris", "b" * 64, "monitoring")
    store.users.add_token("ris", "c" * 64, "spare")
    feed = store.users.bearer("a" * 64, T0)
    assert feed is not None and feed.token.refusal(T0) is None and feed.user.username == "ris"
    assert feed.token.refusal(T0 + timedelta(days=90)) == "expired"
    assert store.users.bearer("0" * 64, T0) is None

    assert store.users.revoke_tokens("ris", T0, "monitoring") == 1
    monitoring = store.users.bearer("b" * 64, T0)
    assert monitoring is not None and monitoring.token.refusal(T0) == "revoked"
    with pytest.raises(NotFoundError, match="no unrevoked token named 'monitoring'"):
        store.users.revoke_tokens("ris", T0, "monitoring")
    assert store.users.revoke_tokens("ris", T0) == 2
    assert all(t.revoked_at == T0 for t in store.users.tokens("ris"))


def test_a_tokens_last_use_is_written_at_most_once_a_minute(store: Store) -> None:
    store.users.add_token("ris", "a" * 64, "feed")
    store.users.bearer("a" * 64, T0)
    store.users.bearer("a" * 64, T0 + timedelta(seconds=30))
    assert [t.last_used_at for t in store.users.tokens("ris")] == [T0]
    store.users.bearer("a" * 64, T0 + timedelta(minutes=2))
    assert [t.last_used_at for t in store.users.tokens("ris")] == [T0 + timedelta(minutes=2)]
    # A refused token is not marked used.
    store.users.revoke_tokens("ris", T0)
    store.users.bearer("a" * 64, T0 + timedelta(minutes=5))
    assert [t.last_used_at for t in store.users.tokens("ris")] == [T0 + timedelta(minutes=2)]


def test_a_login_deletes_sessions_a_week_past_their_lifetime(store: Store) -> None:
    old = store.sessions.start("anna", T0, LIFETIME)
    recent = store.sessions.start("anna", T0 + timedelta(days=6), LIFETIME)
    store.sessions.start("ben", T0 + LIFETIME + KEEP_ENDED + timedelta(seconds=1), LIFETIME)
    assert store.sessions.find(old, T0, IDLE) is None
    assert store.sessions.find(recent, T0 + timedelta(days=6), IDLE) is not None
