"""A witness for frames lost around a Redis fault: it listens to one room's channel on
every Redis pod of an instance (the master, and the replicas, which pass on every PUBLISH
they get through replication), following pods as they are replaced, and records which
server passed on which frame under which offset.

After a loss it tells the two cases apart: a frame no server but the old master ever
passed on (accepted by a master that lost it: only its sender can send it again), and a
frame the new master had (a backend failed to deliver or recover it)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field

import redis

from tests.e2e.conftest import Stack, redis_at


@dataclass(frozen=True)
class Sighting:
    pod: str
    at: float
    offset: int | None
    epoch: str | None


@dataclass
class ChannelSpy:
    stack: Stack
    channel: str
    password: str
    seen: dict[str, list[Sighting]] = field(default_factory=dict)
    """payload -> where and when it was passed on."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _watched: set[tuple[str, str]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    started: float = field(default_factory=time.monotonic)

    def __enter__(self) -> ChannelSpy:
        finder = threading.Thread(target=self._find_pods, daemon=True)
        finder.start()
        self._threads.append(finder)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _find_pods(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                for pod in self.stack.pods("redis", ready_only=False):
                    ip = pod["status"].get("podIP")
                    key = (pod["metadata"]["name"], ip)
                    if ip and key not in self._watched:
                        self._watched.add(key)
                        thread = threading.Thread(target=self._listen, args=key, daemon=True)
                        thread.start()
                        self._threads.append(thread)
            self._stop.wait(0.5)

    def _listen(self, pod: str, ip: str) -> None:
        client = redis_at(ip, password=self.password)
        try:
            while not self._stop.is_set():
                try:
                    pubsub = client.pubsub()  # type: ignore[no-untyped-call]
                    pubsub.subscribe(f"asocial:chan:{self.channel}")
                    while not self._stop.is_set():
                        message = pubsub.get_message(timeout=0.5)
                        if message and message["type"] == "message":
                            self._record(pod, message["data"])
                except (redis.RedisError, OSError):
                    if self._stop.wait(0.5):
                        return
        finally:
            client.close()

    def _record(self, pod: str, data: str) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            frame = json.loads(data)
            sighting = Sighting(
                pod, round(time.monotonic() - self.started, 2), frame.get("offset"),
                frame.get("epoch"),
            )  # fmt: skip
            with self._lock:
                self.seen.setdefault(str(frame["payload"]), []).append(sighting)

    def report(self, payloads: list[int], around: int = 2) -> str:
        """Where each of ``payloads`` (and its neighbours) was passed on."""
        lines = []
        wanted = sorted({p + d for p in payloads for d in range(-around, around + 1)})
        with self._lock:
            for payload in wanted:
                where = self.seen.get(str(payload), [])
                mark = "LOST " if payload in payloads else "     "
                said = ", ".join(
                    f"{s.pod}@{s.at}s offset {s.offset} epoch {(s.epoch or '')[:6]}" for s in where
                )
                lines.append(f"{mark}{payload}: {said or 'passed on by no server'}")
        return "\n".join(lines)
