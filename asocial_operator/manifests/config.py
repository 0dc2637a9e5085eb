"""The chat server's ConfigMap and the managed Redis password Secret.

Pure data; no I/O. Secrets are referenced by name (secretKeyRef or mounted
files); their values never enter the ConfigMap.
"""

from __future__ import annotations

from asocial_operator import naming
from asocial_operator import spec as specs
from asocial_operator.manifests import common

FIREBASE_MOUNT = f"{common.SECRET_MOUNT_ROOT}/firebase"
JWT_SECRET_MOUNT = f"{common.SECRET_MOUNT_ROOT}/jwt-secret"
JWT_PUBLIC_KEY_MOUNT = f"{common.SECRET_MOUNT_ROOT}/jwt-public-key"
# Behind the Ingress every request comes from an ingress controller pod, whose
# X-Forwarded-For names the client (ingress-nginx replaces a client-sent one by default).
# Pod networks are private ranges; clients on the internet never reach a pod directly.
CLUSTER_NETWORKS = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7"


def redis_url(ctx: common.Context) -> str:
    """The ASOCIAL_REDIS_URL for the instance (never contains a password)."""
    return specs.redis_address(ctx.spec.redis, namespace=ctx.namespace, name=ctx.name).url


def config_data(ctx: common.Context) -> dict[str, str]:
    s = ctx.spec
    data = {
        "ASOCIAL_REDIS_URL": redis_url(ctx),
        "ASOCIAL_AUTH_MODE": s.auth.mode,
        "ASOCIAL_AUTH_REQUIRED": "true" if s.auth.required else "false",
        "ASOCIAL_RATE_LIMIT_PER_MINUTE": str(s.backend.rate_limit_per_minute),
        "ASOCIAL_CLIENT_RATE_LIMIT_PER_MINUTE": str(s.backend.client_rate_limit_per_minute),
        "ASOCIAL_MAX_MESSAGE_SIZE": str(s.backend.max_message_size),
        "ASOCIAL_MESSAGE_FADE_SECONDS": str(s.backend.message_fade_seconds),
        "ASOCIAL_LOG_LEVEL": s.backend.log_level,
        "ASOCIAL_LOG_FORMAT": "json",
        "ASOCIAL_SHUTDOWN_GRACE_SECONDS": str(common.SHUTDOWN_GRACE_SECONDS),
    }
    if s.backend.allowed_origins:
        data["ASOCIAL_ALLOWED_ORIGINS"] = ",".join(s.backend.allowed_origins)
    if s.ingress.enabled or s.gateway is not None:
        # The ingress controller's or the Gateway's pods name the client.
        data["ASOCIAL_TRUSTED_PROXIES"] = CLUSTER_NETWORKS
    if s.auth.mode == "firebase" and s.auth.firebase is not None:
        data["ASOCIAL_FIREBASE_PROJECT_ID"] = s.auth.firebase.project_id
        if s.auth.firebase.service_account is not None:
            key = s.auth.firebase.service_account.key
            data["ASOCIAL_FIREBASE_CREDENTIALS_FILE"] = f"{FIREBASE_MOUNT}/{key}"
    if s.auth.mode == "jwt" and s.auth.jwt is not None:
        jwt = s.auth.jwt
        if jwt.secret is not None:
            data["ASOCIAL_JWT_SECRET_FILE"] = f"{JWT_SECRET_MOUNT}/{jwt.secret.key}"
        if jwt.public_key is not None:
            data["ASOCIAL_JWT_PUBLIC_KEY_FILE"] = f"{JWT_PUBLIC_KEY_MOUNT}/{jwt.public_key.key}"
        if jwt.jwks_url:
            data["ASOCIAL_JWT_JWKS_URL"] = jwt.jwks_url
        if jwt.issuer:
            data["ASOCIAL_JWT_ISSUER"] = jwt.issuer
        if jwt.audience:
            data["ASOCIAL_JWT_AUDIENCE"] = jwt.audience
    for name, value in s.backend.extra_env:
        data[name] = value
    return data


def build_config_map(ctx: common.Context) -> common.Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": common.metadata(ctx, ctx.names.config, naming.CONFIG),
        "data": config_data(ctx),
    }


def build_secret(ctx: common.Context) -> common.Manifest | None:
    """The managed Redis password Secret; ``None`` for external Redis."""
    if not ctx.spec.redis.managed or ctx.redis_password is None:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": common.metadata(ctx, ctx.names.secret, naming.REDIS),
        "type": "Opaque",
        # `data`, not `stringData`: the API server stores and returns `data`, so
        # live objects compare equal to what we build and nothing is re-applied.
        "data": {common.PASSWORD_KEY: common.b64(ctx.redis_password)},
    }


def config_checksum(ctx: common.Context) -> str:
    """Digest of everything the pods read at start: config, password, referenced Secrets."""
    s = ctx.spec
    refs = [s.redis.password_secret_ref, s.auth.firebase, s.auth.jwt]
    return common.checksum(config_data(ctx), ctx.redis_password or "", repr(refs))
