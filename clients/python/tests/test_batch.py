"""Batch publishing: one result per item in batch order, each room's items in order."""

from __future__ import annotations

import json

from conftest import JWT_SECRET, Server, T
from wsutil import recv, subscribe

import shardcast


def _batch(rooms: list[str], n: int) -> list[tuple[str, dict]]:
    return [(rooms[i % len(rooms)], {"i": i}) for i in range(n)]


def test_sync_batch_keeps_order_and_seqs(server: Server, room: str) -> None:
    rooms = [f"{room}-{k}" for k in range(3)]
    with subscribe(server.ws, server.http, f"/ws/{rooms[0]}/", rooms[0]) as ws:
        items = _batch(rooms, 60)
        with shardcast.Client(server.http, timeout=T) as c:
            results = c.publish_many(items, concurrency=4)
        assert len(results) == 60
        for r in rooms:
            mine = [res for (room_, _), res in zip(items, results) if room_ == r]
            assert all(isinstance(x, shardcast.PublishResult) for x in mine)
            assert [x.seq for x in mine] == list(range(1, 21)), r  # type: ignore[union-attr]
            assert len({x.epoch for x in mine}) == 1  # type: ignore[union-attr]
        got = [json.loads(recv(ws))["i"] for _ in range(20)]
        assert got == [i for i in range(60) if i % 3 == 0]


async def test_async_batch_keeps_order_and_seqs(server: Server, room: str) -> None:
    rooms = [f"{room}-{k}" for k in range(5)]
    with subscribe(server.ws, server.http, f"/ws/{rooms[1]}", rooms[1]) as ws:
        items = _batch(rooms, 100)
        async with shardcast.AsyncClient(server.http, timeout=T) as c:
            results = await c.publish_many(items, concurrency=3)
        seqs = {r: [] for r in rooms}
        for (r, _), res in zip(items, results):
            assert isinstance(res, shardcast.PublishResult)
            seqs[r].append(res.seq)
        assert all(s == list(range(1, 21)) for s in seqs.values())
        assert [json.loads(recv(ws))["i"] for _ in range(20)] == [i for i in range(100) if i % 5 == 1]


def test_batch_raw_items_and_single_room(server: Server, room: str) -> None:
    with subscribe(server.ws, server.http, f"/ws/{room}", room) as ws:
        with shardcast.Client(server.http, timeout=T) as c:
            results = c.publish_many([(room, f'{{"n": {i}}}') for i in range(10)], raw=True)
        assert [r.seq for r in results] == list(range(1, 11))  # type: ignore[union-attr]
        assert [recv(ws) for _ in range(10)] == [f'{{"n": {i}}}' for i in range(10)]


def test_batch_reports_an_error_per_item(jwt_server: Server, room: str) -> None:
    tok = shardcast.token("batcher", pub_rooms=[f"{room}-ok*"], ttl=60, secret=JWT_SECRET)
    items = [(f"{room}-ok", 1), (f"{room}-no", 2), (f"{room}-ok", 3), (f"{room}-no", 4)]
    with shardcast.Client(jwt_server.http, token=tok, timeout=T) as c:
        results = c.publish_many(items)
    assert [type(r) for r in results] == [
        shardcast.PublishResult,
        shardcast.Forbidden,
        shardcast.PublishResult,
        shardcast.Forbidden,
    ]
    assert [r.seq for r in results[::2]] == [1, 2]  # type: ignore[union-attr]
    assert all(r.code == "forbidden" and r.status == 403 for r in results[1::2])  # type: ignore[union-attr]


def test_empty_batch(server: Server) -> None:
    with shardcast.Client(server.http, timeout=T) as c:
        assert c.publish_many([]) == []
