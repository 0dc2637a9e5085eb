"""``spec.redis``: managed (standalone or with Sentinel) or external, and the one
place that turns it into an address.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal, cast

from asocial_operator import naming
from asocial_operator.spec.errors import Rule, SpecError
from asocial_operator.spec.fields import Resources, SecretRef, field, resources, secret_ref, section

RedisMode = Literal["managed", "external"]

REDIS_PORT = 6379

SENTINEL_PORT = 26379

# The Sentinel master set of managed Redis, and the default name of an external one.
DEFAULT_MASTER_NAME = "mymaster"

DEFAULT_REDIS_IMAGE = "redis:7.2-alpine"

REDIS_RESOURCES = Resources(
    requests={"cpu": "100m", "memory": "128Mi"}, limits={"cpu": "500m", "memory": "512Mi"}
)


@dataclasses.dataclass(frozen=True)
class Persistence:
    enabled: bool = False
    size: str = "5Gi"
    storage_class_name: str | None = None
    delete_claims_with_instance: bool = False


@dataclasses.dataclass(frozen=True)
class Sentinel:
    hosts: tuple[str, ...]
    master_name: str = DEFAULT_MASTER_NAME
    database: int = 0


@dataclasses.dataclass(frozen=True)
class Redis:
    mode: RedisMode = "managed"
    image: str = DEFAULT_REDIS_IMAGE
    replicas: int = 1
    resources: Resources = REDIS_RESOURCES
    persistence: Persistence = Persistence()
    url: str | None = None
    sentinel: Sentinel | None = None
    password_secret_ref: SecretRef | None = None

    @property
    def managed(self) -> bool:
        return self.mode == "managed"

    @property
    def managed_sentinel(self) -> bool:
        """Managed Redis with replication: 3 or 5 pods, a Sentinel in each."""
        return self.managed and self.replicas > 1

    @property
    def uses_sentinel(self) -> bool:
        """The chat server finds the master through Sentinel (managed or external)."""
        return self.managed_sentinel or self.sentinel is not None


@dataclasses.dataclass(frozen=True)
class RedisAddress:
    """Where the chat server finds Redis; never holds a password."""

    url: str
    """``ASOCIAL_REDIS_URL``."""
    shown: str
    """The same in words, for status: ``host:port`` or ``sentinel hosts (master)``."""


def redis_address(redis: Redis, *, namespace: str, name: str) -> RedisAddress:
    """The one place that turns ``spec.redis`` into an address."""
    names = naming.Names(name)
    if redis.managed_sentinel:
        host = f"{names.redis_sentinel}.{namespace}.svc:{SENTINEL_PORT}"
        return RedisAddress(
            f"redis+sentinel://{host}/{DEFAULT_MASTER_NAME}/0",
            f"sentinel {host} ({DEFAULT_MASTER_NAME})",
        )
    if redis.managed:
        host = f"{names.redis}.{namespace}.svc:{REDIS_PORT}"
        return RedisAddress(f"redis://{host}/0", host)
    if redis.sentinel is not None:
        hosts = ",".join(redis.sentinel.hosts)
        return RedisAddress(
            f"redis+sentinel://{hosts}/{redis.sentinel.master_name}/{redis.sentinel.database}",
            f"sentinel {hosts} ({redis.sentinel.master_name})",
        )
    url = redis.url or ""
    # parse() refuses credentials in the URL; strip any userinfo all the same, so a
    # password can never reach status.
    scheme, _, rest = url.partition("://")
    return RedisAddress(url, f"{scheme}://{rest.rpartition('@')[2]}")


def parse_redis(raw: Mapping[str, Any]) -> Redis:
    p, d = "spec.redis", Redis()
    mode = field(raw, "mode", d.mode, str, p)
    if mode not in ("managed", "external"):
        raise SpecError(f"{p}.mode must be managed or external, got {mode!r}")
    pers = section(raw, "persistence", p)
    pp, pd = f"{p}.persistence", Persistence()
    sentinel: Sentinel | None = None
    if raw.get("sentinel") is not None:
        s = section(raw, "sentinel", p)
        hosts = tuple(str(h) for h in s.get("hosts") or ())
        if not hosts:
            raise SpecError(f"{p}.sentinel.hosts needs at least one host:port")
        sentinel = Sentinel(
            hosts=hosts,
            master_name=field(s, "masterName", DEFAULT_MASTER_NAME, str, f"{p}.sentinel"),
            database=field(s, "database", 0, int, f"{p}.sentinel"),
        )
    result = Redis(
        mode=cast(RedisMode, mode),
        image=field(raw, "image", d.image, str, p),
        replicas=field(raw, "replicas", d.replicas, int, p),
        resources=resources(raw, REDIS_RESOURCES, p),
        persistence=Persistence(
            enabled=field(pers, "enabled", pd.enabled, bool, pp),
            size=field(pers, "size", pd.size, str, pp),
            storage_class_name=field(pers, "storageClassName", None, str, pp),
            delete_claims_with_instance=field(
                pers, "deleteClaimsWithInstance", pd.delete_claims_with_instance, bool, pp
            ),
        ),
        url=field(raw, "url", None, str, p),
        sentinel=sentinel,
        password_secret_ref=secret_ref(raw, "passwordSecretRef", "password", p),
    )
    if result.mode == "external" and not (result.url or result.sentinel):
        raise SpecError(f"spec.{Rule.EXTERNAL_NEEDS_ADDRESS}")
    if result.url and result.sentinel:
        raise SpecError(f"spec.redis: {Rule.URL_OR_SENTINEL}")
    if result.url and "@" in result.url:
        raise SpecError(f"spec.{Rule.URL_CREDENTIALS}")
    if result.managed and (result.url or result.sentinel or result.password_secret_ref):
        raise SpecError(f"spec.{Rule.EXTERNAL_ONLY}")
    if result.managed and result.replicas not in (1, 3, 5):
        raise SpecError(f"{p}.replicas must be 1 (standalone), 3 or 5 (Sentinel)")
    return result
