"""The wire protocol (the README's "The WebSocket protocol"): frame validation and encoding.

Purely data-manipulative: no I/O, no clock reads except through arguments.
Client frames are parsed into typed values and re-encoded by the server, so nothing a
client sends reaches another client unless it was validated field by field.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import unicodedata
import uuid
from typing import Any, Final

import orjson

MAX_COORDINATE: Final = 1e7
MAX_ID_LENGTH: Final = 128
MAX_USERNAME_LENGTH: Final = 64

CHANNEL_RE: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
USER_ID_RE: Final = re.compile(r"^[A-Za-z0-9_.:@|+=-]{1,128}$")
MESSAGE_ID_RE: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
COLOR_RE: Final = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")


# WebSocket close codes the server uses (RFC 6455, section 7.4.1).
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_TRY_LATER = 1013


class FrameType(enum.StrEnum):
    CHAT = "chat"
    USER_SYNC = "user_sync"
    USER_JOINED = "user_joined"
    USER_LEFT = "user_left"
    USERNAME_CHANGED = "username_changed"
    COLOR_CHANGED = "color_changed"
    ERROR = "error"
    FRAMES_MISSED = "frames_missed"


CLIENT_TYPES: Final = frozenset(
    {FrameType.CHAT, FrameType.USERNAME_CHANGED, FrameType.COLOR_CHANGED}
)


class ErrorCode(enum.StrEnum):
    """Stable codes of ``error`` frames; clients may switch on them."""

    INVALID_JSON = "invalid_json"
    INVALID_FRAME = "invalid_frame"
    UNKNOWN_TYPE = "unknown_type"
    FORBIDDEN_TYPE = "forbidden_type"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    INVALID_POSITION = "invalid_position"
    SPOOFED_IDENTITY = "spoofed_identity"
    MESSAGE_ID_TAKEN = "message_id_taken"
    WRONG_CHANNEL = "wrong_channel"
    BINARY_NOT_SUPPORTED = "binary_not_supported"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    UNAUTHORIZED = "unauthorized"
    INVALID_CHANNEL = "invalid_channel"
    INVALID_USER = "invalid_user"
    FORBIDDEN_ORIGIN = "forbidden_origin"
    FORBIDDEN_ROOM = "forbidden_room"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    INVALID_RESUME = "invalid_resume"


class ProtocolError(Exception):
    """A client frame that cannot be accepted; carries the ``error`` frame to answer with."""

    def __init__(self, code: ErrorCode, message: str, *, message_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.message_id = message_id


@dataclasses.dataclass(frozen=True, slots=True)
class Position:
    x: float
    y: float


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    """Who a connection speaks for: the values the server stamps on its frames."""

    user_id: str
    channel_id: str
    claimed_user_id: str | None = None  # the query ``uid``, tolerated in frames when auth is on


@dataclasses.dataclass(frozen=True, slots=True)
class ChatFrame:
    message_id: str  # the client's, or one the server assigned
    payload: str
    position: Position | None


@dataclasses.dataclass(frozen=True, slots=True)
class UsernameChanged:
    username: str | None  # None: no display name (peers show the user id)


@dataclasses.dataclass(frozen=True, slots=True)
class ColorChanged:
    color: str


ClientFrame = ChatFrame | UsernameChanged | ColorChanged


@dataclasses.dataclass(frozen=True, slots=True)
class Member:
    """A presence record: one user as shown in ``user_sync``."""

    user_id: str
    username: str | None = None
    color: str | None = None

    def as_dict(self) -> dict[str, str]:
        out = {"user_id": self.user_id}
        if self.username is not None:
            out["username"] = self.username
        if self.color is not None:
            out["color"] = self.color
        return out


def valid_channel(name: str) -> bool:
    return bool(CHANNEL_RE.fullmatch(name))


def valid_user_id(user_id: str) -> bool:
    return bool(USER_ID_RE.fullmatch(user_id))


_INVISIBLE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def clean_username(value: object) -> str | None:
    """A display name fit to show others, or None when the value is not one.

    Control, format (bidi overrides, zero-width characters), private-use, unassigned
    and line-separator characters are removed: they let a name impersonate another or
    reorder the text around it. Runs of whitespace become one space."""
    if not isinstance(value, str):
        return None
    spaced = " ".join(unicodedata.normalize("NFC", value).split())
    name = "".join(ch for ch in spaced if unicodedata.category(ch) not in _INVISIBLE_CATEGORIES)
    name = " ".join(name.split())
    if not name or len(name) > MAX_USERNAME_LENGTH:
        return None
    return name


def peek_message_id(text: str) -> str | None:
    """The frame's ``message_id`` if it has a valid one, for answering a frame that is
    refused before it is parsed (rate limit); None otherwise."""
    if len(text) > 64 * 1024:
        return None
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    value = data.get("message_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and MESSAGE_ID_RE.fullmatch(value) else None


def clean_color(value: object) -> str | None:
    if isinstance(value, str) and COLOR_RE.fullmatch(value):
        return value
    return None


def parse_client_frame(text: str, *, identity: Identity, max_payload_bytes: int) -> ClientFrame:
    """Validate one text frame from a client; raise ProtocolError on any fault."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(ErrorCode.INVALID_JSON, "frame is not valid JSON") from exc
    if not isinstance(data, dict):
        raise ProtocolError(ErrorCode.INVALID_FRAME, "frame must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(ErrorCode.INVALID_FRAME, "field 'type' must be a string")
    if kind not in FrameType.__members__.values():
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown frame type {kind[:40]!r}")
    if kind not in CLIENT_TYPES:
        raise ProtocolError(ErrorCode.FORBIDDEN_TYPE, f"clients may not send {kind!r} frames")
    message_id = _message_id(data.get("message_id"))
    _check_identity(data, identity, message_id)
    if kind == FrameType.CHAT:
        return ChatFrame(
            message_id=message_id or uuid.uuid4().hex,
            payload=_payload(data.get("payload"), max_payload_bytes, message_id),
            position=_position(data.get("position"), message_id),
        )
    if kind == FrameType.USERNAME_CHANGED:
        raw_name = data.get("username")
        username = clean_username(raw_name)
        if username is None and not (isinstance(raw_name, str) and not raw_name.strip()):
            raise ProtocolError(
                ErrorCode.INVALID_FRAME,
                f"'username' must be a string of at most {MAX_USERNAME_LENGTH} visible chars "
                "(empty for no display name)",
            )
        return UsernameChanged(username)
    color = clean_color(data.get("color"))
    if color is None:
        raise ProtocolError(ErrorCode.INVALID_FRAME, "'color' must be a hex colour like #e11d48")
    return ColorChanged(color)


def _message_id(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not MESSAGE_ID_RE.fullmatch(value):
        raise ProtocolError(
            ErrorCode.INVALID_FRAME,
            "'message_id' must be 1-128 characters of letters, digits, '_', '-', '.', ':'",
        )
    return value


def _check_identity(data: dict[str, Any], identity: Identity, message_id: str | None) -> None:
    user_id = data.get("user_id")
    if user_id not in (None, "", identity.user_id, identity.claimed_user_id):
        raise ProtocolError(
            ErrorCode.SPOOFED_IDENTITY,
            "'user_id' does not match this connection's user; omit it",
            message_id=message_id,
        )
    channel_id = data.get("channel_id")
    if channel_id not in (None, "", identity.channel_id):
        raise ProtocolError(
            ErrorCode.WRONG_CHANNEL,
            f"'channel_id' must be this connection's channel {identity.channel_id!r}; "
            "reconnect with ?channel= to change rooms",
            message_id=message_id,
        )


def _payload(value: object, limit: int, message_id: str | None) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ProtocolError(
            ErrorCode.INVALID_FRAME, "'payload' must be a string", message_id=message_id
        )
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise ProtocolError(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"payload is {size} bytes; the limit is {limit}",
            message_id=message_id,
        )
    return value


def _position(value: object, message_id: str | None) -> Position | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ProtocolError(
            ErrorCode.INVALID_POSITION, "'position' must be {x, y}", message_id=message_id
        )
    coords = []
    for axis in ("x", "y"):
        v = value.get(axis)
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ProtocolError(
                ErrorCode.INVALID_POSITION,
                f"position.{axis} must be a number",
                message_id=message_id,
            )
        if not math.isfinite(v) or abs(v) > MAX_COORDINATE:
            raise ProtocolError(
                ErrorCode.INVALID_POSITION,
                f"position.{axis} must be finite and within ±{MAX_COORDINATE:g}",
                message_id=message_id,
            )
        coords.append(float(v))
    return Position(coords[0], coords[1])


# --- server frames -------------------------------------------------------------------


def encode(frame: dict[str, Any]) -> str:
    return orjson.dumps(frame).decode("utf-8")


def encode_bytes(frame: dict[str, Any]) -> bytes:
    """A frame as the broker carries it (UTF-8 JSON)."""
    return orjson.dumps(frame)


def chat_frame(
    frame: ChatFrame, *, identity: Identity, message_id: str, timestamp_ms: int
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": FrameType.CHAT.value,
        "message_id": message_id,
        "channel_id": identity.channel_id,
        "user_id": identity.user_id,
        "payload": frame.payload,
        "timestamp": timestamp_ms,
    }
    if frame.position is not None:
        out["position"] = {"x": frame.position.x, "y": frame.position.y}
    return out


def presence_frame(
    kind: FrameType, *, member: Member, channel_id: str, timestamp_ms: int
) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind.value, "channel_id": channel_id, "timestamp": timestamp_ms}
    out.update(member.as_dict())
    if kind == FrameType.USERNAME_CHANGED:
        out.pop("color", None)
        out["username"] = member.username or ""
    elif kind == FrameType.COLOR_CHANGED:
        out.pop("username", None)
    elif kind == FrameType.USER_LEFT:
        out.pop("username", None)
        out.pop("color", None)
    return out


def user_sync_frame(
    members: list[Member], *, channel_id: str, user_id: str, timestamp_ms: int, epoch: str
) -> dict[str, Any]:
    """The members, and the room's ``epoch`` (ours): with the ``offset`` of the last
    chat frame received, what a reconnecting client resumes from."""
    return {
        "type": FrameType.USER_SYNC.value,
        "channel_id": channel_id,
        "user_id": user_id,
        "users": [m.as_dict() for m in members],
        "timestamp": timestamp_ms,
        "epoch": epoch,
    }


class MissedReason(enum.StrEnum):
    RESUME_GONE = "resume_gone"
    """The client asked to resume from a position the room's history no longer holds
    (aged out, pushed out by the cap, or another epoch): it gets what is on screen."""
    HISTORY_LOST = "history_lost"
    """This server missed frames that the room's history no longer held (Redis lost
    them, or it fell too far behind): text on screen may be stale or missing."""


MAX_EPOCH_LENGTH = 64


@dataclasses.dataclass(frozen=True, slots=True)
class StreamPosition:
    """Where a room's chat stream stands: its epoch and an offset in it (see the
    broker's ``offsets``)."""

    epoch: str
    offset: int


def parse_resume(since: str | None, epoch: str | None) -> StreamPosition | None:
    """The position a reconnecting client resumes from (``since`` and ``epoch`` in its
    URL), None for a first join. Raises ProtocolError for one without the other, or
    values that no server sent."""
    if since is None and epoch is None:
        return None
    if since is None or epoch is None or not since.isdigit() or len(since) > 18:
        raise ProtocolError(
            ErrorCode.INVALID_RESUME,
            "to resume, send since=<offset of the last chat frame received> and "
            "epoch=<the epoch of user_sync> together; joined without resuming",
        )
    if not epoch or len(epoch) > MAX_EPOCH_LENGTH or not epoch.isprintable():
        raise ProtocolError(
            ErrorCode.INVALID_RESUME,
            "epoch must be the epoch string of user_sync; joined without resuming",
        )
    return StreamPosition(epoch, int(since))


def frames_missed_frame(
    *, channel_id: str, epoch: str, reason: MissedReason, timestamp_ms: int
) -> dict[str, Any]:
    """Ours: chat frames of the room were lost to this connection; ``epoch`` is the
    room's now."""
    return {
        "type": FrameType.FRAMES_MISSED.value,
        "channel_id": channel_id,
        "reason": reason.value,
        "epoch": epoch,
        "timestamp": timestamp_ms,
    }


def close_reason(text: str) -> str:
    """``text`` cut to the 123 bytes of UTF-8 a WebSocket close frame can carry."""
    return text.encode()[:123].decode("utf-8", "ignore")


def error_frame(code: ErrorCode, message: str, *, message_id: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": FrameType.ERROR.value, "code": code.value, "message": message}
    if message_id is not None:
        out["message_id"] = message_id
    return out
