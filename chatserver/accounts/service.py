"""What the REST API and the socket's admission ask of accounts and rooms.

Identity comes from a verified token (``auth.Principal``); the service decides, the
store keeps. A token issued at or before the account's last sign-out is refused
everywhere, so ``POST /api/auth/logout`` ends every session that token could open.

Socket identity: the original client names itself by a ``uid`` it keeps in the browser.
The first signed-in socket that presents a free ``uid`` binds it to the token's account
for good; from then on that account's sockets are that ``uid`` (so the client sees itself
once), no other account can take it, and an anonymous socket presenting it is refused.
A signed-in socket whose ``uid`` belongs to someone else is named by its account id.

Private rooms: their owner adds members by username and removes them; a member may
leave. A removed member's open sockets in the room are closed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

from chatserver.accounts import model
from chatserver.accounts.model import (
    Account,
    Conflict,
    Forbidden,
    NotFound,
    Room,
    RoomSettings,
    Unauthorized,
)
from chatserver.accounts.store import AccountStore
from chatserver.auth import Principal
from chatserver.broker.base import BrokerUnavailable, Counter
from chatserver.protocol import valid_user_id

log = logging.getLogger(__name__)

SUGGESTIONS = 3
ROOMS_PER_HOUR = 20
DEFAULT_ROOM_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "asocial:room:default"))

Revoker = Callable[[str], Awaitable[None]]
"""Ends an account's sessions at its identity provider (Firebase refresh tokens)."""


class SocketEnder(Protocol):
    """Closes an account's open sockets, in every process: those whose token was issued
    up to ``issued_up_to`` (seconds; None: any), in ``room`` (None: any)."""

    def __call__(
        self,
        account_id: str,
        *,
        issued_up_to: int | None = None,
        room: str | None = None,
        reason: str,
    ) -> Awaitable[None]: ...


@dataclasses.dataclass(frozen=True)
class Joined:
    room: Room
    settings: RoomSettings


@dataclasses.dataclass(frozen=True)
class RoomMember:
    account_id: str
    username: str | None  # None: the account is gone
    settings: RoomSettings
    is_owner: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.account_id,
            "username": self.username,
            **self.settings.as_dict(),
            "is_owner": self.is_owner,
        }


