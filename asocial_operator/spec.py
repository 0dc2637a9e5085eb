"""The AsocialInstance spec as typed, immutable values with defaults.

Pure: parses a mapping (the CR's ``spec``) into dataclasses; no I/O. The
defaults mirror ``crds/asocialinstances.yaml`` (the API server applies those;
these keep the operator correct for a spec that skipped defaulting), and a
unit test checks that both agree. Errors raise :class:`SpecError` with a
message that says which field to fix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal, cast

from asocial_operator import naming

RedisMode = Literal["managed", "external"]
AuthMode = Literal["anonymous", "jwt", "firebase"]

DEFAULT_BACKEND_IMAGE = "ghcr.io/asocial/asocial-chat:0.1.0"
REDIS_PORT = 6379
SENTINEL_PORT = 26379
# The Sentinel master set of managed Redis, and the default name of an external one.
DEFAULT_MASTER_NAME = "mymaster"
DEFAULT_REDIS_IMAGE = "redis:7.2-alpine"


class SpecError(ValueError):
    """The spec cannot be deployed as written; the message names the field to fix."""


class Rule:
    """The cross-field rules, worded once. The CRD's CEL ``x-kubernetes-validations``
    carry these same messages, so the API server and the operator say the same thing;
    ``tests/operator/test_crd.py`` checks that every CEL rule has its twin here, word for
    word, and that :func:`parse` enforces each."""

    EXTRA_ENV_REDIS = (
        "extraEnv must not set ASOCIAL_REDIS_* variables: configure Redis through spec.redis"
    )
    MIN_ABOVE_MAX = "autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas"
    EXTERNAL_NEEDS_ADDRESS = "redis.mode external needs redis.url or redis.sentinel"
    URL_CREDENTIALS = (
        "redis.url must not carry credentials: put the password in a Secret and reference "
        "it with redis.passwordSecretRef"
    )
    URL_OR_SENTINEL = "set either redis.url or redis.sentinel, not both"
    EXTERNAL_ONLY = (
        "redis.url, redis.sentinel and redis.passwordSecretRef are only for redis.mode "
        "external; managed Redis gets a generated password"
    )
    FIREBASE_PROJECT = "auth.mode firebase needs auth.firebase.projectId"
    JWT_KEY = (
        "auth.mode jwt needs one of auth.jwt.secretRef, auth.jwt.publicKeySecretRef or "
        "auth.jwt.jwksUrl"
    )
    ANONYMOUS_REQUIRED = "auth.required cannot be true with auth.mode anonymous"
    TLS_HOST = "ingress.host is required when ingress.tls.enabled is true"
    TLS_SOURCE = (
        "ingress.tls needs clusterIssuer (cert-manager issues the certificate) or "
        "secretName (an existing certificate)"
    )
    GATEWAY_PARENTS = (
        "gateway.parentRefs needs at least one Gateway to attach the route to (its name, "
        "and its namespace when it is not the instance's)"
    )
    TOLERATION_EXISTS_VALUE = "a toleration with operator Exists must not set value"
    TOLERATION_NO_KEY = (
        "a toleration without a key must use operator Exists (it then tolerates every taint)"
    )

    @classmethod
    def all(cls) -> dict[str, str]:
        return {k: v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str)}


@dataclasses.dataclass(frozen=True)
class Resources:
    requests: Mapping[str, str]
    limits: Mapping[str, str]

    def as_dict(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        if self.requests:
            out["requests"] = dict(self.requests)
        if self.limits:
            out["limits"] = dict(self.limits)
        return out


BACKEND_RESOURCES = Resources(
    # An idle chat server holds about 50 MiB: a 64Mi request put it at 77 % of the
    # autoscaler's 80 % memory target before the first user arrived.
    requests={"cpu": "100m", "memory": "128Mi"},
    limits={"cpu": "1", "memory": "256Mi"},
)
REDIS_RESOURCES = Resources(
    requests={"cpu": "100m", "memory": "128Mi"}, limits={"cpu": "500m", "memory": "512Mi"}
)
FRONTEND_RESOURCES = Resources(
    requests={"cpu": "100m", "memory": "128Mi"}, limits={"cpu": "500m", "memory": "512Mi"}
)


@dataclasses.dataclass(frozen=True)
class SecretRef:
    name: str
    key: str


@dataclasses.dataclass(frozen=True)
class Backend:
    image: str = DEFAULT_BACKEND_IMAGE
    replicas: int = 3
    resources: Resources = BACKEND_RESOURCES
    log_level: str = "INFO"
    max_message_size: int = 4096
    rate_limit_per_minute: int = 100
    client_rate_limit_per_minute: int = 100
    message_fade_seconds: int = 5
    allowed_origins: tuple[str, ...] = ()
    extra_env: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True)
class Autoscaling:
    enabled: bool = True
    min_replicas: int = 3
    max_replicas: int = 10
    target_cpu: int = 70
    target_memory: int = 80
    scale_down_stabilization_seconds: int = 300


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


@dataclasses.dataclass(frozen=True)
class Firebase:
    project_id: str
    service_account: SecretRef | None = None


@dataclasses.dataclass(frozen=True)
class Jwt:
    secret: SecretRef | None = None
    public_key: SecretRef | None = None
    jwks_url: str | None = None
    issuer: str | None = None
    audience: str | None = None


@dataclasses.dataclass(frozen=True)
class Auth:
    mode: AuthMode = "anonymous"
    required: bool = False
    firebase: Firebase | None = None
    jwt: Jwt | None = None


@dataclasses.dataclass(frozen=True)
class Tls:
    enabled: bool = False
    cluster_issuer: str | None = None
    secret_name: str | None = None


@dataclasses.dataclass(frozen=True)
class Ingress:
    enabled: bool = True
    host: str | None = None
    class_name: str = "nginx"
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)
    rate_limit_per_minute: int = 100
    proxy_timeout_seconds: int = 3600
    tls: Tls = Tls()


@dataclasses.dataclass(frozen=True)
class ParentRef:
    """A Gateway the instance's HTTPRoute attaches to (Gateway API ``parentRefs``)."""

    name: str
    namespace: str | None = None
    """None: the instance's own namespace."""
    section_name: str | None = None
    """One listener of the Gateway; None: every listener that admits the route."""


