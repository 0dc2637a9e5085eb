"""Sockets whose right to chat ended close at once, in every process.

Admission refuses a token issued at or before the account's last sign-out, and a
non-member in a private room; but a socket admitted earlier would otherwise go on
chatting. So a sign-out, a deleted account or a removal from a private room is announced
through the broker, and each process closes the matching sockets of that account: an
``unauthorized`` error frame saying why, then close 1008 with the same words. Best
effort across processes: one whose Redis subscriber is reconnecting at that moment
misses the notice, and its sockets go on until they reconnect (when admission refuses
them).
May use: ``broker``, ``protocol``.
"""

from __future__ import annotations

import logging
from typing import Protocol

import orjson

from chatserver.broker.base import Announcements

log = logging.getLogger(__name__)

KIND = "sign_in_ended"


class SignedIn(Protocol):
    """What this module needs of a socket opened with a token."""

    @property
    def account_id(self) -> str | None: ...

    @property
    def token_issued_at(self) -> int | None:
        """The token's ``iat`` (seconds), None when it has none."""

    @property
    def channel_id(self) -> str: ...

    def end_sign_in(self, reason: str) -> None:
        """Tell the client why and close the socket."""


class SignOuts:
    """The signed-in sockets of this process by account, and the notices that end them."""

    def __init__(self, broker: Announcements) -> None:
        self._broker = broker
        self._open: dict[str, set[SignedIn]] = {}
        broker.set_announcement_handler(self._on_announcement)

    def track(self, socket: SignedIn) -> None:
        if socket.account_id is not None:
            self._open.setdefault(socket.account_id, set()).add(socket)

    def untrack(self, socket: SignedIn) -> None:
        if socket.account_id is None:
            return
        sockets = self._open.get(socket.account_id)
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                del self._open[socket.account_id]

    def open_count(self, account_id: str) -> int:
        return len(self._open.get(account_id, ()))

    async def announce(
        self,
        account_id: str,
        *,
        issued_up_to: int | None = None,
        room: str | None = None,
        reason: str,
    ) -> None:
        """Close, in every process, the account's sockets whose token was issued at or
        before ``issued_up_to`` (seconds; None: whenever) in ``room`` (None: any room).
        Raises BrokerUnavailable when it cannot."""
        notice = {
            "kind": KIND,
            "account": account_id,
            "up_to": issued_up_to,
            "room": room,
            "reason": reason,
        }
        await self._broker.announce(orjson.dumps(notice))

    def _on_announcement(self, data: bytes) -> None:
        try:
            notice = orjson.loads(data)
            if not isinstance(notice, dict):
                raise TypeError("not an object")
            if notice.get("kind") != KIND:
                return
            account, reason = notice["account"], notice["reason"]
            up_to, room = notice.get("up_to"), notice.get("room")
            if not (
                isinstance(account, str)
                and isinstance(reason, str)
                and (up_to is None or isinstance(up_to, int))
                and (room is None or isinstance(room, str))
            ):
                raise TypeError("field types")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            log.warning("ignored a malformed announcement: %s", type(exc).__name__)
            return
        ended = 0
        for socket in list(self._open.get(account, ())):
            if room is not None and socket.channel_id != room:
                continue
            issued = socket.token_issued_at
            if up_to is None or issued is None or issued <= up_to:
                socket.end_sign_in(reason)
                ended += 1
        if ended:
            log.info("sign-in ended", extra={"sockets": ended})
