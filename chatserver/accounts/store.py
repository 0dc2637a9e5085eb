"""The storage interface of accounts and rooms, and its in-memory twin.

Every method that checks and then writes is atomic: two concurrent registrations of one
username cannot both succeed, in either implementation. The in-memory store serves a
single process (no ``ASOCIAL_REDIS_URL``) and the service's unit tests; its data lives as
long as the process.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from chatserver.accounts.model import Account, Conflict, NotFound, Room, RoomSettings, fold


@dataclasses.dataclass(frozen=True)
class AdmissionFacts:
    """What the store knows about a socket about to join ``slug``.

    ``owners`` maps each uid asked about to the account it is bound to (after binding
    it to the connecting account when it was free); ``revoked_before`` is the account's
    logout time in seconds (0: never); ``private`` whether the room is private, and
    ``member`` whether the account may enter it."""

    owners: dict[str, str | None]
    revoked_before: int
    private: bool
    member: bool


class AccountStore(Protocol):
    async def account(self, account_id: str) -> Account | None: ...

    async def create_account(
        self, account_id: str, email: str | None, candidates: list[str], now_ms: int
    ) -> Account:
        """The account, created with the first free candidate username if it did not
        exist; raises Conflict when every candidate is taken."""
        ...

    async def taken(self, usernames: list[str]) -> list[bool]: ...

    async def rename(self, account_id: str, username: str) -> Account:
        """Raises NotFound (no account) or Conflict (another account has the name)."""
        ...

    async def delete_account(self, account_id: str) -> bool:
        """Remove the account, its username, uid bindings and room settings."""
        ...

    async def revoke(self, account_id: str, before_s: int) -> None:
        """Tokens of ``account_id`` issued before ``before_s`` are no longer accepted."""
        ...

    async def revoked_before(self, account_id: str) -> int: ...

    async def admission(
        self, *, account_id: str | None, uids: list[str], slug: str
    ) -> AdmissionFacts:
        """Bind each free uid of ``uids`` to ``account_id`` (when given) and report."""
        ...

    async def public_rooms(self) -> list[Room]: ...

    async def room(self, slug: str) -> Room | None: ...

    async def create_room(self, room: Room) -> bool:
        """False when the slug is taken."""
        ...

    async def join_room(
        self,
        slug: str,
        account_id: str,
        *,
        display_name: str | None,
        color: str | None,
        now_ms: int,
    ) -> RoomSettings:
        """Record (or update) the account's settings in the room; raises Conflict when
        another member of the room has that display name, NotFound with no such room."""
        ...

    async def room_settings(self, slug: str, account_id: str) -> RoomSettings | None: ...

    async def account_id_of(self, username: str) -> str | None:
        """The account holding ``username`` (regardless of case), if any."""
        ...

    async def add_member(self, slug: str, account_id: str, *, now_ms: int) -> bool:
        """Make the account a member of the room (no display name or colour yet); False
        when it already was one. Raises NotFound with no such room."""
        ...

    async def remove_member(self, slug: str, account_id: str) -> bool:
        """Drop the account's membership and display name in the room; False when it
        was not a member."""
        ...

    async def room_members(self, slug: str) -> dict[str, RoomSettings]:
        """Every member of the room, by account id."""
        ...

    async def rooms_of(self, account_id: str) -> list[Room]:
        """The rooms the account owns or is a member of, newest first."""
        ...

    async def close(self) -> None: ...


class MemoryAccountStore:
    """Dict-backed; each method runs without awaiting, so it is atomic in one loop."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.usernames: dict[str, str] = {}  # fold(username) -> account id
        self.uids: dict[str, str] = {}  # uid -> account id
        self.revoked: dict[str, int] = {}
        self.rooms: dict[str, Room] = {}
        self.members: dict[str, dict[str, RoomSettings]] = {}  # slug -> account -> settings
        self.room_names: dict[str, dict[str, str]] = {}  # slug -> fold(name) -> account

    async def account(self, account_id: str) -> Account | None:
        return self.accounts.get(account_id)

    async def create_account(
        self, account_id: str, email: str | None, candidates: list[str], now_ms: int
    ) -> Account:
        if account_id in self.accounts:
            return self.accounts[account_id]
        for name in candidates:
            if fold(name) not in self.usernames:
                self.usernames[fold(name)] = account_id
                account = Account(account_id, email, name, now_ms)
                self.accounts[account_id] = account
                return account
        raise Conflict("no free username could be made for this account; try again")

    async def taken(self, usernames: list[str]) -> list[bool]:
        return [fold(name) in self.usernames for name in usernames]

    async def rename(self, account_id: str, username: str) -> Account:
        account = self.accounts.get(account_id)
        if account is None:
            raise NotFound("no account; call GET /api/auth/me first")
        owner = self.usernames.get(fold(username))
        if owner not in (None, account_id):
            raise Conflict(f"username {username!r} is taken")
        del self.usernames[fold(account.username)]
        self.usernames[fold(username)] = account_id
        renamed = dataclasses.replace(account, username=username)
        self.accounts[account_id] = renamed
        return renamed

    async def delete_account(self, account_id: str) -> bool:
        account = self.accounts.pop(account_id, None)
        if account is not None:
            self.usernames.pop(fold(account.username), None)
        for uid in [u for u, owner in self.uids.items() if owner == account_id]:
            del self.uids[uid]
        for slug, members in self.members.items():
            settings = members.pop(account_id, None)
            if settings is not None and settings.display_name:
                self.room_names[slug].pop(fold(settings.display_name), None)
        return account is not None

    async def revoke(self, account_id: str, before_s: int) -> None:
        self.revoked[account_id] = max(before_s, self.revoked.get(account_id, 0))

    async def revoked_before(self, account_id: str) -> int:
        return self.revoked.get(account_id, 0)

    async def admission(
        self, *, account_id: str | None, uids: list[str], slug: str
    ) -> AdmissionFacts:
        owners: dict[str, str | None] = {}
        for uid in uids:
            if account_id is not None:
                self.uids.setdefault(uid, account_id)
            owners[uid] = self.uids.get(uid)
        room = self.rooms.get(slug)
        private = room is not None and not room.is_public
        member = account_id is not None and (
            account_id in self.members.get(slug, {})
            or (room is not None and room.owner_id == account_id)
        )
        revoked = self.revoked.get(account_id, 0) if account_id else 0
        return AdmissionFacts(owners, revoked, private, member)

    async def public_rooms(self) -> list[Room]:
        return sorted(
            (room for room in self.rooms.values() if room.is_public), key=lambda r: r.created_at
        )

    async def room(self, slug: str) -> Room | None:
        return self.rooms.get(slug)

    async def create_room(self, room: Room) -> bool:
        if room.slug in self.rooms:
            return False
        self.rooms[room.slug] = room
        return True

    async def join_room(
        self,
        slug: str,
        account_id: str,
        *,
        display_name: str | None,
        color: str | None,
        now_ms: int,
    ) -> RoomSettings:
        if slug not in self.rooms:
            raise NotFound(f"no room {slug!r}")
        members = self.members.setdefault(slug, {})
        names = self.room_names.setdefault(slug, {})
        if display_name and names.get(fold(display_name), account_id) != account_id:
            raise Conflict(f"display name {display_name!r} is taken in this room")
        previous = members.get(account_id)
        if previous is not None and previous.display_name:
            names.pop(fold(previous.display_name), None)
        if display_name:
            names[fold(display_name)] = account_id
        settings = RoomSettings(
            display_name, color, previous.joined_at if previous is not None else now_ms
        )
        members[account_id] = settings
        return settings

    async def room_settings(self, slug: str, account_id: str) -> RoomSettings | None:
        return self.members.get(slug, {}).get(account_id)

    async def account_id_of(self, username: str) -> str | None:
        return self.usernames.get(fold(username))

    async def add_member(self, slug: str, account_id: str, *, now_ms: int) -> bool:
        if slug not in self.rooms:
            raise NotFound(f"no room {slug!r}")
        members = self.members.setdefault(slug, {})
        if account_id in members:
            return False
        members[account_id] = RoomSettings(None, None, now_ms)
        return True

    async def remove_member(self, slug: str, account_id: str) -> bool:
        settings = self.members.get(slug, {}).pop(account_id, None)
        if settings is None:
            return False
        if settings.display_name:
            self.room_names.get(slug, {}).pop(fold(settings.display_name), None)
        return True

    async def room_members(self, slug: str) -> dict[str, RoomSettings]:
        return dict(self.members.get(slug, {}))

    async def rooms_of(self, account_id: str) -> list[Room]:
        mine = [
            room
            for slug, room in self.rooms.items()
            if room.owner_id == account_id or account_id in self.members.get(slug, {})
        ]
        return sorted(mine, key=lambda r: r.created_at, reverse=True)

    async def close(self) -> None:
        return None
