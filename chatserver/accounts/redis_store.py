"""Accounts and rooms in the instance's Redis, each check-then-write in one Lua script.

Keys (prefix ``asocial:``): ``account:<id>`` (hash), ``usernames`` (folded name → id),
``uids`` (socket uid → id), ``account-uids:<id>`` and ``account-rooms:<id>`` (sets, for
deletion), ``revoked`` (id → seconds), ``room:<slug>`` (hash), ``rooms-public`` (sorted by
creation), ``room-members:<slug>`` (id → settings JSON), ``room-names:<slug>`` (folded
display name → id). These keys never expire; the operator turns on AOF persistence for
instances that keep accounts. With Sentinel, each write waits (briefly) for a replica to
acknowledge it, so a failover right after an answer does not lose what was answered.
"""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from chatserver.accounts.model import (
    Account,
    Conflict,
    NotFound,
    Room,
    RoomSettings,
    Unavailable,
    fold,
)
from chatserver.accounts.store import AdmissionFacts
from chatserver.broker.redis_connection import OUTAGE, close_client, not_a_master
from chatserver.broker.redis_keys import PREFIX
from chatserver.broker.sentinel_follower import MasterFollower

PUBLIC_ROOMS_SHOWN = 500
REPLICA_WAIT_MS = 100

_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HGETALL', KEYS[1]) end
for i = 4, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[2], ARGV[i + 1], ARGV[1]) == 1 then
    redis.call('HSET', KEYS[1], 'id', ARGV[1], 'email', ARGV[2], 'username', ARGV[i],
      'username_key', ARGV[i + 1], 'created_at', ARGV[3])
    return redis.call('HGETALL', KEYS[1])
  end
end
return 0
"""

_RENAME = """
local old = redis.call('HGET', KEYS[1], 'username_key')
if not old then return 0 end
local owner = redis.call('HGET', KEYS[2], ARGV[3])
if owner and owner ~= ARGV[1] then return -1 end
redis.call('HDEL', KEYS[2], old)
redis.call('HSET', KEYS[2], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[1], 'username', ARGV[2], 'username_key', ARGV[3])
return redis.call('HGETALL', KEYS[1])
"""

_DELETE = """
local existed = redis.call('EXISTS', KEYS[1])
local key = redis.call('HGET', KEYS[1], 'username_key')
if key and redis.call('HGET', KEYS[2], key) == ARGV[1] then redis.call('HDEL', KEYS[2], key) end
for _, uid in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  if redis.call('HGET', KEYS[3], uid) == ARGV[1] then redis.call('HDEL', KEYS[3], uid) end
end
for _, slug in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  local members = ARGV[2] .. 'room-members:' .. slug
  local raw = redis.call('HGET', members, ARGV[1])
  if raw then
    local name_key = cjson.decode(raw)['name_key']
    local names = ARGV[2] .. 'room-names:' .. slug
    if type(name_key) == 'string' and redis.call('HGET', names, name_key) == ARGV[1] then
      redis.call('HDEL', names, name_key)
    end
    redis.call('HDEL', members, ARGV[1])
  end
end
redis.call('DEL', KEYS[1], KEYS[4], KEYS[5])
return existed
"""

_ADMISSION = """
local account = ARGV[1]
local out = {0, 0, 0}
if account ~= '' then
  out[1] = tonumber(redis.call('HGET', KEYS[2], account) or '0')
  if redis.call('HEXISTS', KEYS[4], account) == 1
      or redis.call('HGET', KEYS[3], 'owner_id') == account then
    out[3] = 1
  end
end
if redis.call('HGET', KEYS[3], 'is_public') == '0' then out[2] = 1 end
for i = 2, #ARGV do
  if account ~= '' and redis.call('HSETNX', KEYS[1], ARGV[i], account) == 1 then
    redis.call('SADD', KEYS[5], ARGV[i])
  end
  out[#out + 1] = redis.call('HGET', KEYS[1], ARGV[i]) or ''
end
return out
"""

_CREATE_ROOM = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
if ARGV[1] == '1' then redis.call('ZADD', KEYS[2], ARGV[2], KEYS[1]) end
return 1
"""

_JOIN = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local account, name, name_key = ARGV[1], ARGV[2], ARGV[3]
if name_key ~= '' then
  local owner = redis.call('HGET', KEYS[3], name_key)
  if owner and owner ~= account then return -1 end
end
local joined = ARGV[5]
local raw = redis.call('HGET', KEYS[2], account)
if raw then
  local previous = cjson.decode(raw)
  joined = previous['joined_at']
  local old = previous['name_key']
  if type(old) == 'string' and old ~= '' and redis.call('HGET', KEYS[3], old) == account then
    redis.call('HDEL', KEYS[3], old)
  end
end
if name_key ~= '' then redis.call('HSET', KEYS[3], name_key, account) end
local settings = cjson.encode({display_name = name, color = ARGV[4], joined_at = joined,
  name_key = name_key})
redis.call('HSET', KEYS[2], account, settings)
redis.call('SADD', KEYS[4], ARGV[6])
return settings
"""


_ADD_MEMBER = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1],
  cjson.encode({display_name = '', color = '', joined_at = ARGV[2], name_key = ''}))
redis.call('SADD', KEYS[3], ARGV[3])
return 1
"""

_REMOVE_MEMBER = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local old = cjson.decode(raw)['name_key']
if type(old) == 'string' and old ~= '' and redis.call('HGET', KEYS[2], old) == ARGV[1] then
  redis.call('HDEL', KEYS[2], old)
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[2])
return 1
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _hash(flat: list[Any]) -> dict[str, str]:
    items = [_text(v) for v in flat]
    return dict(zip(items[::2], items[1::2], strict=True))


