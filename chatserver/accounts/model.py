"""Account and room records, the naming rules, and the errors the API turns into answers.

Pure: no I/O. Usernames are unique without regard to case; a room's slug is its chat
channel.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import secrets
import unicodedata
from typing import Any, Final

from chatserver.protocol import clean_color, clean_username

USERNAME_MIN: Final = 3
USERNAME_MAX: Final = 20
USERNAME_RE: Final = re.compile(r"^[A-Za-z0-9_.-]{3,20}$")
USERNAME_RULE: Final = (
    f"a username is {USERNAME_MIN}-{USERNAME_MAX} characters: letters, digits, '_', '.' or '-'"
)
SLUG_RE: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
SLUG_RULE: Final = (
    "a room slug is 1-64 lowercase letters, digits or '-', not starting or ending with '-'"
)
ROOM_NAME_MAX: Final = 64
DESCRIPTION_MAX: Final = 280
DEFAULT_ROOM: Final = "default"
# Slugs the REST API's own paths take (GET /api/rooms/public, /api/rooms/mine).
RESERVED_SLUGS: Final = frozenset({"public", "mine"})


class AccountError(Exception):
    """A request the service refuses; ``status`` and ``error`` become the HTTP answer."""

    status = 400
    error = "bad_request"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class Invalid(AccountError):
    status, error = 400, "invalid"


class Unauthorized(AccountError):
    status, error = 401, "unauthorized"


class Forbidden(AccountError):
    status, error = 403, "forbidden"


class NotFound(AccountError):
    status, error = 404, "not_found"


class Conflict(AccountError):
    status, error = 409, "conflict"


class TooMany(AccountError):
    status, error = 429, "too_many_requests"


class Unavailable(AccountError):
    status, error = 503, "unavailable"


@dataclasses.dataclass(frozen=True)
class Account:
    id: str
    email: str | None
    username: str
    created_at: int  # ms since the epoch

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "username": self.username,
            "created_at": iso(self.created_at),
        }


@dataclasses.dataclass(frozen=True)
class Room:
    id: str
    slug: str
    name: str
    description: str
    is_public: bool
    created_at: int
    owner_id: str | None = None  # never shown

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "slug": self.slug,
            "description": self.description,
            "is_public": self.is_public,
            "created_at": iso(self.created_at),
        }


@dataclasses.dataclass(frozen=True)
class RoomSettings:
    display_name: str | None
    color: str | None
    joined_at: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "display_name": self.display_name,
            "color": self.color,
            "joined_at": iso(self.joined_at),
        }


def iso(ms: int) -> str:
    """RFC 3339 UTC with milliseconds."""
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def fold(name: str) -> str:
    """The key two names collide under (case and compatibility forms ignored)."""
    return unicodedata.normalize("NFKC", name).casefold()


def check_username(value: object) -> str:
    if not isinstance(value, str):
        raise Invalid(f"'username' must be a string; {USERNAME_RULE}")
    if not USERNAME_RE.fullmatch(value):
        raise Invalid(f"{value[:40]!r} is not a valid username; {USERNAME_RULE}")
    return value


def username_base(email: str | None) -> str:
    """A username made from the email's local part, fitted to the rules."""
    local = (email or "").partition("@")[0]
    local = unicodedata.normalize("NFKD", local).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", local).strip("_.-")[:USERNAME_MAX]
    if len(cleaned) < USERNAME_MIN:
        cleaned = (cleaned + "_user").strip("_")[:USERNAME_MAX] if cleaned else "user"
    return cleaned


def variants(base: str, count: int) -> list[str]:
    """``base`` followed by ``count`` numbered variants that still fit the rules."""
    stem = base[: USERNAME_MAX - 4]
    out = [base]
    while len(out) < count + 1:
        candidate = f"{stem}{secrets.randbelow(10_000):04d}"
        if candidate not in out:
            out.append(candidate)
    return out


def check_slug(value: object) -> str:
    if not isinstance(value, str) or not SLUG_RE.fullmatch(value):
        raise Invalid(f"{str(value)[:70]!r} is not a valid room; {SLUG_RULE}")
    return value


def slug_from_name(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:64].strip("-")
    return slug or f"room-{secrets.token_hex(3)}"


def check_room_name(value: object) -> str:
    name = clean_username(value) if isinstance(value, str) else None
    if name is None or len(name) > ROOM_NAME_MAX:
        raise Invalid(f"'name' must be 1-{ROOM_NAME_MAX} visible characters")
    return name


def check_description(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > DESCRIPTION_MAX:
        raise Invalid(f"'description' must be a string of at most {DESCRIPTION_MAX} characters")
    return " ".join(value.split())


def check_display_name(value: object) -> str | None:
    """A room display name: absent or empty means "use my username"."""
    if value is None or value == "":
        return None
    name = clean_username(value)
    if name is None or len(name) > USERNAME_MAX * 2:
        raise Invalid(f"'display_name' must be 1-{USERNAME_MAX * 2} visible characters")
    return name


def check_color(value: object) -> str | None:
    if value is None or value == "":
        return None
    color = clean_color(value)
    if color is None:
        raise Invalid("'color' must be a hex colour like #e11d48")
    return color
