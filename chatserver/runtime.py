"""The state every connection of one process shares, and the drain on shutdown.

Built and torn down by the app; sessions register and unregister themselves, and the
connection limits are read from here at admission.
May use: ``accounts``, ``hub``, ``presence``, ``signouts``, ``auth``, ``limits``, ``broker``,
``metrics``, ``protocol``, ``settings``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import Protocol

from chatserver.accounts.service import AccountService
from chatserver.auth import Authenticator
from chatserver.broker.base import Broker
from chatserver.hub import Hub
from chatserver.limits import MessageLimiter
from chatserver.metrics import Metrics
from chatserver.presence import Presence
from chatserver.protocol import CLOSE_GOING_AWAY
from chatserver.settings import Settings
from chatserver.signouts import SignOuts

log = logging.getLogger(__name__)


class Connection(Protocol):
    """What the runtime needs of a session."""

    @property
    def user_id(self) -> str: ...

    def close(self, code: int, reason: str, *, after_queue: bool = False) -> None: ...

    def kill(self) -> None: ...


@dataclasses.dataclass
class Runtime:
    """Everything the sessions of one process share; built and torn down by the app."""

    settings: Settings
    metrics: Metrics
    broker: Broker
    hub: Hub
    presence: Presence
    auth: Authenticator
    limiter: MessageLimiter
    accounts: AccountService
    signouts: SignOuts
    draining: bool = False
    drain_deadline: float | None = None
    """While draining: the loop time by which every client must have been told 1001."""
    sessions: set[Connection] = dataclasses.field(default_factory=set)
    per_user: dict[str, int] = dataclasses.field(default_factory=dict)
    idle: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def add(self, session: Connection) -> None:
        self.sessions.add(session)
        self.per_user[session.user_id] = self.per_user.get(session.user_id, 0) + 1
        self.idle.clear()

    def remove(self, session: Connection) -> None:
        self.sessions.discard(session)
        remaining = self.per_user.get(session.user_id, 1) - 1
        if remaining:
            self.per_user[session.user_id] = remaining
        else:
            self.per_user.pop(session.user_id, None)
        if not self.sessions:
            self.idle.set()

    def closing_deadline(self, default_s: float) -> float:
        """The loop time until which a closing session waits for its frames to leave and
        for the peer's answer to its close: ``default_s`` from now, or while draining the
        drain's deadline (a client reading far behind, typing meanwhile, still reaches
        our 1001 then; a socket torn down earlier is reset, and the reset destroys what
        it has not read)."""
        if self.drain_deadline is not None:
            return self.drain_deadline
        return asyncio.get_running_loop().time() + default_s

    async def drain(self, grace_s: float) -> None:
        """Refuse new sockets, tell every client 1001 after its queued frames, and be done
        within ``grace_s``: clients still there after 80% of it are cut off."""
        if not self.draining:
            self.draining = True
            self.drain_deadline = asyncio.get_running_loop().time() + 0.8 * grace_s
            log.info("draining %d connections", len(self.sessions))
        for session in list(self.sessions):
            session.close(CLOSE_GOING_AWAY, "Server shutting down", after_queue=True)
        if not await self._wait_idle(0.8 * grace_s):
            log.warning("cutting off %d connections at the end of the grace", len(self.sessions))
            for session in list(self.sessions):
                session.kill()
            await self._wait_idle(0.1 * grace_s)

    async def _wait_idle(self, timeout: float) -> bool:
        if self.sessions:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.idle.wait()
        return not self.sessions
