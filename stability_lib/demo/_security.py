"""Passwords (salted scrypt) and access tokens (JWT HS256) of the sample service."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field

import jwt

__all__ = ["hash_password", "verify_password", "TokenIssuer"]

# scrypt cost: 2^11 (2 MiB of memory) is a real salted, memory-hard hash at about 4 ms of CPU per
# registration or login on this kind of machine. 2^13 took 18 ms: a demo registers and logs in about
# 65 users over both services, 130 hashes or 2.3 s of CPU that competed with the probes on 2 cores.
# Stored hashes carry their own cost, so older ones still verify.
_SCRYPT_N = 2**11
_SCRYPT_R = 8
_SCRYPT_P = 1
_KEY_LEN = 32
_HASH_PREFIX = "scrypt"


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$key`` with a fresh 16-byte salt (base64 parts)."""
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=_KEY_LEN)
    parts = [_HASH_PREFIX, str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P), _b64(salt), _b64(key)]
    return "$".join(parts)


def verify_password(password: str, stored: str) -> bool:
    try:
        prefix, n, r, p, salt, key = stored.split("$")
        if prefix != _HASH_PREFIX:
            return False
        expected = base64.b64decode(key)
        actual = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class TokenIssuer:
    """Issues and checks HS256 tokens with a secret made for this instance only."""

    ttl_seconds: int = 3600
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    def issue(self, user_id: int) -> str:
        now = int(time.time())
        claims = {"sub": str(user_id), "iat": now, "exp": now + self.ttl_seconds}
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def user_id(self, token: str) -> int | None:
        """The user id of a valid token, or None (bad signature, expired, malformed)."""
        if not token or len(token) > 4096:
            return None
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})
            return int(claims["sub"])
        except (jwt.PyJWTError, ValueError, TypeError):
            return None