def _account(fields: dict[str, str]) -> Account:
    return Account(
        id=fields["id"],
        email=fields.get("email") or None,
        username=fields["username"],
        created_at=int(fields["created_at"]),
    )


def _room(fields: dict[str, str]) -> Room:
    return Room(
        id=fields["id"],
        slug=fields["slug"],
        name=fields["name"],
        description=fields.get("description", ""),
        is_public=fields.get("is_public") == "1",
        created_at=int(fields["created_at"]),
        owner_id=fields.get("owner_id") or None,
    )


def _settings(raw: Any) -> RoomSettings:
    data = json.loads(_text(raw))
    return RoomSettings(
        display_name=data.get("display_name") or None,
        color=data.get("color") or None,
        joined_at=int(data["joined_at"]),
    )


class RedisAccountStore:
    """The durable store; every Redis failure becomes ``Unavailable`` (HTTP 503). Behind
    Sentinel, a refused write (``READONLY``: the server is no longer the master) or a
    server that stops answering has the ``follower`` ask the sentinels where the master
    is, as the broker's commands do, so the next write goes there."""

    def __init__(
        self, client: Redis, *, replicated: bool, follower: MasterFollower | None = None
    ) -> None:
        self._redis = client
        self._replicated = replicated
        self._follower = follower
        self._create = client.register_script(_CREATE)
        self._rename = client.register_script(_RENAME)
        self._delete = client.register_script(_DELETE)
        self._admission = client.register_script(_ADMISSION)
        self._create_room = client.register_script(_CREATE_ROOM)
        self._join = client.register_script(_JOIN)
        self._add_member = client.register_script(_ADD_MEMBER)
        self._remove_member = client.register_script(_REMOVE_MEMBER)

    async def _run(self, awaitable: Any, *, write: bool = False) -> Any:
        try:
            result = await awaitable
            if write and self._replicated:
                await self._redis.wait(1, REPLICA_WAIT_MS)
        except (RedisError, OSError, TimeoutError) as exc:
            moved = isinstance(exc, OUTAGE) or (isinstance(exc, RedisError) and not_a_master(exc))
            if moved and self._follower is not None:
                self._follower.recheck()
            raise Unavailable("accounts are unavailable right now; try again shortly") from exc
        return result

    async def account(self, account_id: str) -> Account | None:
        fields = await self._run(self._redis.hgetall(f"{PREFIX}account:{account_id}"))
        return _account({_text(k): _text(v) for k, v in fields.items()}) if fields else None

    async def create_account(
        self, account_id: str, email: str | None, candidates: list[str], now_ms: int
    ) -> Account:
        args: list[str | int] = [account_id, email or "", now_ms]
        for name in candidates:
            args += [name, fold(name)]
        result = await self._run(
            self._create(keys=[f"{PREFIX}account:{account_id}", f"{PREFIX}usernames"], args=args),
            write=True,
        )
        if result == 0:
            raise Conflict("no free username could be made for this account; try again")
        return _account(_hash(result))

    async def taken(self, usernames: list[str]) -> list[bool]:
        if not usernames:
            return []
        owners = await self._run(
            self._redis.hmget(f"{PREFIX}usernames", [fold(n) for n in usernames])
        )
        return [owner is not None for owner in owners]

    async def rename(self, account_id: str, username: str) -> Account:
        result = await self._run(
            self._rename(
                keys=[f"{PREFIX}account:{account_id}", f"{PREFIX}usernames"],
                args=[account_id, username, fold(username)],
            ),
            write=True,
        )
        if result == 0:
            raise NotFound("no account; call GET /api/auth/me first")
        if result == -1:
            raise Conflict(f"username {username!r} is taken")
        return _account(_hash(result))

    async def delete_account(self, account_id: str) -> bool:
        keys = [
            f"{PREFIX}account:{account_id}",
            f"{PREFIX}usernames",
            f"{PREFIX}uids",
            f"{PREFIX}account-uids:{account_id}",
            f"{PREFIX}account-rooms:{account_id}",
        ]
        existed = await self._run(self._delete(keys=keys, args=[account_id, PREFIX]), write=True)
        return bool(existed)

    async def revoke(self, account_id: str, before_s: int) -> None:
        await self._run(self._redis.hset(f"{PREFIX}revoked", account_id, before_s), write=True)

    async def revoked_before(self, account_id: str) -> int:
        value = await self._run(self._redis.hget(f"{PREFIX}revoked", account_id))
        return int(value) if value is not None else 0

    async def admission(
        self, *, account_id: str | None, uids: list[str], slug: str
    ) -> AdmissionFacts:
        keys = [
            f"{PREFIX}uids",
            f"{PREFIX}revoked",
            f"{PREFIX}room:{slug}",
            f"{PREFIX}room-members:{slug}",
            f"{PREFIX}account-uids:{account_id or ''}",
        ]
        result = await self._run(self._admission(keys=keys, args=[account_id or "", *uids]))
        owners = {uid: (_text(owner) or None) for uid, owner in zip(uids, result[3:], strict=True)}
        return AdmissionFacts(owners, int(result[0]), bool(result[1]), bool(result[2]))

    async def public_rooms(self) -> list[Room]:
        keys = await self._run(
            self._redis.zrange(f"{PREFIX}rooms-public", 0, PUBLIC_ROOMS_SHOWN - 1)
        )
        if not keys:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(_text(key))
        rows = await self._run(pipe.execute())
        return [_room({_text(k): _text(v) for k, v in row.items()}) for row in rows if row]

    async def room(self, slug: str) -> Room | None:
        fields = await self._run(self._redis.hgetall(f"{PREFIX}room:{slug}"))
        return _room({_text(k): _text(v) for k, v in fields.items()}) if fields else None

    async def create_room(self, room: Room) -> bool:
        fields = {
            "id": room.id,
            "slug": room.slug,
            "name": room.name,
            "description": room.description,
            "is_public": "1" if room.is_public else "0",
            "created_at": str(room.created_at),
            "owner_id": room.owner_id or "",
        }
        flat = [item for pair in fields.items() for item in pair]
        created = await self._run(
            self._create_room(
                keys=[f"{PREFIX}room:{room.slug}", f"{PREFIX}rooms-public"],
                args=["1" if room.is_public else "0", room.created_at, *flat],
            ),
            write=True,
        )
        return bool(created)

    async def join_room(
        self,
        slug: str,
        account_id: str,
        *,
        display_name: str | None,
        color: str | None,
        now_ms: int,
    ) -> RoomSettings:
        keys = [
            f"{PREFIX}room:{slug}",
            f"{PREFIX}room-members:{slug}",
            f"{PREFIX}room-names:{slug}",
            f"{PREFIX}account-rooms:{account_id}",
        ]
        name_key = fold(display_name) if display_name else ""
        args = [account_id, display_name or "", name_key, color or "", str(now_ms), slug]
        result = await self._run(self._join(keys=keys, args=args), write=True)
        if result == 0:
            raise NotFound(f"no room {slug!r}")
        if result == -1:
            raise Conflict(f"display name {display_name!r} is taken in this room")
        return _settings(result)

    async def room_settings(self, slug: str, account_id: str) -> RoomSettings | None:
        raw = await self._run(self._redis.hget(f"{PREFIX}room-members:{slug}", account_id))
        return _settings(raw) if raw is not None else None

    async def account_id_of(self, username: str) -> str | None:
        owner = await self._run(self._redis.hget(f"{PREFIX}usernames", fold(username)))
        return _text(owner) if owner is not None else None

    async def add_member(self, slug: str, account_id: str, *, now_ms: int) -> bool:
        keys = [
            f"{PREFIX}room:{slug}",
            f"{PREFIX}room-members:{slug}",
            f"{PREFIX}account-rooms:{account_id}",
        ]
        result = await self._run(
            self._add_member(keys=keys, args=[account_id, str(now_ms), slug]), write=True
        )
        if result == -1:
            raise NotFound(f"no room {slug!r}")
        return bool(result)

    async def remove_member(self, slug: str, account_id: str) -> bool:
        keys = [
            f"{PREFIX}room-members:{slug}",
            f"{PREFIX}room-names:{slug}",
            f"{PREFIX}account-rooms:{account_id}",
        ]
        result = await self._run(
            self._remove_member(keys=keys, args=[account_id, slug]), write=True
        )
        return bool(result)

    async def room_members(self, slug: str) -> dict[str, RoomSettings]:
        found = await self._run(self._redis.hgetall(f"{PREFIX}room-members:{slug}"))
        return {_text(k): _settings(v) for k, v in found.items()}

    async def rooms_of(self, account_id: str) -> list[Room]:
        # An owner is its room's first member (create_room joins it), so one set holds all.
        slugs = await self._run(self._redis.smembers(f"{PREFIX}account-rooms:{account_id}"))
        if not slugs:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for slug in sorted(_text(s) for s in slugs)[:PUBLIC_ROOMS_SHOWN]:
            pipe.hgetall(f"{PREFIX}room:{slug}")
        rows = await self._run(pipe.execute())
        rooms = [_room({_text(k): _text(v) for k, v in row.items()}) for row in rows if row]
        return sorted(rooms, key=lambda r: r.created_at, reverse=True)

    async def close(self) -> None:
        await close_client(self._redis)
