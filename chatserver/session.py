"""One WebSocket connection from handshake to goodbye, and the runtime they share.

A session validates every client frame, enforces limits, publishes through the broker
and receives through the hub. Frames go out in order: straight from the hub's fan-out
loop while the socket's buffer has room and nothing is queued (as prepared bytes when
the server offers a ``wire`` writer), otherwise through the connection's single writer
task and its bounded queue.
May use: ``hub``, ``presence``, ``auth``, ``limits``, ``broker``, ``protocol``,
``metrics``, ``logs``, ``settings``, ``wire``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from chatserver import logs, protocol, wire
from chatserver.auth import Authenticator, AuthError
from chatserver.broker.base import Broker, BrokerUnavailable
from chatserver.hub import Hub
from chatserver.limits import FrameBucket, MessageLimiter
from chatserver.metrics import Metrics
from chatserver.presence import Presence, now_ms
from chatserver.protocol import ErrorCode, FrameType, Identity, Member, ProtocolError
from chatserver.settings import Settings

log = logging.getLogger(__name__)

CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_TRY_LATER = 1013
SEEN_IDS = 64
CLOSE_FLUSH_S = 5.0
STALL_CREDIT_AFTER_S = 0.1
REPLAY_DEDUP_S = 2.0


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
    draining: bool = False
    sessions: set[Session] = dataclasses.field(default_factory=set)
    per_user: dict[str, int] = dataclasses.field(default_factory=dict)
    idle: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def add(self, session: Session) -> None:
        self.sessions.add(session)
        self.per_user[session.user_id] = self.per_user.get(session.user_id, 0) + 1
        self.idle.clear()

    def remove(self, session: Session) -> None:
        self.sessions.discard(session)
        remaining = self.per_user.get(session.user_id, 1) - 1
        if remaining:
            self.per_user[session.user_id] = remaining
        else:
            self.per_user.pop(session.user_id, None)
        if not self.sessions:
            self.idle.set()

    async def drain(self, grace_s: float) -> None:
        """Refuse new sockets, tell every client 1001 after its queued frames, and be done
        within ``grace_s``: clients still there after 90% of it are cut off."""
        if not self.draining:
            self.draining = True
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
                await asyncio.wait_for(self.idle.wait(), timeout=timeout)
        return not self.sessions


@dataclasses.dataclass(frozen=True)
class _Close:
    code: int
    reason: str


@dataclasses.dataclass(frozen=True)
class _Resume:
    """A send begun in the fan-out loop that found the socket's buffer full: the writer
    finishes it, first, before anything queued after it."""

    coro: Coroutine[Any, Any, None]
    waiting_on: Any


async def _finish(resume: _Resume) -> None:
    """Drive a send coroutine that suspended on ``waiting_on`` to its end."""
    coro, waiting_on = resume.coro, resume.waiting_on
    task = asyncio.current_task()
    while True:
        if waiting_on is not None:
            # What Task.__step does with a yielded future before waiting on it.
            waiting_on._asyncio_future_blocking = False
        try:
            await (waiting_on if waiting_on is not None else asyncio.sleep(0))
        except asyncio.CancelledError:
            if task is not None and task.cancelling():
                coro.close()
                raise
        except Exception:  # the coroutine reads the future's outcome itself, just below
            pass
        try:
            waiting_on = coro.send(None)
        except StopIteration:
            return


class Outbox:
    """A connection's send queue, drained by a writer task that exists only while there
    is something in it.

    Most sockets of a quiet room never queue anything: the deque is made on first use
    and dropped when empty, which matters at tens of thousands of idle connections."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: collections.deque[str | _Close | _Resume] | None = None

    def __len__(self) -> int:
        return 0 if self._items is None else len(self._items)

    def put(self, item: str | _Close | _Resume) -> None:
        if self._items is None:
            self._items = collections.deque()
        self._items.append(item)

    def pop(self) -> str | _Close | _Resume | None:
        """The oldest item, or None when there is none."""
        items = self._items
        if not items:
            return None
        item = items.popleft()
        if not items:
            self._items = None
        return item

    def clear(self) -> None:
        for item in self._items or ():
            if isinstance(item, _Resume):
                item.coro.close()
        self._items = None


