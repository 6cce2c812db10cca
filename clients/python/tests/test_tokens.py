"""Token minting: the format the server's ``auth.rs`` verifies (checked end to end in
``test_auth.py``; here, the details a server round trip would not show)."""

from __future__ import annotations

import base64
import json

import pytest

from shardcast.tokens import decode, token

SECRET = "0123456789abcdef0123456789abcdef"


def _part(tok: str, i: int) -> dict:
    s = tok.split(".")[i]
    return json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))


def test_claims_and_header() -> None:
    tok = token("alice", ["fleet:*"], ["vehicle:42"], 120, secret=SECRET, now=1_700_000_000.9)
    assert _part(tok, 0) == {"alg": "HS256", "typ": "JWT"}
    assert _part(tok, 1) == {
        "sub": "alice",
        "exp": 1_700_000_120,
        "sub_rooms": ["fleet:*"],
        "pub_rooms": ["vehicle:42"],
    }
    assert "=" not in tok  # unpadded base64url, as the server decodes
    assert decode(tok, secret=SECRET, now=1_700_000_000)["sub"] == "alice"


def test_known_signature() -> None:
    """Matches an HS256 signature computed independently (RFC 7515 HMAC-SHA256 over
    base64url(header).base64url(payload))."""
    import hashlib
    import hmac

    tok = token("s", [], [], 10, secret=SECRET, now=0)
    h, p, s = tok.split(".")
    want = base64.urlsafe_b64encode(
        hmac.new(SECRET.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest()
    ).rstrip(b"=")
    assert s.encode() == want


def test_decode_refuses_what_the_server_refuses() -> None:
    tok = token("s", ttl=10, secret=SECRET, now=1000)
    with pytest.raises(ValueError, match="expired"):
        decode(tok, secret=SECRET, now=1010)
    with pytest.raises(ValueError, match="signature"):
        decode(tok, secret="other-secret-0123456789", now=1000)
    h, p, s = tok.split(".")
    none = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    with pytest.raises(ValueError, match="HS256"):
        decode(f"{none}.{p}.{s}", secret=SECRET, now=1000)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        token("s", ttl=0, secret=SECRET)
    with pytest.raises(TypeError):
        token("s", pub_rooms="fleet:*", secret=SECRET)  # a str is not a list of globs
