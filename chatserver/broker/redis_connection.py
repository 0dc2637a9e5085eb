"""Connections to Redis, for every part of the server that talks to it (the broker, the
account store): one place says how a client connects (plain, TLS or through Sentinel,
following the process's one ``MasterFollower``), how it retries, how it is closed, and
which errors mean that Redis is away or that the server is no longer the master.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chatserver.broker import redis_url
from chatserver.broker.sentinel_follower import FollowingPool, MasterFollower

OUTAGE = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)
"""Errors that mean Redis did not answer (down, unreachable, too slow)."""

_NOT_A_MASTER = ("READONLY", "NOREPLICAS", "read only replica")


def not_a_master(exc: RedisError) -> bool:
    """Whether Redis refused a write because the server is (no longer) a master fit to
    take it: behind Sentinel, the master may have moved. redis-py turns ``READONLY`` into
    ``ReadOnlyError`` and drops the code from the message; inside a script the code
    comes wrapped in the script's error."""
    return isinstance(exc, ReadOnlyError) or any(code in str(exc) for code in _NOT_A_MASTER)


def follower_for(url: str, *, password: str | None) -> MasterFollower | None:
    """The master follower a redis+sentinel:// URL needs (None for other URLs)."""
    if redis_url.scheme(url) != "redis+sentinel":
        return None
    return MasterFollower(redis_url.parse_sentinel(url), password=password)


def connect(
    url: str,
    *,
    password: str | None,
    timeout_s: float = 1.0,
    follower: MasterFollower | None = None,
) -> aioredis.Redis:
    """A client for a redis://, rediss:// or redis+sentinel:// URL (raises RedisURLError).
    Behind Sentinel, pass the process's ``follower`` so that this client goes where the
    others go (see ``sentinel_follower``)."""
    options: dict[str, Any] = {
        "socket_connect_timeout": 2.0,
        "socket_timeout": timeout_s,
        "socket_keepalive": True,
        "health_check_interval": 10,
        "client_name": "asocial-chat",
        "retry": Retry(NoBackoff(), 1),
        # Named, not left to the default: redis-py before 5.1 retried only the errors
        # listed here, so the first command after a restart failed on a dead pooled socket.
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }
    if redis_url.scheme(url) == "redis+sentinel":
        target = redis_url.parse_sentinel(url)
        secret = target.password or password
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            target.sentinels,
            sentinel_kwargs={"password": secret, "socket_connect_timeout": 2.0},
            **options,
        )
        extra: dict[str, Any] = (
            {"connection_pool_class": FollowingPool, "follower": follower} if follower else {}
        )
        master: aioredis.Redis = sentinel.master_for(
            target.service, password=secret, username=target.username, db=target.db, **extra
        )
        return master
    client: aioredis.Redis = aioredis.Redis.from_url(url, **options)
    if password and not client.connection_pool.connection_kwargs.get("password"):
        client.connection_pool.connection_kwargs["password"] = password
    return client


async def close_client(client: aioredis.Redis) -> None:
    """Close a client of :func:`connect`, with the connections to the sentinels its pool
    asked for the master, if any."""
    await client.aclose()
    manager = getattr(client.connection_pool, "sentinel_manager", None)
    for sentinel in getattr(manager, "sentinels", []):
        await sentinel.aclose()
