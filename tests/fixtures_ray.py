"""One local Ray for the test session: started on first use, stopped at the end.

Small object store, no dashboard, four logical CPUs (the backfill's decode tasks and its
scoring actor each need theirs). Drivers in other processes join it by ``address``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def local_ray() -> Iterator[str]:
    """The session's Ray; yields the address another driver joins it by."""
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        object_store_memory=128 * 1024 * 1024,
        log_to_driver=False,
        logging_level=logging.ERROR,
    )
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()
