"""What both clients share: base URL, credentials and the HTTP headers they turn into.

Credentials follow the server's order for ``POST /api/publish`` (DESIGN.md §3): with an API key
configured on the server, only the key counts (sent as ``X-Api-Key``); else, with a JWT secret,
a token with the publish right (sent as ``Authorization: Bearer``); else nothing (an open
server on loopback).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence, Union

from .body import PublishResult, encode_data, raw_bytes
from .errors import ShardcastError

#: One batch item's outcome.
Outcome = Union[PublishResult, ShardcastError]

#: A fixed token, or a function returning a current one (e.g. one that re-mints before
#: expiry), called for every request.
TokenSource = Union[str, Callable[[], str]]

DEFAULT_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class Settings:
    url: str = DEFAULT_URL
    api_key: Optional[str] = None
    token: Optional[TokenSource] = None

    def headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        if self.api_key is not None:
            h["X-Api-Key"] = self.api_key
        if self.token is not None:
            tok = self.token() if callable(self.token) else self.token
            h["Authorization"] = f"Bearer {tok}"
        return h

    def base(self) -> str:
        return self.url.rstrip("/")


def item_bytes(data: Any, raw: bool) -> bytes:
    """The JSON text of one message: ``data`` itself when ``raw`` (checked, unchanged), else
    ``data`` serialized compactly."""
    return raw_bytes(data) if raw else encode_data(data)


def lanes(items: Iterable[tuple[str, Any]]) -> OrderedDict[str, list[tuple[int, Any]]]:
    """Groups a batch by room, keeping each room's items in batch order.

    Why: the server numbers a room's messages in the order publishes *arrive*. Items of one
    room therefore go one after another on one connection (so their seqs follow the batch
    order and subscribers see them in that order); different rooms go concurrently.
    """
    out: OrderedDict[str, list[tuple[int, Any]]] = OrderedDict()
    for i, (room, data) in enumerate(items):
        out.setdefault(room, []).append((i, data))
    return out


def check_concurrency(concurrency: int) -> int:
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    return concurrency


def complete(out: Sequence[Optional[Outcome]]) -> list[Outcome]:
    """The batch's answer once every lane ran; a hole would shift every later item onto the
    wrong result, so it is a bug to report, never to skip."""
    done = [o for o in out if o is not None]
    if len(done) != len(out):
        raise RuntimeError("publish_many: an item got no outcome")
    return done
