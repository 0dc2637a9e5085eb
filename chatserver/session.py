"""One admitted WebSocket connection, from its join to its goodbye.

A session validates every client frame, enforces limits, publishes through the broker
and receives through the hub. Frames go out in order: straight from the hub's fan-out
loop while the socket's buffer has room and nothing is queued (as prepared bytes when
the server offers a ``wire`` writer), otherwise through the connection's single writer
task and its bounded :mod:`outbox`. Admission (:mod:`admission`) comes before; the
shared state and the drain are the :mod:`runtime`'s.
May use: ``admission``, ``runtime``, ``outbox``, ``hub``, ``presence``, ``auth``,
``limits``, ``broker``, ``protocol``, ``metrics``, ``logs``, ``settings``, ``wire``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections import OrderedDict
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from chatserver import admission, logs, outbox, protocol, wire
from chatserver.broker.base import BrokerUnavailable
from chatserver.limits import FrameBucket
from chatserver.presence import now_ms
from chatserver.protocol import (
    CLOSE_POLICY,
    CLOSE_TRY_LATER,
    CLOSE_UNSUPPORTED,
    ErrorCode,
    FrameType,
    Identity,
    Member,
    ProtocolError,
)
from chatserver.runtime import Runtime

log = logging.getLogger(__name__)

SEEN_IDS = 64
CLOSE_FLUSH_S = 5.0
STALL_CREDIT_AFTER_S = 0.1


class Session:
    """A connected client. Implements ``hub.Receiver``."""

    def __init__(
        self,
        runtime: Runtime,
        websocket: WebSocket,
        *,
        identity: Identity,
        member: Member,
        account_id: str | None = None,
        token_issued_at: int | None = None,
    ) -> None:
        self.rt = runtime
        self.ws = websocket
        self.identity = identity
        self.member = member
        self.account_id = account_id
        self.token_issued_at = token_issued_at
        self.conn_id = uuid.uuid4().hex[:16]
        self._limit = runtime.settings.send_queue_size
        self._queue = outbox.Outbox()
        self._write_frame = wire.writer_for(websocket.scope)
        self._control = wire.control_for(websocket.scope)
        self._held: list[wire.Outgoing] | None = []  # what arrives before user_sync went out
        # Chat frames up to this offset were published before the join's replay read: in
        # the replay already, or superseded there. Their live copies (they may arrive
        # after the read) are dropped until a newer frame comes.
        self._replayed_through: int | None = None
        self._closing = False
        self._sending = False
        self._writer: asyncio.Task[None] | None = None
        self._task: asyncio.Task[Any] | None = None
        self.killed = False
        self._bucket = FrameBucket(runtime.settings.frames_per_second)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._strikes = 0
        self._strike_window = time.monotonic()

    @property
    def user_id(self) -> str:
        return self.identity.user_id

    @property
    def channel_id(self) -> str:
        return self.identity.channel_id

    # --- hub.Receiver ----------------------------------------------------------------

    def offer(self, message: wire.Outgoing) -> bool:
        if self._closing:
            return True
        if self._held is not None:
            if len(self._held) >= self._limit:
                return False
            self._held.append(message)
            return True
        through = self._replayed_through
        if through is not None and message.offset is not None:
            if message.offset <= through:
                return True
            self._replayed_through = None
        text = message.text
        if len(self._queue) >= self._limit:
            return False
        if self._sending or self._queue:
            self._enqueue(text)
        elif self._write_frame is None or not self._write_frame(message.frame):
            self._send_now(text)
        return True

    def _send_now(self, text: str) -> None:
        """Send from the fan-out loop itself, sparing a task wake-up per delivery: while the
        socket's buffer has room the ASGI send completes without suspending. If it would
        wait, the writer task takes that send over and everything after it queues."""
        coro = self.ws.send({"type": "websocket.send", "text": text})
        try:
            waiting_on = coro.send(None)
        except StopIteration:
            return
        except (WebSocketDisconnect, RuntimeError, OSError):
            self._closing = True
            return
        self._enqueue(outbox.Resume(coro, waiting_on))

    def overflow(self) -> None:
        if self._closing:
            return
        self.rt.metrics.slow_consumers.inc()
        log.info("slow consumer dropped", extra={"user": self.user_id})
        reason = "Too slow: frames arrive faster than they are read"
        if self._control is None:
            self.close(CLOSE_TRY_LATER, reason)
            asyncio.get_running_loop().call_later(CLOSE_FLUSH_S, self.kill)
            return
        # Its socket is full: a close queued behind the unread bytes would never leave.
        # The close frame goes out past them, the session ends now (freeing its slots
        # and presence) and the socket is aborted unless the peer answers within seconds.
        self._closing = True
        self._queue.clear()
        self._control.close_now(CLOSE_TRY_LATER, reason)

    def end_sign_in(self, reason: str) -> None:
        """Implements ``signouts.SignedIn``: the account signed out (or is gone)."""
        if self._closing:
            return
        log.info("sign-in ended", extra={"user": self.user_id})
        frame = protocol.error_frame(ErrorCode.UNAUTHORIZED, reason)
        self.offer(wire.Outgoing(protocol.encode(frame)))
        self.close(CLOSE_POLICY, protocol.close_reason(reason), after_queue=True)

    def kill(self) -> None:
        """Stop serving this client now, even if it never reads its close frame."""
        self.killed = True
        if self._control is not None:
            self._control.abort()
        if self._task is not None:
            self._task.cancel()

    def close(self, code: int, reason: str, *, after_queue: bool = False) -> None:
        """Close once: now (queued frames dropped) or after the queued frames."""
        if self._closing:
            return
        self._closing = True
        if not after_queue or len(self._queue) >= self._limit:
            self._queue.clear()
        self._enqueue(outbox.Close(code, reason))

    def _enqueue(self, item: str | outbox.Close | outbox.Resume) -> None:
        self._queue.put(item)
        if self._writer is None:
            self._writer = asyncio.create_task(
                self._write_queued(), name=f"ws-writer-{self.conn_id}"
            )

    # --- lifecycle -------------------------------------------------------------------

    async def run(self, *, subprotocol: str | None) -> None:
        rt = self.rt
        self._task = asyncio.current_task()
        # Counted before the first await: ``serve`` checked the limits just now, and a
        # handshake counted only after its accept would let simultaneous ones all pass.
        rt.add(self)
        rt.signouts.track(self)
        joined = accepted = False
        try:
            await self.ws.accept(subprotocol=subprotocol)
            accepted = True
            rt.metrics.connections_active.inc()
            rt.metrics.connections_total.inc()
            joined = await self._join()
            if joined:
                await self._read_forever()
            deadline = rt.closing_deadline(CLOSE_FLUSH_S)
            if self._closing and self._writer is not None:
                # We are closing: let the writer flush what is queued and the close frame.
                # (A client that hung up has nothing left to receive: leave at once.)
                async with asyncio.timeout(_left(deadline)):
                    await asyncio.shield(self._writer)
            if self._closing and self._control is not None:
                # Wait for the peer's answer to our close: a socket closed while the peer
                # is still sending (typing) is reset, and the reset destroys the close
                # frame it has not read yet (the peer sees 1006, not our code).
                await self._control.wait_closed(_left(deadline))
        except (WebSocketDisconnect, TimeoutError):
            pass
        finally:
            writer = self._writer
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await writer
            self._queue.clear()
            await self._leave(joined)
            rt.signouts.untrack(self)
            rt.remove(self)
            if accepted:
                rt.metrics.connections_active.dec()
                rt.metrics.connections_closed.inc()

    async def _join(self) -> bool:
        rt, channel = self.rt, self.identity.channel_id
        params = self.ws.query_params
        resume_error: ProtocolError | None = None
        try:
            resume = protocol.parse_resume(params.get("since"), params.get("epoch"))
        except ProtocolError as exc:
            resume, resume_error = None, exc
        try:
            await rt.hub.join(channel, self)
            members = await rt.presence.enter(channel, key=self.conn_id, member=self.member)
            replay = await rt.broker.replay(
                channel,
                since=resume,
                since_ms=now_ms() - int(rt.settings.message_fade_seconds * 1000),
                limit=self._limit // 2,
                max_bytes=rt.settings.replay_max_bytes,
            )
        except BrokerUnavailable as exc:
            log.warning("join refused: %s", exc)
            self._send_error(ErrorCode.UNAVAILABLE, "chat is briefly unavailable; reconnecting")
            self.close(CLOSE_TRY_LATER, "Broker unavailable, try again later", after_queue=True)
            return False
        rt.hub.seed(channel, replay.top)
        held, self._held = self._held or [], None
        sync = protocol.user_sync_frame(
            members,
            channel_id=channel,
            user_id=self.user_id,
            timestamp_ms=now_ms(),
            epoch=replay.top.epoch,
        )
        self.offer(wire.Outgoing(protocol.encode(sync)))
        if resume_error is not None:
            self._send_error(resume_error.code, resume_error.message)
        if resume is not None and not replay.resumed:
            gone = protocol.frames_missed_frame(
                channel_id=channel,
                epoch=replay.top.epoch,
                reason=protocol.MissedReason.RESUME_GONE,
                timestamp_ms=now_ms(),
            )
            self.offer(wire.Outgoing(protocol.encode(gone)))
        for data in replay.frames:  # oldest first
            if orjson.loads(data).get("user_id") != self.user_id:
                self.offer(wire.Outgoing(data.decode("utf-8"), data))
        self._replayed_through = replay.top.offset
        for message in held:
            self.offer(message)
        log.info(
            "joined",
            extra={"channel": channel, "user": self.user_id, "resumed": replay.resumed},
        )
        try:
            await self._publish_presence(FrameType.USER_JOINED)
        except BrokerUnavailable:
            log.info("join not announced: broker unavailable", extra={"user": self.user_id})
        return True

    async def _leave(self, joined: bool) -> None:
        rt, channel = self.rt, self.identity.channel_id
        await rt.hub.leave(channel, self)
        if not joined:
            return
        try:
            gone = await rt.presence.leave(channel, key=self.conn_id, user_id=self.user_id)
            if gone:
                await self._publish_presence(FrameType.USER_LEFT)
        except BrokerUnavailable:
            # The record expires on its own and the heartbeat announces the departure.
            log.info("left during a broker outage", extra={"user": self.user_id})
        log.info("left", extra={"channel": channel, "user": self.user_id})

    async def _write_queued(self) -> None:
        """Send what is queued, in order, then end (``_enqueue`` starts a new one)."""
        token = logs.correlation_id.set(self.conn_id)
        try:
            while (item := self._queue.pop()) is not None:
                if isinstance(item, outbox.Close):
                    if self.ws.application_state == WebSocketState.CONNECTED:
                        await self.ws.close(item.code, item.reason)
                    return
                self._sending = True
                try:
                    if isinstance(item, outbox.Resume):
                        await outbox.finish(item)
                    else:
                        await self.ws.send_text(item)
                finally:
                    self._sending = False
        except (WebSocketDisconnect, RuntimeError, OSError):
            self._closing = True
        finally:
            self._writer = None
            logs.correlation_id.reset(token)

    async def _read_forever(self) -> None:
        while not self._closing:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                self._strike(
                    ProtocolError(
                        ErrorCode.BINARY_NOT_SUPPORTED,
                        "binary frames are not supported; send JSON text",
                    ),
                    close_code=CLOSE_UNSUPPORTED,
                )
                continue
            await self._on_text(text)

    # --- frames ----------------------------------------------------------------------

    async def _on_text(self, text: str) -> None:
        rt = self.rt
        if not self._bucket.take():
            rt.metrics.rate_limited.inc()
            self._strike(
                ProtocolError(
                    ErrorCode.RATE_LIMITED,
                    "too many frames per second; slow down",
                    message_id=protocol.peek_message_id(text),
                ),
                close_code=CLOSE_TRY_LATER,
            )
            return
        started = time.monotonic()
        try:
            await self._on_frame(text)
        finally:
            stalled = time.monotonic() - started
            if stalled > STALL_CREDIT_AFTER_S:
                # We were not reading meanwhile; what the client sent queued up and
                # arrives at once. That burst is ours, not the client's.
                self._bucket.credit(stalled)

    async def _on_frame(self, text: str) -> None:
        rt = self.rt
        try:
            frame = protocol.parse_client_frame(
                text, identity=self.identity, max_payload_bytes=rt.settings.max_message_size
            )
            await self._handle(frame)
        except ProtocolError as exc:
            close_code = CLOSE_TRY_LATER if exc.code == ErrorCode.RATE_LIMITED else CLOSE_POLICY
            self._strike(exc, close_code=close_code)
        except BrokerUnavailable:
            self._send_error(
                ErrorCode.UNAVAILABLE,
                "not sent: chat is briefly unavailable; try again",
                message_id=getattr(frame, "message_id", None),
            )

    async def _handle(self, frame: protocol.ClientFrame) -> None:
        rt, channel = self.rt, self.identity.channel_id
        if isinstance(frame, protocol.ChatFrame):
            message_id = frame.message_id
            if message_id not in self._seen:
                await self._check_rate(message_id)
                self._seen[message_id] = None
                if len(self._seen) > SEEN_IDS:
                    self._seen.popitem(last=False)
            timestamp = now_ms()
            out = protocol.chat_frame(
                frame, identity=self.identity, message_id=message_id, timestamp_ms=timestamp
            )
            published = await rt.broker.publish_recent(
                channel,
                author=self.user_id,
                message_id=message_id,
                data=protocol.encode_bytes(out),
                timestamp_ms=timestamp,
                keep_ms=int(rt.settings.message_fade_seconds * 1000),
            )
            if not published:
                # Original clients key text by message_id alone: forwarded, this frame
                # would replace another person's words on every screen.
                raise ProtocolError(
                    ErrorCode.MESSAGE_ID_TAKEN,
                    f"message_id {message_id!r} belongs to another user's message in this "
                    "room; start a new message with a message_id of your own",
                    message_id=message_id,
                )
            rt.metrics.messages_published.labels(rt.metrics.channel_label(channel)).inc()
            return
        await self._check_rate(None)
        if isinstance(frame, protocol.UsernameChanged):
            self.member = dataclasses.replace(self.member, username=frame.username)
            kind = FrameType.USERNAME_CHANGED
        else:
            self.member = dataclasses.replace(self.member, color=frame.color)
            kind = FrameType.COLOR_CHANGED
        await rt.presence.update(channel, key=self.conn_id, member=self.member)
        await self._publish_presence(kind)

    async def _check_rate(self, message_id: str | None) -> None:
        if not await self.rt.limiter.allow(self.user_id):
            self.rt.metrics.rate_limited.inc()
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                f"rate limit of {self.rt.limiter.per_minute} messages per minute reached",
                message_id=message_id,
            )

    async def _publish_presence(self, kind: FrameType) -> None:
        frame = protocol.presence_frame(
            kind, member=self.member, channel_id=self.identity.channel_id, timestamp_ms=now_ms()
        )
        await self.rt.broker.publish(self.identity.channel_id, protocol.encode_bytes(frame))

    def _send_error(self, code: ErrorCode, message: str, *, message_id: str | None = None) -> None:
        self.rt.metrics.frames_rejected.labels(code.value).inc()
        frame = protocol.error_frame(code, message, message_id=message_id)
        if not self.offer(wire.Outgoing(protocol.encode(frame))):
            self.overflow()

    def _strike(self, error: ProtocolError, *, close_code: int) -> None:
        """Answer a bad frame; close the socket when bad frames keep coming."""
        self._send_error(error.code, error.message, message_id=error.message_id)
        now = time.monotonic()
        if now - self._strike_window > 60:
            self._strike_window, self._strikes = now, 0
        self._strikes += 1
        if self._strikes >= self.rt.settings.abuse_threshold:
            log.info("closing abusive connection", extra={"code": error.code.value})
            self.close(
                close_code, f"Too many rejected frames ({error.code.value})"[:120], after_queue=True
            )


def _left(deadline: float) -> float:
    return max(0.0, deadline - asyncio.get_running_loop().time())


async def serve(runtime: Runtime, websocket: WebSocket) -> None:
    """Handle one ``/api/chat`` connection end to end."""
    admitted = await admission.admit(runtime, websocket)
    if admitted is None:
        return
    session = Session(
        runtime,
        websocket,
        identity=admitted.identity,
        member=admitted.member,
        account_id=admitted.account_id,
        token_issued_at=admitted.token_issued_at,
    )
    token_cid = logs.correlation_id.set(session.conn_id)
    try:
        await session.run(subprotocol=admitted.subprotocol)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if not session.killed or task is None:
            raise
        task.uncancel()  # our own cut-off at the end of a drain: finish normally
    finally:
        logs.correlation_id.reset(token_cid)
