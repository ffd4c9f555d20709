"""Fixtures of the reading-service tests (defined in :mod:`api_site`)."""

from api_site import site  # noqa: F401