@dataclasses.dataclass(frozen=True)
class Gateway:
    """An HTTPRoute for the platform team's Gateway(s)."""

    parent_refs: tuple[ParentRef, ...]
    hostnames: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Frontend:
    image: str
    replicas: int = 2
    resources: Resources = FRONTEND_RESOURCES


@dataclasses.dataclass(frozen=True)
class Monitoring:
    service_monitor: bool = False


@dataclasses.dataclass(frozen=True)
class Toleration:
    key: str | None = None
    operator: str | None = None
    value: str | None = None
    effect: str | None = None
    toleration_seconds: int | None = None

    def as_dict(self) -> dict[str, Any]:
        fields = {
            "key": self.key,
            "operator": self.operator,
            "value": self.value,
            "effect": self.effect,
            "tolerationSeconds": self.toleration_seconds,
        }
        return {k: v for k, v in fields.items() if v is not None}


@dataclasses.dataclass(frozen=True)
class Scheduling:
    node_selector: Mapping[str, str] = dataclasses.field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()


@dataclasses.dataclass(frozen=True)
class InstanceSpec:
    paused: bool = False
    scheduling: Scheduling = Scheduling()
    image_pull_secrets: tuple[str, ...] = ()
    backend: Backend = Backend()
    autoscaling: Autoscaling = Autoscaling()
    redis: Redis = Redis()
    auth: Auth = Auth()
    ingress: Ingress = Ingress()
    gateway: Gateway | None = None
    frontend: Frontend | None = None
    monitoring: Monitoring = Monitoring()

    @property
    def keeps_accounts(self) -> bool:
        """Signed-in users have accounts and rooms in the instance's Redis, which must
        then survive restarts (append-only file)."""
        return self.auth.mode != "anonymous"


