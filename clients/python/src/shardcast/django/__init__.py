"""Django integration for shardcast.

- Settings: ``SHARDCAST_URL``, ``SHARDCAST_API_KEY``, ``SHARDCAST_JWT_SECRET``,
  ``SHARDCAST_GROUP_ROOMS``, ``SHARDCAST_EVENT_ENCODER``, ``SHARDCAST_TIMEOUT``
  (:mod:`shardcast.django.conf`).
- :func:`group_send` / :func:`agroup_send`: drop-ins for ``channel_layer.group_send`` calls.
- :func:`token`: JWTs for browsers, signed with ``SHARDCAST_JWT_SECRET``.
- :class:`shardcast.django.layer.ShardcastChannelLayer`: a Channels layer whose
  ``group_send`` publishes to shardcast (imported from its module so that this package works
  without ``channels`` installed).
"""

from .publish import agroup_send, group_send, reset, token

__all__ = ["agroup_send", "group_send", "reset", "token"]
