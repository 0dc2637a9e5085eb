"""The AsocialInstance spec as typed, immutable values with defaults.

Pure: parses a mapping (the CR's ``spec``) into dataclasses; no I/O. The
defaults mirror ``crds/asocialinstances.yaml`` (the API server applies those;
these keep the operator correct for a spec that skipped defaulting), and a
unit test checks that both agree. Errors raise :class:`SpecError` with a
message that says which field to fix.

One module per section of the spec (``backend``, ``redis``, ``auth``, ``edge``,
``scheduling``), ``fields`` for reading raw values, ``errors`` for :class:`SpecError`
and the rules worded once, ``instance`` for the whole and :func:`parse`. Everything is
re-exported here: ``from asocial_operator import spec`` then ``spec.parse``.
"""

from __future__ import annotations

from asocial_operator.spec.auth import Auth, AuthMode, Firebase, Jwt
from asocial_operator.spec.backend import (
    BACKEND_RESOURCES,
    DEFAULT_BACKEND_IMAGE,
    FRONTEND_RESOURCES,
    Autoscaling,
    Backend,
    Frontend,
)
from asocial_operator.spec.edge import Gateway, Ingress, Monitoring, ParentRef, Tls
from asocial_operator.spec.errors import Rule, SpecError
from asocial_operator.spec.fields import Resources, SecretRef
from asocial_operator.spec.instance import InstanceSpec, parse
from asocial_operator.spec.redis import (
    DEFAULT_MASTER_NAME,
    DEFAULT_REDIS_IMAGE,
    REDIS_PORT,
    REDIS_RESOURCES,
    SENTINEL_PORT,
    Persistence,
    Redis,
    RedisAddress,
    RedisMode,
    Sentinel,
    redis_address,
)
from asocial_operator.spec.scheduling import Scheduling, Toleration

__all__ = [
    "BACKEND_RESOURCES",
    "DEFAULT_BACKEND_IMAGE",
    "DEFAULT_MASTER_NAME",
    "DEFAULT_REDIS_IMAGE",
    "FRONTEND_RESOURCES",
    "REDIS_PORT",
    "REDIS_RESOURCES",
    "SENTINEL_PORT",
    "Auth",
    "AuthMode",
    "Autoscaling",
    "Backend",
    "Firebase",
    "Frontend",
    "Gateway",
    "Ingress",
    "InstanceSpec",
    "Jwt",
    "Monitoring",
    "ParentRef",
    "Persistence",
    "Redis",
    "RedisAddress",
    "RedisMode",
    "Resources",
    "Rule",
    "Scheduling",
    "SecretRef",
    "Sentinel",
    "SpecError",
    "Tls",
    "Toleration",
    "parse",
    "redis_address",
]
