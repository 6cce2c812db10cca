"""Request bodies and responses of ``POST /api/publish``, shared by the sync and async clients.

The server delivers the *exact bytes* of the ``data`` member to room-per-URL subscribers
(``/ws/<room>``), so the body is assembled around the caller's JSON text rather than by
re-serializing a dict: ``publish_raw`` can then promise byte-for-byte delivery.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Union

import httpx

from .errors import ShardcastError, error_for
from .rooms import validate_room

JsonText = Union[str, bytes]


@dataclass(frozen=True)
class PublishResult:
    """The server's acknowledgement: the ``seq`` assigned to the message in its room (from 1,
    +1 per message) and the room's ``epoch`` (changes when the room was recreated, so seqs
    restarted)."""

    seq: int
    epoch: str


def encode_data(data: Any) -> bytes:
    """Compact UTF-8 JSON for a Python value. ``allow_nan=False``: NaN/Infinity are not JSON
    and the server would refuse the whole body."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def raw_bytes(data: JsonText) -> bytes:
    """Checks that ``data`` is exactly one JSON value and returns its bytes unchanged.

    Checking here is not only a nicer error: a fragment such as ``1,"room":"x"`` would make the
    hand-built body valid JSON with a second ``room`` member.
    """
    b = data.encode() if isinstance(data, str) else bytes(data)
    try:
        json.loads(b, parse_constant=_refuse_constant)
    except ValueError as e:
        raise ValueError(f"data is not a single valid JSON value: {e}") from None
    return b


def _refuse_constant(name: str) -> Any:
    # Python's parser accepts NaN/Infinity; JSON (and the server) does not.
    raise ValueError(f"{name} is not JSON")


def publish_body(room: str, data_json: bytes) -> bytes:
    """``{"room":..,"data":..}`` with ``data_json`` embedded verbatim. Valid room names need no
    escaping, which is why the room is validated first."""
    validate_room(room)
    return b'{"room":"' + room.encode() + b'","data":' + data_json + b"}"


def parse_publish(resp: httpx.Response) -> PublishResult:
    """``{"seq":n,"epoch":".."}`` on 200, else the matching :class:`ShardcastError`."""
    if resp.status_code == 200:
        body = resp.json()
        return PublishResult(seq=int(body["seq"]), epoch=str(body["epoch"]))
    raise error_from(resp)


def error_from(resp: httpx.Response) -> ShardcastError:
    """The server's ``{"error":{"code","message"}}``; a body that is not one (a proxy's HTML
    page, say) still becomes an error carrying the status and the start of the text."""
    try:
        err = resp.json()["error"]
        return error_for(resp.status_code, str(err["code"]), str(err["message"]))
    except (ValueError, KeyError, TypeError):
        return error_for(resp.status_code, f"http_{resp.status_code}", resp.text[:200])
