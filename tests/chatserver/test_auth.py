import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from chatserver.auth import AuthConfigError, Authenticator, AuthError, Principal
from chatserver.settings import Settings

SECRET = "s3cret-that-is-long-enough-for-hs256!"


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "user-1", "exp": int(time.time()) + 300, **extra}


def settings(**values: Any) -> Settings:
    return Settings(**values)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


async def test_anonymous_takes_the_uid_and_ignores_tokens() -> None:
    auth = Authenticator(settings())
    assert await auth.authenticate(token="whatever", uid="u-1") == Principal("u-1", False)
    with pytest.raises(AuthError) as info:
        await auth.authenticate(token=None, uid="bad uid!")
    assert info.value.reason == "invalid_uid"
    with pytest.raises(AuthError):
        await auth.authenticate(token=None, uid=None)


async def test_jwt_hs256_identity_comes_from_the_token() -> None:
    auth = Authenticator(settings(auth_mode="jwt", jwt_secret=SECRET))
    token = jwt.encode(claims(name="Ann"), SECRET, algorithm="HS256")
    assert await auth.authenticate(token=token, uid="someone-else") == Principal(
        "user-1", True, "Ann"
    )


async def test_jwt_optional_lets_tokenless_users_in_but_checks_presented_tokens() -> None:
    auth = Authenticator(settings(auth_mode="jwt", jwt_secret=SECRET))
    assert await auth.authenticate(token=None, uid="anon") == Principal("anon", False)
    forged = jwt.encode(claims(), "another-secret-of-enough-length!!", algorithm="HS256")
    with pytest.raises(AuthError) as info:
        await auth.authenticate(token=forged, uid="anon")
    assert info.value.reason == "invalid"


async def test_jwt_required_refuses_missing_tokens() -> None:
    auth = Authenticator(settings(auth_mode="jwt", jwt_secret=SECRET, auth_required=True))
    with pytest.raises(AuthError) as info:
        await auth.authenticate(token=None, uid="anon")
    assert info.value.reason == "missing_token"


@pytest.mark.parametrize(
    ("token_claims", "reason"),
    [
        (claims(exp=int(time.time()) - 3600), "expired"),
        (claims(aud="other", iss="https://id"), "bad_audience"),
        (claims(aud="chat", iss="https://evil"), "bad_issuer"),
        ({"sub": "x"}, "invalid"),  # no exp
        ({"exp": int(time.time()) + 60}, "invalid"),  # no sub
    ],
)
async def test_jwt_claims_are_checked(token_claims: dict[str, Any], reason: str) -> None:
    auth = Authenticator(
        settings(auth_mode="jwt", jwt_secret=SECRET, jwt_audience="chat", jwt_issuer="https://id")
    )
    with pytest.raises(AuthError) as info:
        await auth.authenticate(token=jwt.encode(token_claims, SECRET), uid=None)
    assert info.value.reason == reason


async def test_jwt_alg_none_is_refused() -> None:
    auth = Authenticator(settings(auth_mode="jwt", jwt_secret=SECRET))
    token = jwt.encode(claims(), None, algorithm="none")
    with pytest.raises(AuthError):
        await auth.authenticate(token=token, uid=None)


async def test_jwt_rs256_public_key_file(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "key.pem").write_bytes(pem)
    auth = Authenticator(settings(auth_mode="jwt", jwt_public_key_file=tmp_path / "key.pem"))
    token = jwt.encode(claims(), rsa_key, algorithm="RS256")
    assert (await auth.authenticate(token=token, uid=None)).user_id == "user-1"
    # An HS256 token "signed" with the public key must not pass (algorithm confusion).
    with pytest.raises(AuthError):
        await auth.authenticate(token=jwt.encode(claims(), SECRET, algorithm="HS256"), uid=None)


@pytest.fixture
def jwks_server(rsa_key: rsa.RSAPrivateKey) -> Iterator[tuple[str, list[int]]]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    jwk.update(kid="k1", use="sig", alg="RS256")
    body = json.dumps({"keys": [jwk]}).encode()
    hits = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits[0] += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/jwks.json", hits
    server.shutdown()
    server.server_close()


async def test_jwt_jwks_url_is_fetched_once_and_cached(
    jwks_server: tuple[str, list[int]], rsa_key: rsa.RSAPrivateKey
) -> None:
    url, hits = jwks_server
    auth = Authenticator(settings(auth_mode="jwt", jwt_jwks_url=url))
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "k1"})
    for _ in range(3):
        assert (await auth.authenticate(token=token, uid=None)).user_id == "user-1"
    assert hits[0] == 1
    unknown = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "nope"})
    with pytest.raises(AuthError) as info:
        await auth.authenticate(token=unknown, uid=None)
    assert info.value.reason == "no_key"


def test_jwt_mode_without_key_material_says_what_to_set() -> None:
    with pytest.raises(AuthConfigError, match="ASOCIAL_JWT_SECRET"):
        Authenticator(settings(auth_mode="jwt"))


def _emulator_token(project: str, **extra: Any) -> str:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    payload = {
        "iss": f"https://securetoken.google.com/{project}",
        "aud": project,
        "auth_time": now,
        "user_id": "fb-user",
        "sub": "fb-user",
        "iat": now,
        "exp": now + 3600,
        "firebase": {"identities": {}, "sign_in_provider": "anonymous"},
        **extra,
    }
    return b64({"alg": "none", "typ": "JWT"}) + "." + b64(payload) + "."


async def test_firebase_accepts_emulator_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9099")
    auth = Authenticator(settings(auth_mode="firebase", firebase_project_id="demo-asocial"))
    principal = await auth.authenticate(token=_emulator_token("demo-asocial"), uid="ignored")
    assert (principal.user_id, principal.authenticated, principal.email) == ("fb-user", True, None)
    assert principal.issued_at is not None
    assert abs(principal.issued_at - time.time()) < 5
    with pytest.raises(AuthError) as info:
        await auth.authenticate(token=_emulator_token("other-project"), uid=None)
    assert info.value.reason == "invalid"
    expired = _emulator_token("demo-asocial", exp=int(time.time()) - 600)
    with pytest.raises(AuthError) as info:
        await auth.authenticate(token=expired, uid=None)
    assert info.value.reason == "expired"


def test_emulator_host_is_refused_for_a_real_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREBASE_AUTH_EMULATOR_HOST", "127.0.0.1:9099")
    with pytest.raises(AuthConfigError, match="signatures would not be checked"):
        Authenticator(settings(auth_mode="firebase", firebase_project_id="prod-project"))


def test_firebase_mode_needs_a_project() -> None:
    with pytest.raises(AuthConfigError, match="ASOCIAL_FIREBASE_PROJECT_ID"):
        Authenticator(settings(auth_mode="firebase"))
