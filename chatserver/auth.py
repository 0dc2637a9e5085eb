"""Authentication: a token (or, when allowed, a client-chosen uid) → a user id.

Modes: ``firebase`` (firebase-admin, honours FIREBASE_AUTH_EMULATOR_HOST), ``jwt``
(HS256 secret, RS256 public key or a JWKS URL, with ``exp``/``iss``/``aud`` checked) and
``anonymous``. When a token is presented it must be valid and the identity comes from
it alone. May use: ``settings``, ``protocol``. Token verification that may block
(JWKS fetches, key downloads) runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt

from chatserver.protocol import valid_user_id
from chatserver.settings import AuthMode, Settings, read_secret

log = logging.getLogger(__name__)

CLOCK_SKEW_S = 30


FAILURE_REASONS = (
    "missing_token",
    "invalid_uid",
    "no_identities",
    "no_subject",
    "expired",
    "bad_audience",
    "bad_issuer",
    "no_key",
    "invalid",
    "unavailable",
)
"""Every ``AuthError.reason``: the ``reason`` label of ``auth_failures_total``, each
exported from the start (at 0) so dashboards and alerts see the series before a failure."""


class AuthError(Exception):
    """The connection may not join; ``reason`` is a short stable label for metrics."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in FAILURE_REASONS:
            raise ValueError(f"AuthError reason {reason!r} is not in FAILURE_REASONS")
        super().__init__(message)
        self.reason = reason
        self.message = message


class AuthConfigError(ValueError):
    """The server's auth settings cannot work; the message says which variable to fix."""


@dataclasses.dataclass(frozen=True)
class Principal:
    user_id: str
    authenticated: bool
    name: str | None = None
    email: str | None = None
    issued_at: int | None = None  # the token's ``iat``, seconds


Verifier = Callable[[str], dict[str, Any]]


class Authenticator:
    def __init__(self, settings: Settings) -> None:
        self.mode = settings.auth_mode
        self.required = settings.auth_required and settings.auth_mode != AuthMode.ANONYMOUS
        self._verify: Verifier | None = None
        self._revoke: Callable[[str], None] | None = None
        if settings.auth_mode == AuthMode.JWT:
            self._verify = _jwt_verifier(settings)
        elif settings.auth_mode == AuthMode.FIREBASE:
            self._verify, self._revoke = _firebase(settings)

    @property
    def revoker(self) -> Callable[[str], Awaitable[None]] | None:
        """Ends a user's refresh tokens at the identity provider, where one can: Firebase
        with a service account (or the emulator). None elsewhere: the server then only
        refuses the user's current tokens itself."""
        revoke = self._revoke
        if revoke is None:
            return None

        async def revoke_in_thread(user_id: str) -> None:
            try:
                await asyncio.to_thread(revoke, user_id)
            except Exception as exc:  # the sign-out still holds on this server
                log.warning("could not revoke refresh tokens: %s", type(exc).__name__)

        return revoke_in_thread

    @property
    def identities(self) -> bool:
        """Whether this mode has signed-in users (and so accounts)."""
        return self._verify is not None

    async def verify(self, token: str) -> Principal:
        """The signed-in user a token names; raises AuthError."""
        if self._verify is None:
            raise AuthError(
                "no_identities", "this server runs without sign-in (ASOCIAL_AUTH_MODE=anonymous)"
            )
        claims = await asyncio.to_thread(self._verify, token)
        subject = claims.get("uid") or claims.get("sub")
        if not isinstance(subject, str) or not valid_user_id(subject):
            raise AuthError("no_subject", "token has no usable subject ('sub') claim")
        name, email, issued = claims.get("name"), claims.get("email"), claims.get("iat")
        return Principal(
            subject,
            True,
            name if isinstance(name, str) else None,
            email if isinstance(email, str) else None,
            int(issued) if isinstance(issued, int | float) else None,
        )

    async def authenticate(self, *, token: str | None, uid: str | None) -> Principal:
        if self._verify is not None and token:
            return await self.verify(token)
        if self.required:
            raise AuthError("missing_token", "a token is required: pass ?token= or a Bearer token")
        if not uid or not valid_user_id(uid):
            raise AuthError(
                "invalid_uid", "query parameter 'uid' must be 1-128 letters, digits or _.:@|+=-"
            )
        return Principal(uid, False)


