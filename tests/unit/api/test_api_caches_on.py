"""The reading service with its caches ON, at the production defaults (the other API tests
switch them off to look at the store at once): the queue snapshot (``queue_snapshot_seconds``)
and the user cache (``user_cache_seconds``), over HTTP.

- a reader's own claim and decision show in their queue at once (the service drops the
  snapshot on its own writes);
- an exam the worker stores behind the service's back shows within the snapshot time;
- a user deactivated behind its back is refused within the cache time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from api_site import NOW, STUDY_ROOT, Site, add_exam, make_site
from mammotriage.api.settings import ApiSettings

SNAPSHOT_SECONDS = ApiSettings.model_fields["queue_snapshot_seconds"].default
USER_CACHE_SECONDS = ApiSettings.model_fields["user_cache_seconds"].default
#: Slack for a slow, shared test machine on top of the configured time.
SLACK = 1.5


@pytest.fixture
def live(site: Site) -> Site:
    """The test site's store behind a service with the production cache settings."""
    assert SNAPSHOT_SECONDS > 0 and USER_CACHE_SECONDS > 0
    production = make_site(
        site.store,
        queue_snapshot_seconds=SNAPSHOT_SECONDS,
        user_cache_seconds=USER_CACHE_SECONDS,
    )
    production.clock = site.clock
    yield production
    for client in production.clients:
        client.close()


def _wait_for(check: Callable[[], bool], limit: float) -> float | None:
    """Seconds until ``check()`` held, polling, or None if it did not within ``limit``."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    return None


def _total(client: httpx.Client, queue: str = "all") -> int:
    answer = client.get("/worklist", params={"queue": queue})
    assert answer.status_code == 200, answer.text
    return int(answer.json()["total"])


def test_the_caches_are_on_in_this_service(live: Site) -> None:
    assert live.store.readings.queue_snapshot_seconds == SNAPSHOT_SECONDS
    assert live.settings.user_cache_seconds == USER_CACHE_SECONDS


def test_a_readers_own_claim_and_decision_show_at_once(live: Site) -> None:
    exam = live.exam(1, 2)
    live.exam(2, 3)
    anna, csrf = live.login("anna")
    headers = {"X-CSRF-Token": csrf}
    assert _total(anna) == 2 and _total(anna, "mine") == 0  # the snapshot is taken now
    assert anna.post(f"/exams/{exam}/claim", headers=headers).status_code == 200
    assert _total(anna, "mine") == 1  # no waiting for the snapshot to expire
    decided = anna.post(f"/exams/{exam}/decision", json={"recall": False}, headers=headers)
    assert decided.status_code == 200, decided.text
    assert _total(anna) == 1 and _total(anna, "mine") == 0


def test_a_new_exam_from_the_worker_shows_within_the_snapshot_time(live: Site) -> None:
    live.exam(1, 2)
    anna, _ = live.login("anna")
    assert _total(anna) == 1
    # The worker writes to the store, not through the service.
    add_exam(live.store, f"{STUDY_ROOT}.99", 7, NOW)
    waited = _wait_for(lambda: _total(anna) == 2, SNAPSHOT_SECONDS + SLACK)
    assert waited is not None, f"not shown within {SNAPSHOT_SECONDS + SLACK} s"


def test_a_deactivated_user_is_refused_within_the_cache_time(live: Site) -> None:
    anna, _ = live.login("anna")
    assert anna.get("/worklist").status_code == 200  # anna is in the cache now
    live.store.users.set_active("anna", active=False)
    waited = _wait_for(
        lambda: anna.get("/worklist").status_code == 401, USER_CACHE_SECONDS + SLACK
    )
    assert waited is not None, f"still served after {USER_CACHE_SECONDS + SLACK} s"
