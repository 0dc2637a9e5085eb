"""Handshake admission: who is connecting, to which room, and whether there is room.

Every check happens before the socket is accepted or refused and before the first
``await`` that could let another handshake of the same user in, so the connection
limits hold under simultaneous handshakes (the session registers itself in the same
step as it is created). A refused handshake is accepted only to say why: browsers
cannot read an HTTP refusal's reason.
May use: ``runtime``, ``accounts``, ``auth``, ``protocol``, ``metrics``, ``settings``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging

from starlette.websockets import WebSocket

from chatserver import protocol
from chatserver.accounts.model import AccountError, Forbidden, Invalid, Unavailable
from chatserver.auth import AuthError
from chatserver.protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_POLICY,
    CLOSE_TRY_LATER,
    ErrorCode,
    Identity,
    Member,
)
from chatserver.runtime import Runtime

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Admitted:
    """A handshake that may become a session."""

    identity: Identity
    member: Member
    subprotocol: str | None
    account_id: str | None = None  # signed in with a token: the account it names
    token_issued_at: int | None = None


BEARER_SUBPROTOCOL = "bearer"

_REFUSALS: dict[type[AccountError], tuple[ErrorCode, int]] = {
    Forbidden: (ErrorCode.FORBIDDEN_ROOM, CLOSE_POLICY),
    Unavailable: (ErrorCode.UNAVAILABLE, CLOSE_TRY_LATER),
    Invalid: (ErrorCode.INVALID_USER, CLOSE_POLICY),
}


def presented_token(websocket: WebSocket) -> tuple[str | None, str | None]:
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


async def refuse(
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
    await websocket.close(close_code, protocol.close_reason(message))


async def admit(runtime: Runtime, websocket: WebSocket) -> Admitted | None:
    """The connection's identity, or None once it has been refused (and told why)."""
    settings, params = runtime.settings, websocket.query_params
    if runtime.draining:
        await websocket.close(CLOSE_GOING_AWAY, "Server shutting down")
        return None
    origin = websocket.headers.get("origin")
    allowed = settings.allowed_origins
    if allowed and "*" not in allowed and origin not in allowed:
        runtime.metrics.connections_rejected.labels(ErrorCode.FORBIDDEN_ORIGIN.value).inc()
        await websocket.close(CLOSE_POLICY, "Origin not allowed")
        return None
    token, subprotocol = presented_token(websocket)
    say_no = functools.partial(refuse, websocket, runtime, subprotocol=subprotocol)
    channel = params.get("channel") or "default"
    if not protocol.valid_channel(channel):
        await say_no(
            code=ErrorCode.INVALID_CHANNEL,
            message="channel must be 1-64 letters, digits or _.:-",
            close_code=CLOSE_POLICY,
        )
        return None
    try:
        principal = await runtime.auth.authenticate(token=token, uid=params.get("uid"))
    except AuthError as exc:
        runtime.metrics.auth_failures.labels(exc.reason).inc()
        log.info("authentication refused", extra={"reason": exc.reason})
        code = ErrorCode.INVALID_USER if exc.reason == "invalid_uid" else ErrorCode.UNAUTHORIZED
        await say_no(code=code, message=exc.message, close_code=CLOSE_POLICY)
        return None
    user_id = principal.user_id
    if runtime.accounts.identities:
        try:
            user_id = await runtime.accounts.socket_user(
                principal if principal.authenticated else None, params.get("uid"), channel
            )
        except AccountError as exc:
            code, close_code = _REFUSALS.get(type(exc), (ErrorCode.UNAUTHORIZED, CLOSE_POLICY))
            log.info("socket identity refused", extra={"reason": exc.error})
            await say_no(code=code, message=exc.message, close_code=close_code)
            return None
    if len(runtime.sessions) >= settings.max_connections:
        await say_no(
            code=ErrorCode.TOO_MANY_CONNECTIONS,
            message="server is full; try again later",
            close_code=CLOSE_TRY_LATER,
        )
        return None
    if runtime.per_user.get(user_id, 0) >= settings.max_connections_per_user:
        await say_no(
            code=ErrorCode.TOO_MANY_CONNECTIONS,
            message=f"at most {settings.max_connections_per_user} connections per user",
            close_code=CLOSE_POLICY,
        )
        return None
    identity = Identity(
        user_id,
        channel,
        claimed_user_id=params.get("uid") if principal.authenticated else None,
    )
    member = Member(
        user_id,
        protocol.clean_username(params.get("username")) or principal.name,
        protocol.clean_color(params.get("color")),
    )
    signed_in = runtime.accounts.identities and principal.authenticated
    return Admitted(
        identity,
        member,
        subprotocol,
        account_id=principal.user_id if signed_in else None,
        token_issued_at=principal.issued_at if signed_in else None,
    )
