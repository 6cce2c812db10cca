"""Fixtures that run the real shardcast server binary.

Each server is started on a free loopback port (``--listen 127.0.0.1:0 --no-demo``); its first
stdout line, ``listening on ADDR``, is printed once every shard accepts, so the tests start
right after it. Servers are stopped by PID (SIGTERM, then SIGKILL), never by name: other
processes on the machine are not ours. The binary comes from ``$SHARDCAST_BIN``, default
``target/debug/shardcast`` under the repository root.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest

REPO = Path(__file__).resolve().parents[3]
JWT_SECRET = "test-secret-0123456789abcdef-0123456789"
API_KEY = "test-api-key-0123456789abcdef"
#: Seconds any single wait in a test may take. Generous: on a shared, overloaded machine a
#: server shard can be starved of CPU for seconds (see the README), which is not a failure.
T = 30.0


def server_binary() -> Path:
    path = Path(os.environ.get("SHARDCAST_BIN", REPO / "target" / "debug" / "shardcast"))
    if not path.is_file():
        pytest.fail(
            f"shardcast binary not found at {path}: "
            "build it (cargo build -p shardcast-server) or set SHARDCAST_BIN"
        )
    return path


@dataclass
class Server:
    """A running server: ``http`` is the base URL for clients, ``ws`` for WebSocket URLs."""

    proc: subprocess.Popen[bytes]
    addr: str
    log: list[str] = field(default_factory=list)
    drain: Optional[threading.Thread] = None

    @property
    def http(self) -> str:
        return f"http://{self.addr}"

    @property
    def ws(self) -> str:
        return f"ws://{self.addr}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.drain is not None:
            self.drain.join(timeout=5)  # EOF once the process is gone
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_server(*args: str) -> Server:
    cmd = [str(server_binary()), "--listen", "127.0.0.1:0", "--no-demo", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    log: list[str] = []
    deadline = time.monotonic() + 60
    addr = None
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode(errors="replace")
        if not line:
            break
        log.append(line)
        if line.startswith("listening on "):
            addr = line.split("listening on ", 1)[1].strip()
            break
    if addr is None:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"server did not start: {' '.join(cmd)}\n{''.join(log)}")

    def drain() -> None:
        # Keep reading so a chatty server never blocks on a full pipe.
        assert proc.stdout is not None
        for raw in proc.stdout:
            log.append(raw.decode(errors="replace"))

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    return Server(proc=proc, addr=addr, log=log, drain=thread)


@pytest.fixture(scope="session")
def server_factory() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def make(*args: str) -> Server:
        s = start_server(*args)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def server(server_factory: Callable[..., Server]) -> Server:
    """An open server (no credentials), shared by the tests that need nothing special."""
    return server_factory()


@pytest.fixture(scope="session")
def keyed_server(server_factory: Callable[..., Server]) -> Server:
    """A server with an API key and a JWT secret: HTTP publish needs the key."""
    return server_factory("--api-key", API_KEY, "--jwt-secret", JWT_SECRET)


@pytest.fixture(scope="session")
def jwt_server(server_factory: Callable[..., Server]) -> Server:
    """A server with a JWT secret only: HTTP publish needs a token with the publish right."""
    return server_factory("--jwt-secret", JWT_SECRET)


_counter = iter(range(1, 1_000_000))


@pytest.fixture
def room() -> str:
    """A room name no other test uses (the servers are shared within the session)."""
    return f"test:{os.getpid()}-{next(_counter)}"