def _obj(raw: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(f"{path}.{key} must be an object")
    return value


def _get(raw: Mapping[str, Any], key: str, default: Any, kind: type, path: str) -> Any:
    value = raw.get(key, default)
    if value is None:
        return default
    # bool is an int subclass: keep the two apart so `replicas: true` is an error.
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise SpecError(f"{path}.{key} must be an integer, got {value!r}")
    if kind is not int and not isinstance(value, kind):
        raise SpecError(f"{path}.{key} must be a {kind.__name__}, got {value!r}")
    return value


def _resources(raw: Mapping[str, Any], default: Resources, path: str) -> Resources:
    if "resources" not in raw or raw["resources"] is None:
        return default
    res = _obj(raw, "resources", path)
    # str() keeps quantities canonical ("1" not 1) so live objects compare equal.
    return Resources(
        requests={k: str(v) for k, v in _obj(res, "requests", f"{path}.resources").items()},
        limits={k: str(v) for k, v in _obj(res, "limits", f"{path}.resources").items()},
    )


def _secret_ref(raw: Mapping[str, Any], key: str, default_key: str, path: str) -> SecretRef | None:
    ref = raw.get(key)
    if ref is None:
        return None
    if not isinstance(ref, Mapping) or not ref.get("name"):
        raise SpecError(f"{path}.{key}.name is required (the Secret's name)")
    return SecretRef(name=str(ref["name"]), key=str(ref.get("key") or default_key))


def _backend(raw: Mapping[str, Any]) -> Backend:
    p, d = "spec.backend", Backend()
    env = raw.get("extraEnv") or []
    extra: list[tuple[str, str]] = []
    for item in env:
        name = str(item.get("name", ""))
        if not name:
            raise SpecError(f"{p}.extraEnv entries need a name")
        if name.startswith("ASOCIAL_REDIS_"):
            raise SpecError(f"spec.backend.{Rule.EXTRA_ENV_REDIS} (got {name})")
        extra.append((name, str(item.get("value", ""))))
    return Backend(
        image=_get(raw, "image", d.image, str, p),
        replicas=_get(raw, "replicas", d.replicas, int, p),
        resources=_resources(raw, BACKEND_RESOURCES, p),
        log_level=_get(raw, "logLevel", d.log_level, str, p),
        max_message_size=_get(raw, "maxMessageSize", d.max_message_size, int, p),
        rate_limit_per_minute=_get(raw, "rateLimitPerMinute", d.rate_limit_per_minute, int, p),
        client_rate_limit_per_minute=_get(
            raw, "clientRateLimitPerMinute", d.client_rate_limit_per_minute, int, p
        ),
        message_fade_seconds=_get(raw, "messageFadeSeconds", d.message_fade_seconds, int, p),
        allowed_origins=tuple(str(o) for o in raw.get("allowedOrigins") or ()),
        extra_env=tuple(extra),
    )


def _autoscaling(raw: Mapping[str, Any]) -> Autoscaling:
    p, d = "spec.autoscaling", Autoscaling()
    result = Autoscaling(
        enabled=_get(raw, "enabled", d.enabled, bool, p),
        min_replicas=_get(raw, "minReplicas", d.min_replicas, int, p),
        max_replicas=_get(raw, "maxReplicas", d.max_replicas, int, p),
        target_cpu=_get(raw, "targetCPUUtilizationPercentage", d.target_cpu, int, p),
        target_memory=_get(raw, "targetMemoryUtilizationPercentage", d.target_memory, int, p),
        scale_down_stabilization_seconds=_get(
            raw,
            "scaleDownStabilizationSeconds",
            d.scale_down_stabilization_seconds,
            int,
            p,
        ),
    )
    if result.min_replicas > result.max_replicas:
        raise SpecError(f"spec.{Rule.MIN_ABOVE_MAX}")
    return result


def _redis(raw: Mapping[str, Any]) -> Redis:
    p, d = "spec.redis", Redis()
    mode = _get(raw, "mode", d.mode, str, p)
    if mode not in ("managed", "external"):
        raise SpecError(f"{p}.mode must be managed or external, got {mode!r}")
    pers = _obj(raw, "persistence", p)
    pp, pd = f"{p}.persistence", Persistence()
    sentinel: Sentinel | None = None
    if raw.get("sentinel") is not None:
        s = _obj(raw, "sentinel", p)
        hosts = tuple(str(h) for h in s.get("hosts") or ())
        if not hosts:
            raise SpecError(f"{p}.sentinel.hosts needs at least one host:port")
        sentinel = Sentinel(
            hosts=hosts,
            master_name=_get(s, "masterName", DEFAULT_MASTER_NAME, str, f"{p}.sentinel"),
            database=_get(s, "database", 0, int, f"{p}.sentinel"),
        )
    result = Redis(
        mode=cast(RedisMode, mode),
        image=_get(raw, "image", d.image, str, p),
        replicas=_get(raw, "replicas", d.replicas, int, p),
        resources=_resources(raw, REDIS_RESOURCES, p),
        persistence=Persistence(
            enabled=_get(pers, "enabled", pd.enabled, bool, pp),
            size=_get(pers, "size", pd.size, str, pp),
            storage_class_name=_get(pers, "storageClassName", None, str, pp),
            delete_claims_with_instance=_get(
                pers, "deleteClaimsWithInstance", pd.delete_claims_with_instance, bool, pp
            ),
        ),
        url=_get(raw, "url", None, str, p),
        sentinel=sentinel,
        password_secret_ref=_secret_ref(raw, "passwordSecretRef", "password", p),
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


def _auth(raw: Mapping[str, Any]) -> Auth:
    p, d = "spec.auth", Auth()
    mode = _get(raw, "mode", d.mode, str, p)
    if mode not in ("anonymous", "jwt", "firebase"):
        raise SpecError(f"{p}.mode must be anonymous, jwt or firebase, got {mode!r}")
    firebase: Firebase | None = None
    if raw.get("firebase") is not None:
        fb = _obj(raw, "firebase", p)
        firebase = Firebase(
            project_id=_get(fb, "projectId", "", str, f"{p}.firebase"),
            service_account=_secret_ref(
                fb, "serviceAccountSecretRef", "service-account.json", f"{p}.firebase"
            ),
        )
    jwt: Jwt | None = None
    if raw.get("jwt") is not None:
        j = _obj(raw, "jwt", p)
        jp = f"{p}.jwt"
        jwt = Jwt(
            secret=_secret_ref(j, "secretRef", "secret", jp),
            public_key=_secret_ref(j, "publicKeySecretRef", "public.pem", jp),
            jwks_url=_get(j, "jwksUrl", None, str, jp),
            issuer=_get(j, "issuer", None, str, jp),
            audience=_get(j, "audience", None, str, jp),
        )
    result = Auth(
        mode=cast(AuthMode, mode),
        required=_get(raw, "required", d.required, bool, p),
        firebase=firebase,
        jwt=jwt,
    )
    if result.mode == "firebase" and not (firebase and firebase.project_id):
        raise SpecError(f"spec.{Rule.FIREBASE_PROJECT}")
    if result.mode == "jwt" and not (jwt and (jwt.secret or jwt.public_key or jwt.jwks_url)):
        raise SpecError(f"spec.{Rule.JWT_KEY}")
    if result.mode == "anonymous" and result.required:
        raise SpecError(f"spec.{Rule.ANONYMOUS_REQUIRED}")
    return result


def _ingress(raw: Mapping[str, Any]) -> Ingress:
    p, d = "spec.ingress", Ingress()
    t = _obj(raw, "tls", p)
    tp = f"{p}.tls"
    tls = Tls(
        enabled=_get(t, "enabled", False, bool, tp),
        cluster_issuer=_get(t, "clusterIssuer", None, str, tp),
        secret_name=_get(t, "secretName", None, str, tp),
    )
    result = Ingress(
        enabled=_get(raw, "enabled", d.enabled, bool, p),
        host=_get(raw, "host", None, str, p),
        class_name=_get(raw, "className", d.class_name, str, p),
        annotations={str(k): str(v) for k, v in _obj(raw, "annotations", p).items()},
        rate_limit_per_minute=_get(raw, "rateLimitPerMinute", d.rate_limit_per_minute, int, p),
        proxy_timeout_seconds=_get(raw, "proxyTimeoutSeconds", d.proxy_timeout_seconds, int, p),
        tls=tls,
    )
    if tls.enabled and not result.host:
        raise SpecError(f"spec.{Rule.TLS_HOST}")
    if tls.enabled and not (tls.cluster_issuer or tls.secret_name):
        raise SpecError(f"spec.{Rule.TLS_SOURCE}")
    return result


def _gateway(raw: Mapping[str, Any] | None) -> Gateway | None:
    if raw is None:
        return None
    p = "spec.gateway"
    refs = raw.get("parentRefs") or []
    if not isinstance(refs, list):
        raise SpecError(f"{p}.parentRefs must be a list")
    if not refs:
        raise SpecError(f"spec.{Rule.GATEWAY_PARENTS}")
    parents = []
    for i, ref in enumerate(refs):
        rp = f"{p}.parentRefs[{i}]"
        if not isinstance(ref, Mapping):
            raise SpecError(f"{rp} must be an object")
        name = _get(ref, "name", None, str, rp)
        if not name:
            raise SpecError(f"{rp}.name is required: the name of the Gateway")
        parents.append(
            ParentRef(
                name=name,
                namespace=_get(ref, "namespace", None, str, rp),
                section_name=_get(ref, "sectionName", None, str, rp),
            )
        )
    hostnames = raw.get("hostnames") or []
    if not isinstance(hostnames, list):
        raise SpecError(f"{p}.hostnames must be a list")
    return Gateway(parent_refs=tuple(parents), hostnames=tuple(str(h) for h in hostnames))


def _frontend(raw: Mapping[str, Any] | None) -> Frontend | None:
    if raw is None:
        return None
    p = "spec.frontend"
    image = _get(raw, "image", "", str, p)
    if not image:
        raise SpecError(f"{p}.image is required when a frontend is configured")
    return Frontend(
        image=image,
        replicas=_get(raw, "replicas", 2, int, p),
        resources=_resources(raw, FRONTEND_RESOURCES, p),
    )


_TOLERATION_OPERATORS = ("Exists", "Equal")
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _toleration(raw: Any, path: str) -> Toleration:
    if not isinstance(raw, Mapping):
        raise SpecError(f"{path} must be an object (key, operator, value, effect)")
    result = Toleration(
        key=_get(raw, "key", None, str, path),
        operator=_get(raw, "operator", None, str, path),
        value=_get(raw, "value", None, str, path),
        effect=_get(raw, "effect", None, str, path),
        toleration_seconds=_get(raw, "tolerationSeconds", None, int, path),
    )
    if result.operator is not None and result.operator not in _TOLERATION_OPERATORS:
        raise SpecError(f"{path}.operator must be Exists or Equal, got {result.operator!r}")
    if result.effect is not None and result.effect not in _TAINT_EFFECTS:
        raise SpecError(
            f"{path}.effect must be NoSchedule, PreferNoSchedule or NoExecute, "
            f"got {result.effect!r}"
        )
    if result.operator == "Exists" and result.value:
        raise SpecError(f"{path}: {Rule.TOLERATION_EXISTS_VALUE}")
    if result.key is None and result.operator != "Exists":
        raise SpecError(f"{path}: {Rule.TOLERATION_NO_KEY}")
    return result


def _scheduling(raw: Mapping[str, Any]) -> Scheduling:
    p = "spec.scheduling"
    tolerations = raw.get("tolerations") or []
    if not isinstance(tolerations, list):
        raise SpecError(f"{p}.tolerations must be a list")
    return Scheduling(
        node_selector={str(k): str(v) for k, v in _obj(raw, "nodeSelector", p).items()},
        tolerations=tuple(
            _toleration(t, f"{p}.tolerations[{i}]") for i, t in enumerate(tolerations)
        ),
    )


def _pull_secrets(raw: Any) -> tuple[str, ...]:
    p = "spec.imagePullSecrets"
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise SpecError(f"{p} must be a list of {{name: <Secret>}}")
    names: list[str] = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping) or not item.get("name"):
            raise SpecError(f"{p}[{i}].name is required (the Secret's name)")
        names.append(str(item["name"]))
    return tuple(names)


def parse(raw: Mapping[str, Any] | None) -> InstanceSpec:
    """Parse a CR ``spec`` (defaulted or not) into an :class:`InstanceSpec`."""
    raw = raw or {}
    frontend, gateway = raw.get("frontend"), raw.get("gateway")
    return InstanceSpec(
        paused=_get(raw, "paused", False, bool, "spec"),
        scheduling=_scheduling(_obj(raw, "scheduling", "spec")),
        image_pull_secrets=_pull_secrets(raw.get("imagePullSecrets")),
        backend=_backend(_obj(raw, "backend", "spec")),
        autoscaling=_autoscaling(_obj(raw, "autoscaling", "spec")),
        redis=_redis(_obj(raw, "redis", "spec")),
        auth=_auth(_obj(raw, "auth", "spec")),
        ingress=_ingress(_obj(raw, "ingress", "spec")),
        gateway=_gateway(_obj(raw, "gateway", "spec") if gateway is not None else None),
        frontend=_frontend(_obj(raw, "frontend", "spec") if frontend is not None else None),
        monitoring=Monitoring(
            service_monitor=_get(
                _obj(raw, "monitoring", "spec"), "serviceMonitor", False, bool, "spec.monitoring"
            )
        ),
    )
