"""Time-zone-aware datetimes: the one check every layer that takes a clock reading uses.

Waiting times are compared across sites and databases, so a naive datetime (no UTC offset)
is refused wherever one comes in. Pure Python, low in the stack: anything may import it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeGuard

from mammotriage.errors import ConfigError


def is_aware(value: object) -> TypeGuard[datetime]:
    """Whether ``value`` is a datetime with a UTC offset."""
    return isinstance(value, datetime) and value.utcoffset() is not None


def require_aware(name: str, value: object) -> datetime:
    """``value`` when it is a timezone-aware datetime.

    Raises
    ------
    ConfigError
        ``"<name> must be a timezone-aware datetime, got <value!r>"``.
    """
    if not is_aware(value):
        raise ConfigError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value


__all__ = ["is_aware", "require_aware"]
