"""Accounts and rooms: the signed-in path of the REST API (the README's "REST API").

``model`` holds the records and the naming rules (pure), ``store`` the storage interface
with its in-memory twin, ``redis_store`` the durable store in the instance's Redis, and
``service`` the operations the API and the socket's admission call.
May use: ``auth``, ``broker`` (its Redis connection factory), ``protocol``, ``settings``.
"""

from __future__ import annotations

from chatserver.accounts.store import AccountStore
from chatserver.broker.base import Broker
from chatserver.settings import Settings, read_secret


def create_store(settings: Settings, broker: Broker | None = None) -> AccountStore:
    """The Redis store when ``ASOCIAL_REDIS_URL`` is set, else the in-memory one. Behind
    Sentinel it follows the master the ``broker`` follows, so account writes never go to a
    master the chat has left."""
    if settings.redis_url is None:
        from chatserver.accounts.store import MemoryAccountStore

        return MemoryAccountStore()
    from chatserver.accounts.redis_store import RedisAccountStore
    from chatserver.broker import redis_url
    from chatserver.broker.redis_broker import RedisBroker
    from chatserver.broker.redis_connection import connect

    url = settings.redis_url.get_secret_value()
    follower = broker.follower if isinstance(broker, RedisBroker) else None
    client = connect(
        url,
        password=read_secret(settings.redis_password, settings.redis_password_file),
        timeout_s=settings.redis_timeout_seconds,
        follower=follower,
    )
    return RedisAccountStore(
        client, replicated=redis_url.scheme(url) == "redis+sentinel", follower=follower
    )
