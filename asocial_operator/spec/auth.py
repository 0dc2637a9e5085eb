"""``spec.auth``: anonymous, JWT or Firebase sign-in."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal, cast

from asocial_operator.spec.errors import Rule, SpecError
from asocial_operator.spec.fields import SecretRef, field, secret_ref, section

AuthMode = Literal["anonymous", "jwt", "firebase"]


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


def parse_auth(raw: Mapping[str, Any]) -> Auth:
    p, d = "spec.auth", Auth()
    mode = field(raw, "mode", d.mode, str, p)
    if mode not in ("anonymous", "jwt", "firebase"):
        raise SpecError(f"{p}.mode must be anonymous, jwt or firebase, got {mode!r}")
    firebase: Firebase | None = None
    if raw.get("firebase") is not None:
        fb = section(raw, "firebase", p)
        firebase = Firebase(
            project_id=field(fb, "projectId", "", str, f"{p}.firebase"),
            service_account=secret_ref(
                fb, "serviceAccountSecretRef", "service-account.json", f"{p}.firebase"
            ),
        )
    jwt: Jwt | None = None
    if raw.get("jwt") is not None:
        j = section(raw, "jwt", p)
        jp = f"{p}.jwt"
        jwt = Jwt(
            secret=secret_ref(j, "secretRef", "secret", jp),
            public_key=secret_ref(j, "publicKeySecretRef", "public.pem", jp),
            jwks_url=field(j, "jwksUrl", None, str, jp),
            issuer=field(j, "issuer", None, str, jp),
            audience=field(j, "audience", None, str, jp),
        )
    result = Auth(
        mode=cast(AuthMode, mode),
        required=field(raw, "required", d.required, bool, p),
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
