"""Parsing of ``ASOCIAL_REDIS_URL`` into connection parameters (pure)."""

from __future__ import annotations

import dataclasses
from urllib.parse import unquote, urlsplit


class RedisURLError(ValueError):
    """The URL cannot be used; the message says how to write it."""


@dataclasses.dataclass(frozen=True)
class SentinelTarget:
    sentinels: list[tuple[str, int]]
    service: str
    db: int
    password: str | None
    username: str | None


FORMS = (
    "redis://[:password@]host:6379/0, rediss://… for TLS, or "
    "redis+sentinel://[:password@]host1:26379,host2:26379/<master-name>/0"
)


def parse_sentinel(url: str) -> SentinelTarget:
    """Split a ``redis+sentinel://`` URL; the password is the data nodes' (and sentinels')."""
    parts = urlsplit(url)
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":") if userinfo else ("", "", "")
    sentinels: list[tuple[str, int]] = []
    for item in hostlist.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host:
            host, port = port, "26379"
        try:
            sentinels.append((host, int(port)))
        except ValueError:
            raise RedisURLError(f"bad sentinel address {item!r}; expected {FORMS}") from None
    path = [p for p in parts.path.split("/") if p]
    if not sentinels or not path:
        raise RedisURLError(f"sentinel URL needs hosts and a master name; expected {FORMS}")
    try:
        db = int(path[1]) if len(path) > 1 else 0
    except ValueError:
        raise RedisURLError(f"bad database number {path[1]!r}; expected {FORMS}") from None
    return SentinelTarget(
        sentinels=sentinels,
        service=path[0],
        db=db,
        password=unquote(password) or None,
        username=unquote(username) or None,
    )


def scheme(url: str) -> str:
    found = urlsplit(url).scheme
    if found not in {"redis", "rediss", "redis+sentinel", "unix"}:
        raise RedisURLError(f"unsupported Redis URL scheme {found!r}; expected {FORMS}")
    return found
