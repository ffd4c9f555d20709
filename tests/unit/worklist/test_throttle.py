"""The login throttle's store on SQLite and PostgreSQL: free failures, doubling blocks up to a
cap, the window that forgets, success clearing a username, and counts that hold when
several processes fail the same keys at once."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from mammotriage.errors import ConfigError
from mammotriage.worklist import Store
from mammotriage.worklist.models import LoginThrottleRow
from mammotriage.worklist.throttle import KeyKind, ThrottleKey, ThrottlePolicy

NOW = datetime(2024, 3, 11, 12, 0, tzinfo=timezone.utc)
ANNA = ThrottleKey.user("anna")
HERE = ThrottleKey.address("192.0.2.7")
SECOND = timedelta(seconds=1)


def failures(store: Store, key: ThrottleKey) -> int:
    with store.db.session() as session:
        count = session.execute(
            select(LoginThrottleRow.failures).where(LoginThrottleRow.key == str(key))
        ).scalar_one_or_none()
    return count or 0


def test_five_failures_are_free_then_each_blocks_twice_as_long(store: Store) -> None:
    now = NOW
    for _ in range(5):
        assert store.throttle.failed([ANNA], now) is None
        assert store.throttle.blocked([ANNA], now) is None
        now += SECOND
    blocks = []
    for _ in range(4):
        block = store.throttle.failed([ANNA], now)
        assert block is not None and block.key == ANNA
        blocks.append(block.retry_after(now))
        assert store.throttle.blocked([ANNA, HERE], now) == block
        now = block.until  # the block has just passed
        assert store.throttle.blocked([ANNA], now) is None
    assert blocks == [SECOND, 2 * SECOND, 4 * SECOND, 8 * SECOND]


def test_blocks_stop_growing_at_the_cap(store: Store) -> None:
    policy = ThrottlePolicy(user_free_failures=0, max_block=timedelta(seconds=5))
    now = NOW
    lengths = []
    for _ in range(6):
        block = store.throttle.failed([ANNA], now, policy)
        assert block is not None
        lengths.append(block.retry_after(now).total_seconds())
        now = block.until
    assert lengths == [1, 2, 4, 5, 5, 5]


def test_an_address_has_more_free_failures_than_a_username(store: Store) -> None:
    keys = [HERE, *(ThrottleKey.user(f"user{i}") for i in range(25))]
    blocked_at = None
    for i, key in enumerate(keys[1:], start=1):
        block = store.throttle.failed([HERE, key], NOW)
        if block is not None:
            blocked_at = (i, block.key)
            break
    assert blocked_at == (21, HERE)
    assert store.throttle.blocked([HERE, ThrottleKey.user("someone-else")], NOW) is not None


def test_failures_are_forgotten_after_a_quiet_window(store: Store) -> None:
    policy = ThrottlePolicy(user_free_failures=2, window=timedelta(minutes=15))
    for _ in range(2):
        store.throttle.failed([ANNA], NOW, policy)
    later = NOW + timedelta(minutes=15)
    assert store.throttle.failed([ANNA], later, policy) is None  # counted from one again
    assert failures(store, ANNA) == 1


def test_the_end_of_a_block_brings_no_free_failures(store: Store) -> None:
    # The window counts from the end of the block, not from the last failure.
    policy = ThrottlePolicy(
        user_free_failures=2,
        first_block=timedelta(minutes=20),
        max_block=timedelta(hours=1),
        window=timedelta(minutes=15),
    )
    for _ in range(2):
        store.throttle.failed([ANNA], NOW, policy)
    block = store.throttle.failed([ANNA], NOW, policy)
    assert block is not None and block.until == NOW + timedelta(minutes=20)
    after = block.until + timedelta(minutes=1)  # 21 min after the last failure
    block = store.throttle.failed([ANNA], after, policy)
    assert block is not None and block.retry_after(after) == timedelta(minutes=40)
    assert failures(store, ANNA) == 4


def test_success_clears_the_username_and_not_the_address(store: Store) -> None:
    for _ in range(5):
        store.throttle.failed([ANNA, HERE], NOW)
    store.throttle.succeeded(ANNA)
    assert failures(store, ANNA) == 0
    assert failures(store, HERE) == 5
    for _ in range(5):
        assert store.throttle.failed([ANNA], NOW) is None


def test_old_rows_are_deleted_by_later_failures(store: Store) -> None:
    store.throttle.failed([ANNA], NOW)
    much_later = NOW + timedelta(hours=1)
    store.throttle.failed([HERE], much_later)
    assert failures(store, ANNA) == 0 and failures(store, HERE) == 1


def test_failures_at_once_from_several_processes_are_all_counted(store_url: str) -> None:
    # A store each: its own engine and connections, as each server process has.
    stores = [Store(store_url) for _ in range(6)]
    stores[0].migrate()
    rounds = 15
    policy = ThrottlePolicy(user_free_failures=1000, address_free_failures=1000)
    start = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def fail_many(store: Store, me: ThrottleKey) -> None:
        try:
            start.wait()
            for _ in range(rounds):
                # Keys given in different orders: the store locks them in one order.
                store.throttle.failed(
                    [me, HERE, ANNA][:: 1 if me.value.endswith("0") else -1], NOW, policy
                )
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [
        threading.Thread(target=fail_many, args=(s, ThrottleKey.user(f"p{i}")))
        for i, s in enumerate(stores)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert failures(stores[0], ANNA) == len(stores) * rounds
        assert failures(stores[0], HERE) == len(stores) * rounds
        assert failures(stores[0], ThrottleKey.user("p3")) == rounds
    finally:
        for s in stores:
            s.close()


def test_a_key_kind_and_policy_are_checked() -> None:
    assert str(ThrottleKey(KeyKind.ADDRESS, "::1")) == "address:::1"
    with pytest.raises(ConfigError, match="throttle key value"):
        ThrottleKey.user("")
    with pytest.raises(ConfigError, match="max_block"):
        ThrottlePolicy(first_block=timedelta(minutes=2), max_block=timedelta(minutes=1))
    with pytest.raises(ConfigError, match="user_free_failures must be 0 or more, got -1"):
        ThrottlePolicy(user_free_failures=-1)
    with pytest.raises(ConfigError, match="window must be positive"):
        ThrottlePolicy(window=timedelta(0))
