"""Secrets, as the service handles them: PINs only as argon2 hashes, session tokens only as digests. Pure: no I/O.

PINs are hashed with argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile): slow and memory-hard on
purpose, so a stolen users table does not give the PINs back. It is CPU work of tens of milliseconds, so callers
run it off the event loop (`Library` does).

Session tokens are 32 random bytes, so a fast digest (SHA-256) is enough to store them: nobody can guess one
to test against the digest. A token never goes to the log; `token_digest` is what Cassandra keeps.
"""

from __future__ import annotations

import functools
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()
TOKEN_BYTES = 32


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the card has no PIN (or does not exist), so that answer takes as long as a wrong PIN's.
    Made at the first such check, not at import: every process that imports the repository (each tool, each `--help`)
    would otherwise pay a full argon2 hash (about 0.1 s) for nothing."""
    return _HASHER.hash("not a PIN of anybody")


def hash_pin(pin: str) -> str:
    return _HASHER.hash(pin)


def pin_matches(stored_hash: str | None, pin: str) -> bool:
    """Whether `pin` is the one `stored_hash` was made from. With no hash, the same work is done and the answer is
    False, so timing does not tell a card without a PIN from a wrong PIN."""
    try:
        return _HASHER.verify(stored_hash or _dummy_hash(), pin) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
