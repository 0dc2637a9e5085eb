"""Spec errors, and the cross-field rules worded once (mirrored in the CRD's CEL)."""

from __future__ import annotations


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
        "ingress.tls needs issuer or clusterIssuer (cert-manager issues the certificate) "
        "or secretName (an existing certificate)"
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
