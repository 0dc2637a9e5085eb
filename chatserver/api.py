"""The REST API of accounts and rooms (the README's "REST API"), and its CORS policy.

JSON in and out; errors are ``{"error": <what went wrong and how to fix it>, "message":
<the same, where the original client reads it>, "code": <stable label>}`` with the fitting
status. ``Authorization: Bearer <ID token>`` names the
caller where an endpoint needs one.
May use: ``accounts``, ``auth``, ``settings``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from chatserver.accounts.model import AccountError, Invalid, Unauthorized, Unavailable
from chatserver.accounts.service import AccountService
from chatserver.auth import Authenticator, AuthError, Principal
from chatserver.settings import Settings

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
CORS_METHODS = ["GET", "POST", "PATCH", "DELETE", "OPTIONS"]
CORS_HEADERS = ["Authorization", "Content-Type", "X-Request-ID"]


class PreflightNoContent(CORSMiddleware):
    """Starlette's CORS policy, answering an allowed preflight with 204 and no body."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 200:
            return response
        headers = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in {"content-length", "content-type"}
        }
        return Response(status_code=204, headers=headers)


def add_cors(app: FastAPI, settings: Settings) -> None:
    """Allow the origins of ``ASOCIAL_ALLOWED_ORIGINS`` (none: same origin only). With
    ``*``, any origin may call but without credentials (browsers refuse the pair)."""
    if not settings.allowed_origins:
        return
    wildcard = "*" in settings.allowed_origins
    app.add_middleware(
        PreflightNoContent,
        allow_origins=["*"] if wildcard else settings.allowed_origins,
        allow_credentials=not wildcard,
        allow_methods=CORS_METHODS,
        allow_headers=CORS_HEADERS,
        max_age=600,
    )


def error_body(error: AccountError) -> dict[str, Any]:
    return {"error": error.message, "message": error.message, "code": error.error, **error.extra}


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise Invalid(f"the request body is over {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise Invalid("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise Invalid("the request body must be a JSON object")
    return data


def router(service: AccountService, authenticator: Authenticator) -> APIRouter:
    api = APIRouter(prefix="/api")

    async def caller(request: Request) -> Principal | None:
        """The signed-in caller, None without a token; a bad token is refused."""
        header = request.headers.get("authorization", "")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <ID token>'")
        if not authenticator.identities:
            return None
        try:
            return await authenticator.verify(token.strip())
        except AuthError as exc:
            if exc.reason == "unavailable":
                raise Unavailable(exc.message) from None
            raise Unauthorized(exc.message) from None

    @api.get("/auth/me")
    async def me(request: Request) -> dict[str, Any]:
        return (await service.me(await caller(request))).as_dict()

    @api.post("/auth/check-username")
    async def check_username(request: Request) -> dict[str, Any]:
        await service.check_username((await _body(request)).get("username"))
        return {"available": True}

    @api.patch("/auth/username")
    async def change_username(request: Request) -> dict[str, Any]:
        who = await caller(request)
        account = await service.rename(who, (await _body(request)).get("username"))
        return account.as_dict()

    @api.delete("/auth/account")
    async def delete_account(request: Request) -> dict[str, Any]:
        await service.delete(await caller(request))
        return {"message": "Account deleted"}

    @api.post("/auth/logout")
    async def logout(request: Request) -> dict[str, Any]:
        await service.logout(await caller(request))
        return {"message": "Signed out; this token and its refresh tokens no longer work"}

    @api.get("/rooms/public")
    async def public_rooms() -> dict[str, Any]:
        rooms = await service.public_rooms()
        return {"rooms": [room.as_dict() for room in rooms], "count": len(rooms)}

    @api.get("/rooms/mine")
    async def my_rooms(request: Request) -> dict[str, Any]:
        rooms = await service.my_rooms(await caller(request))
        return {"rooms": [room.as_dict() for room in rooms], "count": len(rooms)}

    @api.post("/rooms")
    async def create_room(request: Request) -> JSONResponse:
        who = await caller(request)
        body = await _body(request)
        room = await service.create_room(
            who,
            name=body.get("name"),
            slug=body.get("slug"),
            description=body.get("description"),
            is_public=body.get("is_public", True),
            client=request.client.host if request.client else "unknown",
        )
        return JSONResponse(room.as_dict(), status_code=201)

    @api.get("/rooms/{slug}")
    async def room(slug: str, request: Request) -> dict[str, Any]:
        return (await service.room(slug, await caller(request))).as_dict()

    @api.post("/rooms/{slug}/join")
    async def join(slug: str, request: Request) -> dict[str, Any]:
        who = await caller(request)
        body = await _body(request)
        joined = await service.join(
            slug, who, display_name=body.get("display_name"), color=body.get("color")
        )
        return {"room": joined.room.as_dict(), "settings": joined.settings.as_dict()}

    @api.get("/rooms/{slug}/members")
    async def members(slug: str, request: Request) -> dict[str, Any]:
        found = await service.members(slug, await caller(request))
        return {"members": [member.as_dict() for member in found], "count": len(found)}

    @api.post("/rooms/{slug}/members")
    async def add_member(slug: str, request: Request) -> JSONResponse:
        who = await caller(request)
        body = await _body(request)
        member, added = await service.add_member(slug, who, body.get("username"))
        return JSONResponse({"member": member.as_dict()}, status_code=201 if added else 200)

    @api.delete("/rooms/{slug}/members/{username}")
    async def remove_member(slug: str, username: str, request: Request) -> dict[str, Any]:
        await service.remove_member(slug, await caller(request), username)
        return {"message": f"{username} is no longer a member of {slug}"}

    return api


def install(app: FastAPI, service: AccountService, authenticator: Authenticator) -> None:
    """Mount the API and answer every AccountError as JSON."""

    async def refused(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AccountError)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(error_body(exc), status_code=exc.status, headers=headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if not request.url.path.startswith("/api/"):
            return await http_exception_handler(request, exc)
        message = {404: "no such API path; see the README's REST API", 405: "method not allowed"}
        text = message.get(exc.status_code, str(exc.detail))
        body = {"error": text, "message": text, "code": f"http_{exc.status_code}"}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def failed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("API call failed", exc_info=exc)
        text = "the server failed on this request; try again, and report it if it persists"
        return JSONResponse({"error": text, "message": text, "code": "internal"}, status_code=500)

    app.add_exception_handler(AccountError, refused)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, failed)
    app.include_router(router(service, authenticator))