def _jwt_verifier(settings: Settings) -> Verifier:
    secret = read_secret(settings.jwt_secret, settings.jwt_secret_file)
    options: dict[str, Any] = {"require": ["exp", "sub"]}
    audience, issuer = settings.jwt_audience, settings.jwt_issuer
    if not audience:
        options["verify_aud"] = False
    if settings.jwt_jwks_url:
        jwks = jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True, lifespan=300)

        def key_for(token: str) -> Any:
            return jwks.get_signing_key_from_jwt(token).key

        algorithms = ["RS256", "ES256", "PS256"]
    elif settings.jwt_public_key_file:
        public_key = settings.jwt_public_key_file.read_text(encoding="utf-8")

        def key_for(token: str) -> Any:
            return public_key

        algorithms = ["RS256", "ES256", "PS256"]
    elif secret:

        def key_for(token: str) -> Any:
            return secret

        algorithms = ["HS256"]
    else:
        raise AuthConfigError(
            "ASOCIAL_AUTH_MODE=jwt needs one of ASOCIAL_JWT_SECRET(_FILE), "
            "ASOCIAL_JWT_PUBLIC_KEY_FILE or ASOCIAL_JWT_JWKS_URL"
        )

    def verify(token: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key_for(token),
                algorithms=algorithms,
                audience=audience,
                issuer=issuer,
                options=options,  # type: ignore[arg-type]
                leeway=CLOCK_SKEW_S,
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("expired", "token has expired; sign in again") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthError("bad_audience", "token audience is not accepted here") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError("bad_issuer", "token issuer is not accepted here") from exc
        except jwt.PyJWKClientError as exc:
            raise AuthError("no_key", "token signing key is unknown") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthError("invalid", f"token is invalid: {type(exc).__name__}") from exc
        return claims

    return verify


def _keys_only_credential() -> Any:
    """A firebase-admin credential for verifying ID tokens only, which needs Google's
    public keys and the project id but no service account. Without it, firebase-admin
    falls back to Application Default Credentials and fails on every token when there
    are none."""
    import google.auth.credentials
    from firebase_admin import credentials

    class KeysOnly(credentials.Base):  # type: ignore[misc]
        def get_credential(self) -> google.auth.credentials.Credentials:
            return google.auth.credentials.AnonymousCredentials()  # type: ignore[no-untyped-call]

    return KeysOnly()


def _firebase(settings: Settings) -> tuple[Verifier, Callable[[str], None] | None]:
    """The token verifier and, with admin rights (a service account or the emulator),
    the refresh-token revoker."""
    import firebase_admin
    from firebase_admin import auth, credentials

    if not settings.firebase_project_id:
        raise AuthConfigError("ASOCIAL_AUTH_MODE=firebase needs ASOCIAL_FIREBASE_PROJECT_ID")
    if os.environ.get(
        "FIREBASE_AUTH_EMULATOR_HOST"
    ) and not settings.firebase_project_id.startswith("demo-"):
        # Emulator tokens are unsigned: anyone could claim any identity.
        raise AuthConfigError(
            "FIREBASE_AUTH_EMULATOR_HOST is set, so token signatures would not be checked; "
            "unset it in production, or use a demo-* ASOCIAL_FIREBASE_PROJECT_ID with the emulator"
        )
    credential = _keys_only_credential()
    admin = bool(os.environ.get("FIREBASE_AUTH_EMULATOR_HOST"))
    if settings.firebase_credentials_file is not None:
        admin = True
        credential = credentials.Certificate(str(settings.firebase_credentials_file))
    app = firebase_admin.initialize_app(
        credential,
        options={"projectId": settings.firebase_project_id},
        name=f"asocial-{id(settings)}",
    )

    def verify(token: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = auth.verify_id_token(
                token, app=app, clock_skew_seconds=CLOCK_SKEW_S
            )
        except auth.ExpiredIdTokenError as exc:
            raise AuthError("expired", "token has expired; sign in again") from exc
        except (auth.InvalidIdTokenError, ValueError) as exc:
            raise AuthError("invalid", "token is not a valid Firebase ID token") from exc
        except firebase_admin.exceptions.FirebaseError as exc:
            raise AuthError("unavailable", "cannot verify the token now; try again") from exc
        except Exception as exc:  # e.g. Google's keys unreachable: refuse, never a 500
            log.warning("firebase token check failed: %s", type(exc).__name__)
            raise AuthError("unavailable", "cannot verify the token now; try again") from exc
        # firebase-admin skips the expiry check for emulator tokens; never accept stale ones.
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or expires < time.time() - CLOCK_SKEW_S:
            raise AuthError("expired", "token has expired; sign in again")
        return claims

    def revoke(user_id: str) -> None:
        auth.revoke_refresh_tokens(user_id, app=app)

    return verify, revoke if admin else None
