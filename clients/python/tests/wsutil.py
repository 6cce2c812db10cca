"""A real WebSocket subscriber for the tests (the ``websockets`` package, sync API)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator, Optional, Union

import httpx
from conftest import T
from websockets.sync.client import ClientConnection, connect


@contextmanager
def subscribe(
    base_ws: str, base_http: str, path: str, room: str, *, token: Optional[str] = None
) -> Iterator[ClientConnection]:
    """Opens ``base_ws + path`` and waits until the server counts the subscriber in ``room``
    (the handshake's 101 may come before the join is complete; a publish in between would
    not be delivered, and the test would be flaky rather than wrong)."""
    url = base_ws + path + (f"?token={token}" if token else "")
    before = _subscribers(base_http, room, token)
    with connect(url, open_timeout=T) as ws:
        deadline = time.monotonic() + T
        while _subscribers(base_http, room, token) <= before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"subscriber on {path} never joined room {room}")
            time.sleep(0.01)
        yield ws


def _subscribers(base_http: str, room: str, token: Optional[str]) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(f"{base_http}/api/rooms/{room}", headers=headers, timeout=T)
    r.raise_for_status()
    return int(r.json()["subscribers"])


def recv(ws: ClientConnection, timeout: float = T) -> Union[str, bytes]:
    return ws.recv(timeout=timeout)
