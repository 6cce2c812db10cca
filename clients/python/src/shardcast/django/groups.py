"""Channels group names → shardcast room names.

A Channels group name is ``[a-zA-Z0-9._-]`` (under 100 characters), a subset of what a room
name allows, so the default mapping is the identity: ``group_send("tracking_group", ..)``
publishes to room ``tracking_group``. Tutorials, however, name the group after the URL their
browsers open with a different spelling — ``flight_room_<id>`` for ``ws/tracker/<id>/`` — so
``SHARDCAST_GROUP_ROOMS`` maps group patterns to room templates::

    SHARDCAST_GROUP_ROOMS = {"flight_room_{id}": "tracker/{id}"}

``{name}`` in a pattern matches one or more group characters (as few as possible, the whole
group must match); the template reuses the captured values. The first pattern that matches
wins (dict order); a group no pattern matches keeps its own name. A callable
``group -> room`` may be given instead of the dict.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping, Optional, Union

from ..rooms import validate_room

GroupRoomsSetting = Union[Mapping[str, str], Callable[[str], str], None]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Rule:
    """One ``pattern → template`` pair, compiled once at start-up."""

    def __init__(self, pattern: str, template: str) -> None:
        names = _PLACEHOLDER.findall(pattern)
        if len(names) != len(set(names)):
            raise ValueError(f"SHARDCAST_GROUP_ROOMS pattern {pattern!r} repeats a placeholder")
        unknown = set(_PLACEHOLDER.findall(template)) - set(names)
        if unknown:
            raise ValueError(
                f"SHARDCAST_GROUP_ROOMS template {template!r} uses {sorted(unknown)} "
                f"that pattern {pattern!r} does not capture"
            )
        regex, pos = "", 0
        for m in _PLACEHOLDER.finditer(pattern):
            regex += re.escape(pattern[pos : m.start()]) + f"(?P<{m.group(1)}>[A-Za-z0-9._-]+?)"
            pos = m.end()
        regex += re.escape(pattern[pos:])
        self.regex = re.compile(regex)
        self.template = template

    def apply(self, group: str) -> Optional[str]:
        m = self.regex.fullmatch(group)
        if m is None:
            return None
        values = m.groupdict()
        return _PLACEHOLDER.sub(lambda p: values[p.group(1)], self.template)


class GroupRooms:
    """The configured mapping; :meth:`room_for` is what the layer and ``group_send`` call."""

    def __init__(self, setting: GroupRoomsSetting = None) -> None:
        self._func: Optional[Callable[[str], str]] = None
        self._rules: list[_Rule] = []
        if callable(setting):
            self._func = setting
        elif setting:
            self._rules = [_Rule(p, t) for p, t in setting.items()]

    def room_for(self, group: str) -> str:
        """The room ``group``'s messages are published to; raises
        :class:`~shardcast.rooms.InvalidRoom` if the mapping yields a name the server refuses."""
        if self._func is not None:
            return validate_room(self._func(group))
        for rule in self._rules:
            room = rule.apply(group)
            if room is not None:
                return validate_room(room)
        return validate_room(group)
