"""``group_send`` without a channel layer: the drop-in for the tutorials' broadcast calls.

Where a view or a management command did::

    async_to_sync(channel_layer.group_send)("flight_room_7", {"type": "flight_update", "data": d})

it can call ``shardcast.django.group_send("flight_room_7", {...})`` (or ``await
agroup_send(...)``): the group is mapped to its room and the event encoded exactly as the
channel layer does, then published over HTTP with keep-alive. It returns the message's
``PublishResult`` (seq, epoch) where Channels returns ``None``.
"""

from __future__ import annotations

import threading
from typing import Any, Iterable, Mapping, Optional

from ..body import PublishResult
from ..client import Client
from ..tokens import token as mint
from .conf import LoopClients, Options

_lock = threading.Lock()
_options: Optional[Options] = None
_client: Optional[Client] = None
_loop_clients: Optional[LoopClients] = None


def options() -> Options:
    """The settings-derived options, built on first use (settings are read lazily so
    importing this module never requires configured settings)."""
    global _options
    with _lock:
        if _options is None:
            _options = Options.load()
        return _options


def reset() -> None:
    """Forgets the cached options and clients: called when a test changes a ``SHARDCAST_*``
    setting (``override_settings``), so the next call sees the new value."""
    global _options, _client, _loop_clients
    with _lock:
        old = _client
        _options, _client, _loop_clients = None, None, None
    if old is not None:
        old.close()


def _sync_client() -> Client:
    global _client
    opts = options()
    with _lock:
        if _client is None:
            _client = opts.sync_client()
        return _client


def _async_clients() -> LoopClients:
    global _loop_clients
    opts = options()
    with _lock:
        if _loop_clients is None:
            _loop_clients = LoopClients(opts.async_client)
        return _loop_clients


def group_send(group: str, message: Mapping[str, Any]) -> PublishResult:
    """Publishes ``message`` to the room of ``group`` (blocking)."""
    opts = options()
    room = opts.group_rooms.room_for(group)
    return _sync_client().publish_raw(room, opts.encoder(group, message))


async def agroup_send(group: str, message: Mapping[str, Any]) -> PublishResult:
    """Publishes ``message`` to the room of ``group`` from async code."""
    opts = options()
    room = opts.group_rooms.room_for(group)
    return await _async_clients().get().publish_raw(room, opts.encoder(group, message))


def token(sub: str, sub_rooms: Iterable[str] = (), pub_rooms: Iterable[str] = (), ttl: int = 3600) -> str:
    """A JWT for a browser (``?token=`` on ``ws/...``), signed with ``SHARDCAST_JWT_SECRET``."""
    secret = options().jwt_secret
    if secret is None:
        raise RuntimeError("SHARDCAST_JWT_SECRET is not set: cannot mint shardcast tokens")
    return mint(sub, sub_rooms, pub_rooms, ttl, secret=secret)


def _on_setting_changed(setting: str, **kwargs: Any) -> None:
    if setting.startswith("SHARDCAST_"):
        reset()


try:  # Connected only when Django is importable; the receiver is cheap.
    from django.core.signals import setting_changed

    setting_changed.connect(_on_setting_changed, dispatch_uid="shardcast.django.reset")
except ImportError:  # pragma: no cover - Django is an optional dependency
    pass
