"""Which bytes of a Channels event are published.

A shardcast room delivers the exact bytes published to ``/ws/<room>`` subscribers, so an event
(``{"type": "flight_update", ...}``) must become the text the browser used to get from the
consumer's handler. The tutorials' handlers send the event's fields without ``type``, encoded
with a plain ``json.dumps``::

    async def flight_update(self, event):
        await self.send(text_data=json.dumps({"data": event["data"]}))

hence the default, ``"without_type"``: ``json.dumps`` (its default separators ``", "`` and
``": "``, ASCII-escaped) of the event minus its ``"type"`` key, keys in the event's order —
byte for byte what such a handler sent. Other choices (``SHARDCAST_EVENT_ENCODER`` or the
layer's ``encoder``):

- ``"with_type"`` — ``json.dumps(event)``, ``type`` included (browsers that switch on it);
- ``"field:<name>"`` — only ``event[<name>]``: a ``str``/``bytes`` value is published as is and
  must be JSON text (``self.send(text_data=event["message"])``); any other value is
  ``json.dumps``-ed;
- a callable ``(group, event) -> str | bytes``, or its dotted import path.

Whatever the encoder returns must be one JSON value: the server refuses anything else.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Union

Encoder = Callable[[str, Mapping[str, Any]], Union[str, bytes]]
EncoderSetting = Union[str, Encoder, None]


def without_type(group: str, event: Mapping[str, Any]) -> str:
    """``json.dumps`` of the event minus ``type`` (the default)."""
    return json.dumps({k: v for k, v in event.items() if k != "type"})


def with_type(group: str, event: Mapping[str, Any]) -> str:
    """``json.dumps`` of the whole event."""
    return json.dumps(dict(event))


def field(name: str) -> Encoder:
    """Only ``event[name]``; text is taken to be JSON already and published unchanged."""

    def encode(group: str, event: Mapping[str, Any]) -> Union[str, bytes]:
        if name not in event:
            raise KeyError(f"event for group {group!r} has no field {name!r} to publish")
        value = event[name]
        return value if isinstance(value, (str, bytes)) else json.dumps(value)

    return encode


def resolve(setting: EncoderSetting) -> Encoder:
    """The encoder a setting names (``None`` → :func:`without_type`)."""
    if setting is None or setting == "without_type":
        return without_type
    if callable(setting):
        return setting
    if setting == "with_type":
        return with_type
    if setting.startswith("field:"):
        return field(setting[len("field:") :])
    from django.utils.module_loading import import_string

    encoder: Encoder = import_string(setting)
    return encoder
