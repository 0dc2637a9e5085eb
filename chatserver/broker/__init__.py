"""Brokers: cross-process publish/subscribe, presence, replay buffer and rate counters.

One small interface (``base.Broker``) with two implementations: ``memory_broker`` for a
single process and ``redis_broker`` (redis.asyncio, Sentinel-aware) for a cluster of pods.
May use: ``protocol``, ``metrics``, ``settings``. Knows nothing of WebSockets.
"""

from __future__ import annotations

from chatserver.broker.base import Broker
from chatserver.metrics import Metrics
from chatserver.settings import Settings, read_secret


def create_broker(settings: Settings, metrics: Metrics) -> Broker:
    """The Redis broker when ``ASOCIAL_REDIS_URL`` is set, else the in-memory one."""
    if settings.redis_url is None:
        from chatserver.broker import memory_broker

        return memory_broker.MemoryBroker()
    from chatserver.broker import redis_broker

    return redis_broker.RedisBroker(
        settings.redis_url.get_secret_value(),
        password=read_secret(settings.redis_password, settings.redis_password_file),
        metrics=metrics,
        timeout_s=settings.redis_timeout_seconds,
    )
