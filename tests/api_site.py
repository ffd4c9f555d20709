"""The reading-service test site: a real store (SQLite, and PostgreSQL when integration tests
run), three radiologists, an admin, a service with a bearer token, a clock the tests move."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from mammotriage.api.app import create_app
from mammotriage.api.security import token_sha256
from mammotriage.api.settings import ApiSettings
from mammotriage.dicom.model import Laterality, ViewPosition
from mammotriage.infer.scores import ExamScore, Finding, ImageScore
from mammotriage.triage import ExamForTriage, TriagePolicy, decide
from mammotriage.worklist import Store
from mammotriage.worklist.models import Role

NOW = datetime(2024, 3, 11, 12, 0, tzinfo=timezone.utc)
POLICY = TriagePolicy(version="test-1", max_wait_days=5)
MODEL_SHA = "a" * 64
#: The one finding of every test exam: on its first view (L-CC), original pixels, score 30.
FINDING_BOX = (10.0, 20.0, 60.0, 80.0)
PASSWORD = "correct horse battery staple"
SERVICE_TOKEN = "service-token-for-tests-only-0123456789abcdef"
READER_TOKEN = "reader-token-for-tests-only-0123456789abcdef"
#: Study UIDs that look like real ones, so that a leak would be found by a plain search.
STUDY_ROOT = "1.2.826.0.1.3680043.9.7777"
# Cheap argon2 parameters for the fixtures' users only: verify() reads them from the hash.
_CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Site:
    store: Store
    clock: Clock
    settings: ApiSettings
    app: object = None
    clients: list[TestClient] = field(default_factory=list)

    def client(self) -> TestClient:
        client = TestClient(self.app, follow_redirects=False)  # type: ignore[arg-type]
        self.clients.append(client)
        return client

    def login(self, username: str, password: str = PASSWORD) -> tuple[TestClient, str]:
        """A client with ``username``'s session cookie, and the session's CSRF token."""
        client = self.client()
        token = csrf_of(client.get("/login").text)
        answer = client.post(
            "/login", data={"username": username, "password": password, "csrf_token": token}
        )
        assert answer.status_code == 303, answer.text
        return client, csrf_of(client.get("/login").text)

    def exam(self, n: int, category: int, waited: timedelta = timedelta(hours=1)):
        return add_exam(self.store, f"{STUDY_ROOT}.{n}", category, NOW - waited)


def exam_score(study: str, category: int) -> ExamScore:
    """A scored four-view exam (as in tests/unit/worklist) with one finding on view 0."""
    views = [
        (lat, view)
        for lat in (Laterality.LEFT, Laterality.RIGHT)
        for view in (ViewPosition.CC, ViewPosition.MLO)
    ]
    images = tuple(
        ImageScore(
            path=None,
            sop_instance_uid=f"{study}.{i}",
            laterality=lat,
            view=view,
            usable=True,
            reason=None,
            probability=category / 10 - 0.05,
        )
        for i, (lat, view) in enumerate(views)
    )
    finding = Finding(f"{study}.0", None, Laterality.LEFT, ViewPosition.CC, FINDING_BOX, 30)
    return ExamScore(
        exam_id=study,
        score=category * 10 - 5,
        category=category,
        partial=False,
        breasts={"L": category * 10 - 5, "R": 1.0},
        findings=(finding,),
        images=images,
        model_name="test-model",
        model_sha256=MODEL_SHA,
    )


def add_exam(store: Store, study: str, category: int, received: datetime) -> uuid.UUID:
    score = exam_score(study, category)
    triage = ExamForTriage(study, float(score.score or 0), category, 30, False, received)
    return store.exams.save_score(score, decide(POLICY, triage), received)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


def make_site(store: Store, **settings: object) -> Site:
    values: dict[str, object] = {
        "environment": "development",
        "database": "unused-the-store-is-given",
        # Tests change the store behind the service's back and look at once.
        "queue_snapshot_seconds": 0,
        "user_cache_seconds": 0,
        **settings,
    }
    config = ApiSettings(**values)  # type: ignore[arg-type]
    clock = Clock()
    site = Site(store, clock, config)
    site.app = create_app(config, store=store, policy=POLICY, clock=clock)
    return site


@pytest.fixture
def site(store_url: str) -> Iterator[Site]:
    store = Store(store_url)
    store.migrate()
    for name in ("anna", "ben", "carl"):
        store.users.add(name, Role.RADIOLOGIST, _CHEAP.hash(PASSWORD))
    store.users.add("root", Role.ADMIN, _CHEAP.hash(PASSWORD))
    store.users.add("ris", Role.SERVICE, None)
    store.users.add_token("ris", token_sha256(SERVICE_TOKEN), "tests")
    store.users.add_token("anna", token_sha256(READER_TOKEN), "tests")
    the_site = make_site(store)
    yield the_site
    for client in the_site.clients:
        client.close()
    store.close()


__all__ = ["NOW", "PASSWORD", "READER_TOKEN", "SERVICE_TOKEN", "STUDY_ROOT", "Site", "csrf_of"]
