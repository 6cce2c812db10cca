"""Room names as the server accepts them (DESIGN.md §3): 1–200 bytes of
``A-Z a-z 0-9 _ - : . / @``.

Checked on the client so a wrong name fails at the call that made it, with the name in the
message, instead of as a ``bad_room`` from the server — and because the request body is built
by hand (see ``body.py``), which is only sound for names that need no JSON escaping.
"""

from __future__ import annotations

import re

MAX_ROOM_LEN = 200
_ROOM = re.compile(r"[A-Za-z0-9_\-:./@]{1,200}")


class InvalidRoom(ValueError):
    """A room name the server would refuse."""


def validate_room(room: str) -> str:
    """Returns ``room`` unchanged if the server accepts it, else raises :class:`InvalidRoom`."""
    if not isinstance(room, str) or _ROOM.fullmatch(room) is None:
        raise InvalidRoom(
            f"invalid room name {room!r}: 1-{MAX_ROOM_LEN} characters of A-Z a-z 0-9 _ - : . / @"
        )
    return room
