"""Prometheus metrics of one server instance, in a registry of its own.

A registry per app (not the global one) lets tests build many apps in one process.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


MAX_CHANNEL_LABELS = 200


class Metrics:
    """All metric families; names are part of the operations contract (README)."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, channel_labels: bool = False
    ) -> None:
        self._channels: set[str] = set()
        self._channel_labels = channel_labels
        self.registry = registry or CollectorRegistry()
        r = self.registry
        if registry is None:
            # process_cpu_seconds_total, process_resident_memory_bytes, open fds: the
            # per-pod CPU and memory a dashboard shows without cAdvisor.
            ProcessCollector(registry=r)
        self.connections_active = Gauge(
            "websocket_connections_active", "Open WebSocket connections", registry=r
        )
        self.connections_total = Counter(
            "websocket_connections_total", "WebSocket connections accepted", registry=r
        )
        self.connections_closed = Counter(
            "websocket_connections_closed_total",
            "WebSocket connections that ended (either side closed)",
            registry=r,
        )
        self.connections_rejected = Counter(
            "websocket_connections_rejected_total",
            "WebSocket connections refused, by reason",
            ["reason"],
            registry=r,
        )
        self.messages_published = Counter(
            "messages_published_total", "Frames published to the broker", ["channel"], registry=r
        )
        self.messages_delivered = Counter(
            "messages_delivered_total", "Frames queued to a local connection", registry=r
        )
        self.messages_dropped = Counter(
            "messages_dropped_total",
            "Frames not delivered, by reason",
            ["reason"],
            registry=r,
        )
        self.frames_rejected = Counter(
            "frames_rejected_total",
            "Client frames answered with an error, by code",
            ["code"],
            registry=r,
        )
        self.clients_limited = Counter(
            "client_requests_limited_total",
            "Requests (chat upgrades, /api calls) refused with 429: over the per-address limit",
            ["kind"],
            registry=r,
        )
        self.rate_limited = Counter(
            "rate_limited_total", "Client frames refused by the rate limit", registry=r
        )
        self.auth_failures = Counter(
            "auth_failures_total", "Connections refused by authentication", ["reason"], registry=r
        )
        self.frames_recovered = Counter(
            "broker_frames_recovered_total",
            "Chat frames this process missed and then read from the room's history by offset",
            registry=r,
        )
        self.history_lost = Counter(
            "broker_history_lost_total",
            "Gaps the room's history no longer held (clients were sent frames_missed)",
            registry=r,
        )
        self.broker_reconnects = Counter(
            "broker_reconnects_total", "Broker connection losses followed by a retry", registry=r
        )
        self.broker_connected = Gauge(
            "broker_connected",
            "1 while this process receives what others publish (its Redis subscriber is"
            " connected), else 0",
            registry=r,
        )
        self.broker_master_moves = Counter(
            "broker_master_moves_total",
            "Times the sentinels named a new Redis master and this process followed it",
            registry=r,
        )
        self.connections_limit = Gauge(
            "websocket_connections_limit",
            "Open WebSocket connections this process accepts (ASOCIAL_MAX_CONNECTIONS)",
            registry=r,
        )
        self.slow_consumers = Counter(
            "slow_consumers_disconnected_total",
            "Connections closed because their send queue was full",
            registry=r,
        )
        self.broadcast_latency = Histogram(
            "message_broadcast_latency_seconds",
            "From the server stamping a frame to queuing it to a receiver",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request duration",
            ["handler", "status"],
            registry=r,
        )

    def start_at_zero(
        self,
        *,
        dropped: Iterable[str],
        refused: Iterable[str],
        auth_failures: Iterable[str],
        limited: Iterable[str],
    ) -> None:
        """Export every known label value at 0 from the start: a labelled series that
        appears only with its first event leaves dashboards empty and ``rate()`` blind
        to that first event."""
        for reason in dropped:
            self.messages_dropped.labels(reason)
        for code in refused:
            self.frames_rejected.labels(code)
            self.connections_rejected.labels(code)
        for reason in auth_failures:
            self.auth_failures.labels(reason)
        for kind in limited:
            self.clients_limited.labels(kind)
        if not self._channel_labels:
            self.messages_published.labels("all")

    def channel_label(self, channel: str) -> str:
        """``"all"`` unless channel labels are on (``ASOCIAL_METRICS_CHANNEL_LABELS``):
        room names are users' words, not for an operations dashboard. When on, the
        channel's own label, or "other" past the first few hundred channels (unbounded
        label sets exhaust Prometheus)."""
        if not self._channel_labels:
            return "all"
        if channel in self._channels:
            return channel
        if len(self._channels) < MAX_CHANNEL_LABELS:
            self._channels.add(channel)
            return channel
        return "other"
