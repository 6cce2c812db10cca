"""HS256 JWTs in the format the server verifies (``server/src/auth.rs``).

The server accepts only ``alg: HS256``; its claims are ``sub``, ``exp`` (integer seconds since
the Unix epoch, refused once ``now >= exp``), optional ``nbf``, and the room-right globs
``sub_rooms`` / ``pub_rooms`` (``*`` any run of characters including ``:`` and ``/``, ``?`` one
character). The standard library is enough for HS256, so minting adds no dependency.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, Iterable, Optional, Union

Secret = Union[str, bytes]

# The same header bytes the server's own `sign` writes.
_HEADER = b'{"alg":"HS256","typ":"JWT"}'


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def _b64decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _key(secret: Secret) -> bytes:
    return secret.encode() if isinstance(secret, str) else bytes(secret)


def token(
    sub: str,
    sub_rooms: Iterable[str] = (),
    pub_rooms: Iterable[str] = (),
    ttl: int = 3600,
    *,
    secret: Secret,
    now: Optional[float] = None,
    extra: Optional[dict[str, Any]] = None,
) -> str:
    """Mints a token for ``sub`` valid ``ttl`` seconds, granting subscribe rights on the
    ``sub_rooms`` globs and publish rights on the ``pub_rooms`` globs.

    Browsers pass it as ``?token=`` on ``/ws/<room>``; a backend may use it as the bearer of
    ``POST /api/publish`` when the server has a JWT secret and no API key. ``secret`` is the
    server's ``--jwt-secret``. ``extra`` adds claims the server ignores (``iss``, ...).
    """
    if ttl <= 0:
        raise ValueError("ttl must be positive: the server refuses a token once now >= exp")
    if isinstance(sub_rooms, (str, bytes)) or isinstance(pub_rooms, (str, bytes)):
        raise TypeError("sub_rooms and pub_rooms are lists of globs, not a single string")
    claims: dict[str, Any] = dict(extra or {})
    claims.update(
        sub=sub,
        exp=int(time.time() if now is None else now) + int(ttl),
        sub_rooms=list(sub_rooms),
        pub_rooms=list(pub_rooms),
    )
    payload = json.dumps(claims, separators=(",", ":")).encode()
    signing_input = f"{_b64(_HEADER)}.{_b64(payload)}"
    sig = hmac.new(_key(secret), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(sig)}"


def decode(tok: str, *, secret: Secret, now: Optional[float] = None) -> dict[str, Any]:
    """Verifies ``tok`` the way the server does (HS256 only, constant-time signature check,
    ``exp``/``nbf``) and returns its claims; raises ``ValueError`` otherwise. Meant for tests
    and for debugging a refused token, not as a general JWT library."""
    parts = tok.split(".")
    if len(parts) != 3:
        raise ValueError("expected header.payload.signature")
    h, p, s = parts
    if json.loads(_b64decode(h)).get("alg") != "HS256":
        raise ValueError("only HS256 is accepted")
    want = hmac.new(_key(secret), f"{h}.{p}".encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(want, _b64decode(s)):
        raise ValueError("bad signature")
    claims: dict[str, Any] = json.loads(_b64decode(p))
    t = int(time.time() if now is None else now)
    if t >= int(claims["exp"]):
        raise ValueError("token expired")
    if "nbf" in claims and t < int(claims["nbf"]):
        raise ValueError("token not valid yet")
    return claims
