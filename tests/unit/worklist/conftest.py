"""The worklist tests' store: a fresh, migrated store on each database ``store_url`` names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mammotriage.worklist import Store


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    store = Store(store_url)
    store.migrate()
    yield store
    store.close()
