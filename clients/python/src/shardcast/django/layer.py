"""A Channels channel layer whose ``group_send`` publishes to shardcast.

An existing Channels project moves its fan-out to shardcast by changing ``CHANNEL_LAYERS``::

    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "shardcast.django.layer.ShardcastChannelLayer",
            "CONFIG": {"group_rooms": {"flight_room_{id}": "tracker/{id}"}},
        }
    }

``group_send(group, event)`` then publishes the encoded event (:mod:`.events`; by default the
event minus ``type``, ``json.dumps``-ed) to the group's room (:mod:`.groups`), and shardcast
delivers it to every browser on ``ws/<room>/`` — connected to shardcast, not to Django, so no
consumer, ``group_add`` or Redis is needed for fan-out.

Point-to-point messaging (``new_channel``, ``send``, ``receive``) and group membership are what
Django-served consumers need; this layer has no transport for them. Without a ``delegate``
they raise :class:`NotImplementedError` saying so. With one (any channel layer config, e.g.
``{"BACKEND": "channels.layers.InMemoryChannelLayer"}`` or ``channels_redis``), those calls go
to it, and ``delegate_group_send=True`` also hands each ``group_send`` to it, for projects
that keep some consumers on Django during a migration.

``CONFIG`` keys (each defaults to the ``SHARDCAST_*`` setting of the same name, see
:mod:`.conf`): ``url``, ``api_key``, ``jwt_secret``, ``group_rooms``, ``event_encoder``,
``timeout``, plus ``delegate`` and ``delegate_group_send``.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from channels.layers import BaseChannelLayer

from ..body import PublishResult
from .conf import LoopClients, Options

_NO_TRANSPORT = (
    "ShardcastChannelLayer.{op}() is not available: shardcast delivers group messages to "
    "browsers connected to shardcast (ws/<room>/), not to Django consumers, so this layer "
    "only publishes (group_send). Consumers served by Django need a point-to-point layer: "
    "set CONFIG['delegate'] = {{'BACKEND': 'channels_redis.core.RedisChannelLayer', ...}} "
    "(or another layer) and this layer passes {op}() to it."
)


class ShardcastChannelLayer(BaseChannelLayer):
    """Channels layer publishing ``group_send`` to shardcast; see the module docstring."""

    extensions = ["groups", "flush"]

    def __init__(
        self,
        url: Optional[str] = None,
        api_key: Optional[str] = None,
        jwt_secret: Optional[str] = None,
        group_rooms: Any = None,
        event_encoder: Any = None,
        timeout: Optional[float] = None,
        delegate: Optional[Mapping[str, Any]] = None,
        delegate_group_send: bool = False,
        expiry: int = 60,
        capacity: int = 100,
        channel_capacity: Any = None,
    ) -> None:
        # No **kwargs: a misspelt CONFIG key fails at start-up instead of being ignored.
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity)
        self.options = Options.load(
            url=url,
            api_key=api_key,
            jwt_secret=jwt_secret,
            group_rooms=group_rooms,
            event_encoder=event_encoder,
            timeout=timeout,
        )
        self._clients = LoopClients(self.options.async_client)
        self.delegate: Optional[BaseChannelLayer] = _build(delegate) if delegate else None
        if delegate_group_send and self.delegate is None:
            raise ValueError("delegate_group_send=True needs a 'delegate' layer")
        self.delegate_group_send = delegate_group_send

    # -- fan-out: the part shardcast does ------------------------------------------------

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Publishes ``message`` (encoded by the configured encoder) to ``group``'s room.

        Raises :class:`~shardcast.errors.ShardcastError` when the server refuses: unlike an
        in-process layer there is a network here, and a silently lost broadcast is worse than
        an exception in the view that sent it. Returns ``None`` as the Channels API says;
        :meth:`publish_group` returns the seq and epoch."""
        await self.publish_group(group, message)

    async def publish_group(self, group: str, message: dict[str, Any]) -> PublishResult:
        """:meth:`group_send` that returns the message's :class:`~shardcast.PublishResult`."""
        self.require_valid_group_name(group)
        room = self.options.group_rooms.room_for(group)
        result = await self._clients.get().publish_raw(room, self.options.encoder(group, message))
        if self.delegate_group_send and self.delegate is not None:
            await self.delegate.group_send(group, message)
        return result

    # -- point-to-point and membership: delegated or refused ----------------------------

    def _need_delegate(self, op: str) -> BaseChannelLayer:
        if self.delegate is None:
            raise NotImplementedError(_NO_TRANSPORT.format(op=op))
        return self.delegate

    async def new_channel(self, prefix: str = "specific.") -> str:
        # Every Channels layer takes a prefix; the base class's signature omits it.
        return str(await self._need_delegate("new_channel").new_channel(prefix))  # type: ignore[call-arg]

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self._need_delegate("send").send(channel, message)

    async def receive(self, channel: str) -> Any:
        return await self._need_delegate("receive").receive(channel)

    async def group_add(self, group: str, channel: str) -> None:
        await self._need_delegate("group_add").group_add(group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        await self._need_delegate("group_discard").group_discard(group, channel)

    async def flush(self) -> None:
        """Closes this loop's HTTP connections and flushes the delegate (test teardown)."""
        await self._clients.aclose()
        if self.delegate is not None and hasattr(self.delegate, "flush"):
            await self.delegate.flush()

    async def close(self) -> None:
        await self._clients.aclose()
        if self.delegate is not None and hasattr(self.delegate, "close"):
            await self.delegate.close()


def _build(config: Mapping[str, Any]) -> BaseChannelLayer:
    """A layer from a ``CHANNEL_LAYERS``-style entry (``BACKEND`` + optional ``CONFIG``)."""
    from django.utils.module_loading import import_string

    backend = import_string(config["BACKEND"])
    layer: BaseChannelLayer = backend(**config.get("CONFIG", {}))
    return layer
