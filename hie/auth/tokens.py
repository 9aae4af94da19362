"""Token values: generated with the OS's secure random source, stored only as a SHA-256 hash.

The tokens carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
"""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "hie_"


def generate_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def token_hint(token: str) -> str:
    """A few leading characters that let a person tell tokens apart in a list."""
    return token[: len(PREFIX) + 6] + "…"