class Session:
    """A connected client. Implements ``hub.Receiver``."""

    def __init__(
        self, runtime: Runtime, websocket: WebSocket, *, identity: Identity, member: Member
    ) -> None:
        self.rt = runtime
        self.ws = websocket
        self.identity = identity
        self.member = member
        self.conn_id = uuid.uuid4().hex[:16]
        self._limit = runtime.settings.send_queue_size
        self._queue = Outbox()
        self._write_frame = wire.writer_for(websocket.scope)
        self._control = wire.control_for(websocket.scope)
        self._held: list[str] | None = []  # frames that arrive before user_sync went out
        # Replayed frames may also arrive live (published just before the replay read,
        # delivered just after): those copies are dropped for a moment after the join.
        self._replayed: set[str] | None = None
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

    # --- hub.Receiver ----------------------------------------------------------------

    def offer(self, text: str, frame: bytes | None = None) -> bool:
        if self._closing:
            return True
        if self._replayed and text in self._replayed:
            self._replayed.discard(text)
            return True
        if self._held is not None:
            if len(self._held) >= self._limit:
                return False
            self._held.append(text)
            return True
        if len(self._queue) >= self._limit:
            return False
        if self._sending or self._queue:
            self._enqueue(text)
        elif frame is None or self._write_frame is None or not self._write_frame(frame):
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
        self._enqueue(_Resume(coro, waiting_on))

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
        self._enqueue(_Close(code, reason))

    def _enqueue(self, item: str | _Close | _Resume) -> None:
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
        joined = accepted = False
        try:
            await self.ws.accept(subprotocol=subprotocol)
            accepted = True
            rt.metrics.connections_active.inc()
            rt.metrics.connections_total.inc()
            joined = await self._join()
            if joined:
                await self._read_forever()
            if self._closing and self._writer is not None:
                # We are closing: let the writer flush what is queued and the close frame.
                # (A client that hung up has nothing left to receive: leave at once.)
                await asyncio.wait_for(asyncio.shield(self._writer), timeout=CLOSE_FLUSH_S)
            if self._closing and self._control is not None:
                # Wait for the peer's answer to our close: a socket closed while the peer
                # is still sending (typing) is reset, and the reset destroys the close
                # frame it has not read yet (the peer sees 1006, not our code).
                await self._control.wait_closed(CLOSE_FLUSH_S)
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
            rt.remove(self)
            if accepted:
                rt.metrics.connections_active.dec()

    async def _join(self) -> bool:
        rt, channel = self.rt, self.identity.channel_id
        try:
            await rt.hub.join(channel, self)
            members = await rt.presence.enter(channel, key=self.conn_id, member=self.member)
            replay = await rt.broker.recent(
                channel,
                since_ms=now_ms() - int(rt.settings.message_fade_seconds * 1000),
                limit=self._limit // 2,
                max_bytes=rt.settings.replay_max_bytes,
            )
        except BrokerUnavailable as exc:
            log.warning("join refused: %s", exc)
            self._send_error(ErrorCode.UNAVAILABLE, "chat is briefly unavailable; reconnecting")
            self.close(CLOSE_TRY_LATER, "Broker unavailable, try again later", after_queue=True)
            return False
        held, self._held = self._held or [], None
        sync = protocol.user_sync_frame(
            members, channel_id=channel, user_id=self.user_id, timestamp_ms=now_ms()
        )
        self.offer(protocol.encode(sync))
        replayed = set()
        for data in replay:  # the newest that fit the count and byte budgets, oldest first
            if orjson.loads(data).get("user_id") != self.user_id:
                text = data.decode("utf-8")
                replayed.add(text)
                self.offer(text)
        for text in held:
            # Published between our subscribe and the replay read: already replayed.
            if text not in replayed:
                self.offer(text)
            else:
                replayed.discard(text)
        if replayed:
            self._replayed = replayed
            asyncio.get_running_loop().call_later(REPLAY_DEDUP_S, self._forget_replay)
        log.info("joined", extra={"channel": channel, "user": self.user_id})
        try:
            await self._publish_presence(FrameType.USER_JOINED)
        except BrokerUnavailable:
            log.info("join not announced: broker unavailable", extra={"user": self.user_id})
        return True

    def _forget_replay(self) -> None:
        self._replayed = None

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
                if isinstance(item, _Close):
                    if self.ws.application_state == WebSocketState.CONNECTED:
                        await self.ws.close(item.code, item.reason)
                    return
                self._sending = True
                try:
                    if isinstance(item, _Resume):
                        await _finish(item)
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
            if isinstance(frame, protocol.ChatFrame) and frame.message_id is None:
                frame = dataclasses.replace(frame, message_id=uuid.uuid4().hex)
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
            message_id = frame.message_id or uuid.uuid4().hex
            if message_id not in self._seen:
                await self._check_rate(message_id)
                self._seen[message_id] = None
                if len(self._seen) > SEEN_IDS:
                    self._seen.popitem(last=False)
            timestamp = now_ms()
            out = protocol.chat_frame(
                frame, identity=self.identity, message_id=message_id, timestamp_ms=timestamp
            )
            await rt.broker.publish_recent(
                channel,
                # Keyed by author too: another user reusing this id must not replace it.
                key=f"{len(self.user_id)}:{self.user_id}:{message_id}",
                data=orjson.dumps(out),
                timestamp_ms=timestamp,
                keep_ms=int(rt.settings.message_fade_seconds * 1000),
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
        await self.rt.broker.publish(self.identity.channel_id, orjson.dumps(frame))

    def _send_error(self, code: ErrorCode, message: str, *, message_id: str | None = None) -> None:
        self.rt.metrics.frames_rejected.labels(code.value).inc()
        frame = protocol.error_frame(code, message, message_id=message_id)
        if not self.offer(protocol.encode(frame)):
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


BEARER_SUBPROTOCOL = "bearer"


def _token(websocket: WebSocket) -> tuple[str | None, str | None]:
    """The presented token and the subprotocol to answer with.

    Order: ``?token=``, ``Authorization: Bearer``, then ``Sec-WebSocket-Protocol:
    bearer, <token>`` (the one way a browser can send a header-borne token)."""
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")]
    subprotocol = BEARER_SUBPROTOCOL if BEARER_SUBPROTOCOL in offered else None
    token = websocket.query_params.get("token")
    if token:
        return token, subprotocol
    header = websocket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip(), subprotocol
    if subprotocol is not None:
        index = offered.index(BEARER_SUBPROTOCOL)
        if index + 1 < len(offered):
            return offered[index + 1], subprotocol
    return None, subprotocol


async def _refuse(
    websocket: WebSocket,
    runtime: Runtime,
    *,
    subprotocol: str | None,
    code: ErrorCode,
    message: str,
    close_code: int,
) -> None:
    """Accept only to say why not: browsers cannot read an HTTP refusal's reason."""
    runtime.metrics.connections_rejected.labels(code.value).inc()
    await websocket.accept(subprotocol=subprotocol)
    await websocket.send_text(protocol.encode(protocol.error_frame(code, message)))
    await websocket.close(close_code, message[:120])


async def serve(runtime: Runtime, websocket: WebSocket) -> None:
    """Handle one ``/api/chat`` connection end to end."""
    settings, params = runtime.settings, websocket.query_params
    if runtime.draining:
        await websocket.close(CLOSE_GOING_AWAY, "Server shutting down")
        return
    origin = websocket.headers.get("origin")
    if settings.allowed_origins and origin not in settings.allowed_origins:
        runtime.metrics.connections_rejected.labels(ErrorCode.FORBIDDEN_ORIGIN.value).inc()
        await websocket.close(CLOSE_POLICY, "Origin not allowed")
        return
    token, subprotocol = _token(websocket)
    refuse = functools.partial(_refuse, websocket, runtime, subprotocol=subprotocol)
    channel = params.get("channel") or "default"
    if not protocol.valid_channel(channel):
        await refuse(
            code=ErrorCode.INVALID_CHANNEL,
            message="channel must be 1-64 letters, digits or _.:-",
            close_code=CLOSE_POLICY,
        )
        return
    try:
        principal = await runtime.auth.authenticate(token=token, uid=params.get("uid"))
    except AuthError as exc:
        runtime.metrics.auth_failures.labels(exc.reason).inc()
        log.info("authentication refused", extra={"reason": exc.reason})
        code = ErrorCode.INVALID_USER if exc.reason == "invalid_uid" else ErrorCode.UNAUTHORIZED
        await refuse(code=code, message=exc.message, close_code=CLOSE_POLICY)
        return
    if len(runtime.sessions) >= settings.max_connections:
        await refuse(
            code=ErrorCode.TOO_MANY_CONNECTIONS,
            message="server is full; try again later",
            close_code=CLOSE_TRY_LATER,
        )
        return
    if runtime.per_user.get(principal.user_id, 0) >= settings.max_connections_per_user:
        await refuse(
            code=ErrorCode.TOO_MANY_CONNECTIONS,
            message=f"at most {settings.max_connections_per_user} connections per user",
            close_code=CLOSE_POLICY,
        )
        return
    identity = Identity(
        principal.user_id,
        channel,
        claimed_user_id=params.get("uid") if principal.authenticated else None,
    )
    member = Member(
        principal.user_id,
        protocol.clean_username(params.get("username")) or principal.name,
        protocol.clean_color(params.get("color")),
    )
    session = Session(runtime, websocket, identity=identity, member=member)
    token_cid = logs.correlation_id.set(session.conn_id)
    try:
        await session.run(subprotocol=subprotocol)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if not session.killed or task is None:
            raise
        task.uncancel()  # our own cut-off at the end of a drain: finish normally
    finally:
        logs.correlation_id.reset(token_cid)
