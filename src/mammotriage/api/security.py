"""Passwords, bearer tokens and CSRF tokens: the few lines of cryptography the service needs.

- Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second
  recommendation); the store keeps only the hash.
- Bearer tokens are random (``secrets.token_urlsafe(32)``), shown once, stored as SHA-256:
  a token is high-entropy, so a fast hash is enough and lets us look it up directly.
- CSRF: one random token per session, sent back by the page in a hidden form field or the
  ``X-CSRF-Token`` header, compared in constant time.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import MutableMapping
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

CSRF_SESSION_KEY = "csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
#: Shortest password ``users add`` accepts.
MIN_PASSWORD_LENGTH = 10


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (salted; never the password)."""
    return _hasher().hash(password)


@cache
def _dummy_hash() -> str:
    return _hasher().hash(secrets.token_urlsafe(16))


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``.

    A user without a hash (a service user) never matches; an unknown user should be checked
    against ``None`` too, which still spends one verification so that the answer's timing
    does not tell which usernames exist.
    """
    try:
        if password_hash is None:
            _hasher().verify(_dummy_hash(), password + "\x00")
            return False
        return bool(_hasher().verify(password_hash, password))
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> tuple[str, str]:
    """A new bearer token and its SHA-256 (hex): show the first once, store the second."""
    token = secrets.token_urlsafe(32)
    return token, token_sha256(token)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """The session's CSRF token, made on first use."""
    token = session.get(CSRF_SESSION_KEY)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_SESSION_KEY] = token
    return token


def csrf_matches(session: MutableMapping[str, Any], supplied: str | None) -> bool:
    expected = session.get(CSRF_SESSION_KEY)
    if not isinstance(expected, str) or not expected or not supplied:
        return False
    return secrets.compare_digest(expected.encode(), supplied.encode())


__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "MIN_PASSWORD_LENGTH",
    "csrf_matches",
    "csrf_token",
    "hash_password",
    "new_token",
    "token_sha256",
    "verify_password",
]