class AccountService:
    def __init__(
        self,
        store: AccountStore,
        counter: Counter,
        *,
        identities: bool,
        revoker: Revoker | None = None,
        end_sockets: SocketEnder | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.identities = identities
        self._counter = counter
        self._revoker = revoker
        self._end_sockets = end_sockets
        self._clock = clock

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def start(self) -> None:
        """Make sure the ``default`` public room exists."""
        await self.store.create_room(
            Room(
                id=DEFAULT_ROOM_ID,
                slug=model.DEFAULT_ROOM,
                name="Default",
                description="Everyone starts here.",
                is_public=True,
                created_at=self._now_ms(),
            )
        )

    # --- identity ------------------------------------------------------------------

    def signed_in(self, principal: Principal | None) -> Principal:
        """The principal of an endpoint that needs one, or Unauthorized saying why not."""
        if not self.identities:
            raise Unauthorized(
                "this server runs without sign-in (ASOCIAL_AUTH_MODE=anonymous), so it keeps "
                "no accounts; its operator can set ASOCIAL_AUTH_MODE to firebase or jwt"
            )
        if principal is None:
            raise Unauthorized("sign in first: send 'Authorization: Bearer <ID token>'")
        return principal

    async def _fresh(self, principal: Principal) -> Principal:
        before = await self.store.revoked_before(principal.user_id)
        _check_not_revoked(principal, before)
        return principal

    # --- accounts ------------------------------------------------------------------

    async def me(self, principal: Principal | None) -> Account:
        """The caller's account, created on the first call with a username made from the
        token's email (numbered when taken)."""
        return await self._account(await self._fresh(self.signed_in(principal)))

    async def _account(self, who: Principal) -> Account:
        """The account of a checked principal, created on first use."""
        existing = await self.store.account(who.user_id)
        if existing is not None:
            return existing
        candidates = model.variants(model.username_base(who.email), 12)
        candidates.append(f"user{uuid.uuid4().hex[:12]}")
        account = await self.store.create_account(
            who.user_id, who.email, candidates, self._now_ms()
        )
        log.info("account created")
        return account

    async def check_username(self, value: object) -> None:
        """Nothing when free; Conflict with suggestions when taken."""
        if not self.identities:
            self.signed_in(None)
        name = model.check_username(value)
        if (await self.store.taken([name]))[0]:
            raise Conflict(f"username {name!r} is taken", suggestions=await self._suggestions(name))

    async def _suggestions(self, name: str) -> list[str]:
        candidates = model.variants(name, 8)[1:]
        taken = await self.store.taken(candidates)
        return [c for c, used in zip(candidates, taken, strict=True) if not used][:SUGGESTIONS]

    async def rename(self, principal: Principal | None, value: object) -> Account:
        who = await self._fresh(self.signed_in(principal))
        name = model.check_username(value)
        await self._account(who)  # already checked: no second revocation lookup
        try:
            return await self.store.rename(who.user_id, name)
        except Conflict as exc:
            raise Conflict(exc.message, suggestions=await self._suggestions(name)) from None

    async def delete(self, principal: Principal | None) -> None:
        who = await self._fresh(self.signed_in(principal))
        if not await self.store.delete_account(who.user_id):
            raise NotFound("there is no account to delete")
        log.info("account deleted")
        await self._close_sockets(who.user_id, int(self._clock()), "this account was deleted")

    async def logout(self, principal: Principal | None) -> None:
        """Refuse the caller's current tokens from now on, and end its refresh tokens at
        the identity provider when there is one."""
        who = await self._fresh(self.signed_in(principal))
        now = int(self._clock())
        await self.store.revoke(who.user_id, now)
        if self._revoker is not None:
            await self._revoker(who.user_id)
        await self._close_sockets(who.user_id, now, "signed out: sign in again to chat")

    async def _close_sockets(
        self,
        account_id: str,
        issued_up_to: int | None,
        reason: str,
        *,
        room: str | None = None,
    ) -> None:
        """Close the account's open sockets in every process (best effort: what ended
        them is recorded, so any socket missed is refused when it reconnects)."""
        if self._end_sockets is None:
            return
        try:
            await self._end_sockets(account_id, issued_up_to=issued_up_to, room=room, reason=reason)
        except BrokerUnavailable:
            log.warning("open sockets not told to close: broker unavailable")

    # --- rooms ---------------------------------------------------------------------

    async def public_rooms(self) -> list[Room]:
        rooms = await self.store.public_rooms()
        if not any(room.slug == model.DEFAULT_ROOM for room in rooms):
            await self.start()  # Redis was down when the server started, or was emptied
            rooms = await self.store.public_rooms()
        return rooms

    async def _room(self, slug: str) -> Room | None:
        room = await self.store.room(slug)
        if room is None and slug == model.DEFAULT_ROOM:
            await self.start()
            room = await self.store.room(slug)
        return room

    async def _existing_room(self, slug: object) -> Room:
        """The room ``slug`` names (Invalid, NotFound)."""
        clean = model.check_slug(slug)
        room = await self._room(clean)
        if room is None:
            raise NotFound(f"no room {clean!r}; GET /api/rooms/public lists the public ones")
        return room

    async def _may_enter(self, room: Room, user_id: str) -> bool:
        """Whether the account may see and join the room: any room that is public, a
        private one as its owner or a member."""
        return (
            room.is_public
            or room.owner_id == user_id
            or await self.store.room_settings(room.slug, user_id) is not None
        )

    async def room(self, slug: str, principal: Principal | None) -> Room:
        room = await self._existing_room(slug)
        if not room.is_public:
            who = await self._fresh(self.signed_in(principal))
            if not await self._may_enter(room, who.user_id):
                raise Forbidden(f"room {slug!r} is private and you are not one of its members")
        return room

    async def create_room(
        self,
        principal: Principal | None,
        *,
        name: object,
        slug: object,
        description: object,
        is_public: object,
        client: str,
    ) -> Room:
        """A new room. With sign-in, only signed-in users create rooms and may make them
        private; without, anyone may create public ones. Each creator (account or
        address) may create ``ROOMS_PER_HOUR`` rooms an hour."""
        owner: str | None = None
        if self.identities:
            owner = (await self._fresh(self.signed_in(principal))).user_id
        if not isinstance(is_public, bool):
            raise model.Invalid("'is_public' must be true or false")
        if not is_public and owner is None:
            raise Unauthorized("private rooms need sign-in, which this server does not have")
        clean_name = model.check_room_name(name)
        clean_slug = model.check_slug(slug) if slug else model.slug_from_name(clean_name)
        if clean_slug in model.RESERVED_SLUGS:
            raise model.Invalid(f"{clean_slug!r} is a name the API keeps; pick another")
        hour = int(self._clock() // 3600)
        used = await self._counter.count(f"rooms:{owner or client}:{hour}", window_s=3700)
        if used > ROOMS_PER_HOUR:
            raise model.TooMany(f"at most {ROOMS_PER_HOUR} new rooms an hour; try again later")
        room = Room(
            id=str(uuid.uuid4()),
            slug=clean_slug,
            name=clean_name,
            description=model.check_description(description),
            is_public=is_public,
            created_at=self._now_ms(),
            owner_id=owner,
        )
        if not await self.store.create_room(room):
            raise Conflict(f"room {clean_slug!r} exists; join it or pick another name")
        if owner is not None:
            await self.store.join_room(
                clean_slug, owner, display_name=None, color=None, now_ms=room.created_at
            )
        return room

    async def join(
        self, slug: str, principal: Principal | None, *, display_name: object, color: object
    ) -> Joined:
        who = await self._fresh(self.signed_in(principal))
        room = await self._existing_room(slug)
        if not await self._may_enter(room, who.user_id):
            raise Forbidden(f"room {slug!r} is private; only its members may join")
        settings = await self.store.join_room(
            slug,
            who.user_id,
            display_name=model.check_display_name(display_name),
            color=model.check_color(color),
            now_ms=self._now_ms(),
        )
        return Joined(room, settings)

    async def my_rooms(self, principal: Principal | None) -> list[Room]:
        """The rooms the caller owns or is a member of, newest first."""
        who = await self._fresh(self.signed_in(principal))
        return await self.store.rooms_of(who.user_id)

    # --- members ---------------------------------------------------------------------

    async def _member_of(self, slug: object, principal: Principal | None) -> tuple[Room, str]:
        """The room and the checked caller's account id (Unauthorized, NotFound)."""
        who = await self._fresh(self.signed_in(principal))
        return await self._existing_room(slug), who.user_id

    async def _account_named(self, username: object) -> tuple[str, str]:
        """The checked username and the id of the account that has it (NotFound)."""
        name = model.check_username(username)
        account_id = await self.store.account_id_of(name)
        if account_id is None:
            raise NotFound(f"no account is named {name!r}; check the spelling")
        return name, account_id

    async def members(self, slug: object, principal: Principal | None) -> list[RoomMember]:
        """The room's members, owner first, then by joining time. A private room's
        members are listed to its members only."""
        room, caller = await self._member_of(slug, principal)
        found = await self.store.room_members(room.slug)
        if not room.is_public and caller != room.owner_id and caller not in found:
            raise Forbidden(f"room {room.slug!r} is private and you are not one of its members")
        ids = sorted(found, key=lambda i: (i != room.owner_id, found[i].joined_at, i))
        accounts = await asyncio.gather(*(self.store.account(i) for i in ids))
        return [
            RoomMember(i, a.username if a else None, found[i], i == room.owner_id)
            for i, a in zip(ids, accounts, strict=True)
        ]

    async def add_member(
        self, slug: object, principal: Principal | None, username: object
    ) -> tuple[RoomMember, bool]:
        """Let the account named ``username`` into a private room (its owner only).
        Returns the member and whether it is new."""
        room, caller = await self._member_of(slug, principal)
        if room.is_public:
            raise model.Invalid(f"room {room.slug!r} is public: anyone signed in may join it")
        if caller != room.owner_id:
            raise Forbidden(f"only the owner of room {room.slug!r} may add members")
        name, account_id = await self._account_named(username)
        added = await self.store.add_member(room.slug, account_id, now_ms=self._now_ms())
        settings = await self.store.room_settings(room.slug, account_id)
        if settings is None:  # removed again in between
            raise Conflict(f"{name!r} was removed from {room.slug!r} meanwhile; add again")
        account = await self.store.account(account_id)
        member = RoomMember(
            account_id, account.username if account else name, settings, account_id == caller
        )
        if added:
            log.info("member added")
        return member, added

    async def remove_member(
        self, slug: object, principal: Principal | None, username: object
    ) -> None:
        """Take the account named ``username`` out of the room: its owner may remove
        anyone but itself, a member may leave. In a private room the removed member's
        open sockets there are closed."""
        room, caller = await self._member_of(slug, principal)
        name, account_id = await self._account_named(username)
        if account_id == room.owner_id:
            raise model.Invalid(f"the owner of room {room.slug!r} cannot be removed from it")
        if caller not in (room.owner_id, account_id):
            raise Forbidden(f"only the owner of room {room.slug!r} may remove other members")
        if not await self.store.remove_member(room.slug, account_id):
            raise NotFound(f"{name!r} is not a member of room {room.slug!r}")
        log.info("member removed")
        if not room.is_public:
            reason = f"you are no longer a member of the private room {room.slug!r}"
            await self._close_sockets(account_id, None, reason, room=room.slug)

    # --- the socket ----------------------------------------------------------------

    async def socket_user(self, principal: Principal | None, uid: str | None, slug: str) -> str:
        """The user id a socket joining ``slug`` gets (see the module docstring).

        Raises Unauthorized (revoked token, a uid that belongs to an account),
        Forbidden (a private room) or Unavailable (the store is down)."""
        if principal is None:
            if uid is None:
                raise model.Invalid("a uid is needed without a token")
            facts = await self.store.admission(account_id=None, uids=[uid], slug=slug)
            if facts.owners[uid] is not None:
                raise Unauthorized(f"uid {uid!r} belongs to a signed-in account; sign in to use it")
            if facts.private:
                raise Forbidden(f"room {slug!r} is private; sign in and join it first")
            return uid
        candidates = [u for u in dict.fromkeys((uid, principal.user_id)) if u and valid_user_id(u)]
        facts = await self.store.admission(account_id=principal.user_id, uids=candidates, slug=slug)
        _check_not_revoked(principal, facts.revoked_before)
        if facts.private and not facts.member:
            raise Forbidden(
                f"room {slug!r} is private; join it first (POST /api/rooms/{slug}/join)"
            )
        for candidate in candidates:
            if facts.owners[candidate] == principal.user_id:
                return candidate
        raise Conflict("this account's id is bound to another account; sign in with another")


def _check_not_revoked(principal: Principal, revoked_before: int) -> None:
    if revoked_before and (principal.issued_at is None or principal.issued_at <= revoked_before):
        raise Unauthorized("this token was ended by a sign-out; sign in again")
