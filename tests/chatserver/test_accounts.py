"""Accounts and rooms: the service over both stores (the in-memory twin and a real
redis-server), so the two keep one behaviour."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from chatserver.accounts import model
from chatserver.accounts.model import Conflict, Forbidden, Invalid, NotFound, Unauthorized
from chatserver.accounts.redis_store import RedisAccountStore
from chatserver.accounts.service import AccountService
from chatserver.accounts.store import AccountStore, MemoryAccountStore
from chatserver.auth import Principal
from chatserver.broker.memory_broker import MemoryBroker
from chatserver.broker.redis_connection import connect
from tests.fixtures.processes import RedisProcess


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def user(name: str, email: str | None = None, issued_at: int = 1_800_000_000) -> Principal:
    return Principal(name, True, email=email or f"{name}@example.com", issued_at=issued_at)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[AccountStore]:
    if request.param == "memory":
        yield MemoryAccountStore()
        return
    redis: RedisProcess = request.getfixturevalue("redis_server")
    redis_store = RedisAccountStore(connect(redis.url, password=None), replicated=False)
    yield redis_store
    await redis_store.close()


@pytest.fixture
async def service(store: AccountStore) -> AccountService:
    svc = AccountService(store, MemoryBroker(), identities=True, clock=Clock())
    await svc.start()
    return svc


# --- naming rules (pure) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "base"),
    [
        ("ann.lee@example.com", "ann.lee"),
        ("x@example.com", "x_user"),
        ("a+b c@example.com", "a_b_c"),
        ("émile@example.com", "emile"),
        (None, "user"),
        ("averyveryverylonglocalpart@example.com", "averyveryverylongloc"),
    ],
)
def test_usernames_are_made_from_the_email(email: str | None, base: str) -> None:
    made = model.username_base(email)
    assert made == base
    assert model.USERNAME_RE.fullmatch(made)
    assert all(model.USERNAME_RE.fullmatch(v) for v in model.variants(made, 10))


@pytest.mark.parametrize("bad", ["ab", "x" * 21, "no spaces", "émile", 3, None])
def test_bad_usernames_are_refused_with_the_rule(bad: object) -> None:
    with pytest.raises(Invalid, match="3-20 characters"):
        model.check_username(bad)


# --- accounts ----------------------------------------------------------------------


async def test_me_creates_the_account_once_with_a_unique_username(service: AccountService) -> None:
    ann = await service.me(user("uid-ann", "ann@example.com"))
    assert (ann.id, ann.email, ann.username) == ("uid-ann", "ann@example.com", "ann")
    assert await service.me(user("uid-ann", "ann@example.com")) == ann
    other = await service.me(user("uid-ann2", "ANN@elsewhere.org"))
    assert other.username.lower() != "ann"
    assert other.username.startswith("ANN")
    assert model.USERNAME_RE.fullmatch(other.username)


async def test_usernames_are_unique_without_regard_to_case(service: AccountService) -> None:
    await service.me(user("a", "bob@example.com"))
    await service.me(user("b", "carol@example.com"))
    with pytest.raises(Conflict) as taken:
        await service.rename(user("b"), "BOB")
    assert len(taken.value.extra["suggestions"]) == 3
    for suggestion in taken.value.extra["suggestions"]:
        await service.check_username(suggestion)  # each suggestion is free
    with pytest.raises(Conflict):
        await service.check_username("Bob")
    renamed = await service.rename(user("a"), "Bob")  # one's own name in another case
    assert renamed.username == "Bob"
    await service.rename(user("b"), "bob_2")
    await service.check_username("carol")  # the old name is free again


async def test_concurrent_registrations_of_one_name_have_one_winner(
    service: AccountService,
) -> None:
    people = [user(f"u{i}", f"u{i}@example.com") for i in range(20)]
    for person in people:
        await service.me(person)
    results = await asyncio.gather(
        *(service.rename(person, "popular") for person in people), return_exceptions=True
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
    # and accounts created at once from one email each get their own name
    same = [user(f"twin{i}", "twin@example.com") for i in range(10)]
    made = await asyncio.gather(*(service.me(person) for person in same))
    assert len({a.username.lower() for a in made}) == 10


async def test_delete_frees_the_name_the_uids_and_the_room_names(
    service: AccountService, store: AccountStore
) -> None:
    await service.me(user("gone", "gone@example.com"))
    assert await service.socket_user(user("gone"), "browser-1", "default") == "browser-1"
    await service.join("default", user("gone"), display_name="Ghost", color="#123456")
    await service.delete(user("gone"))
    assert await store.account("gone") is None
    await service.check_username("gone")
    assert (await store.admission(account_id=None, uids=["browser-1"], slug="x")).owners == {
        "browser-1": None
    }
    joined = await service.join("default", user("new"), display_name="ghost", color=None)
    assert joined.settings.display_name == "ghost"
    with pytest.raises(NotFound):
        await service.delete(user("gone"))


async def test_logout_refuses_tokens_issued_before_it(service: AccountService) -> None:
    clock = service._clock
    assert isinstance(clock, Clock)
    old = user("u", issued_at=int(clock.now) - 10)
    await service.me(old)
    clock.now += 5
    await service.logout(old)
    for call in (service.me(old), service.socket_user(old, "b-1", "default")):
        with pytest.raises(Unauthorized, match="sign-out"):
            await call
    clock.now += 2
    fresh = user("u", issued_at=int(clock.now))
    assert (await service.me(fresh)).id == "u"


async def test_logout_and_delete_end_the_accounts_open_sockets(store: AccountStore) -> None:
    clock = Clock()
    ended: list[tuple[str, int | None, str | None, str]] = []

    async def end_sockets(
        account_id: str, *, issued_up_to: int | None = None, room: str | None = None, reason: str
    ) -> None:
        ended.append((account_id, issued_up_to, room, reason))

    service = AccountService(
        store, MemoryBroker(), identities=True, end_sockets=end_sockets, clock=clock
    )
    await service.start()
    await service.me(user("ann", issued_at=int(clock.now) - 60))
    await service.logout(user("ann", issued_at=int(clock.now) - 60))
    clock.now += 10
    await service.me(user("ann", issued_at=int(clock.now)))
    clock.now += 1
    await service.delete(user("ann", issued_at=int(clock.now) - 1))
    assert ended == [
        ("ann", 1_800_000_000, None, "signed out: sign in again to chat"),
        ("ann", 1_800_000_011, None, "this account was deleted"),
    ]


async def test_removal_from_a_private_room_ends_the_members_sockets_there(
    store: AccountStore,
) -> None:
    ended: list[tuple[str, int | None, str | None, str]] = []

    async def end_sockets(
        account_id: str, *, issued_up_to: int | None = None, room: str | None = None, reason: str
    ) -> None:
        ended.append((account_id, issued_up_to, room, reason))

    service = AccountService(store, MemoryBroker(), identities=True, end_sockets=end_sockets)
    await service.start()
    ann, bob = user("ann"), user("bob")
    for who in (ann, bob):
        await service.me(who)
    for slug, public in (("open", True), ("closed", False)):
        await service.create_room(
            ann, name=slug, slug=slug, description=None, is_public=public, client="c"
        )
    await service.join("open", bob, display_name=None, color=None)
    await service.add_member("closed", ann, "bob")
    await service.remove_member("open", bob, "bob")  # leaving a public room closes nothing
    await service.remove_member("closed", ann, "bob")
    assert ended == [
        ("bob", None, "closed", "you are no longer a member of the private room 'closed'")
    ]


async def test_without_sign_in_the_account_calls_say_why(store: AccountStore) -> None:
    service = AccountService(store, MemoryBroker(), identities=False)
    with pytest.raises(Unauthorized, match="ASOCIAL_AUTH_MODE"):
        await service.me(None)
    with pytest.raises(Unauthorized, match="sign in first"):
        await AccountService(store, MemoryBroker(), identities=True).me(None)


# --- the socket's identity -----------------------------------------------------------


async def test_a_uid_is_bound_to_the_first_account_that_presents_it(
    service: AccountService,
) -> None:
    ann, bob = user("ann-id"), user("bob-id")
    assert await service.socket_user(ann, "browser-a", "default") == "browser-a"
    assert await service.socket_user(ann, "browser-a", "default") == "browser-a"
    # Bob presents Ann's uid: he is named by his own account id, never as Ann.
    assert await service.socket_user(bob, "browser-a", "default") == "bob-id"
    # Mallory, anonymous, presents Ann's uid: refused; a free uid is hers to use.
    with pytest.raises(Unauthorized, match="belongs to a signed-in account"):
        await service.socket_user(None, "browser-a", "default")
    assert await service.socket_user(None, "browser-m", "default") == "browser-m"
    # An account id is reserved for its account: no one takes it as a uid.
    assert await service.socket_user(user("eve-id"), "bob-id", "default") == "eve-id"
    with pytest.raises(Unauthorized):
        await service.socket_user(None, "bob-id", "default")


# --- rooms -------------------------------------------------------------------------


async def test_the_default_room_always_exists(service: AccountService) -> None:
    rooms = await service.public_rooms()
    assert [r.slug for r in rooms] == ["default"]
    assert (await service.room("default", None)).is_public


async def test_rooms_create_join_and_privacy(service: AccountService) -> None:
    ann, bob = user("ann"), user("bob")
    room = await service.create_room(
        ann, name="Night Owls", slug=None, description=" late ", is_public=True, client="1.2.3.4"
    )
    assert (room.slug, room.name, room.description) == ("night-owls", "Night Owls", "late")
    with pytest.raises(Conflict):
        await service.create_room(
            bob, name="x", slug="night-owls", description=None, is_public=True, client="c"
        )
    assert [r.slug for r in await service.public_rooms()] == ["default", "night-owls"]
    first = await service.join("night-owls", bob, display_name="Owl", color="#abcdef")
    assert (first.settings.display_name, first.settings.color) == ("Owl", "#abcdef")
    with pytest.raises(Conflict, match="taken in this room"):
        await service.join("night-owls", ann, display_name="owl", color=None)
    again = await service.join("night-owls", bob, display_name="Owl 2", color=None)
    assert again.settings.joined_at == first.settings.joined_at
    await service.join("night-owls", ann, display_name="Owl", color=None)  # freed by Bob

    secret = await service.create_room(
        ann, name="Secret", slug="secret", description=None, is_public=False, client="c"
    )
    assert secret.slug not in [r.slug for r in await service.public_rooms()]
    assert (await service.room("secret", ann)).name == "Secret"
    with pytest.raises(Unauthorized):
        await service.room("secret", None)
    with pytest.raises(Forbidden):
        await service.room("secret", bob)
    with pytest.raises(Forbidden):
        await service.join("secret", bob, display_name=None, color=None)
    with pytest.raises(Forbidden, match="private"):
        await service.socket_user(bob, "browser-b", "secret")
    with pytest.raises(Forbidden, match="private"):
        await service.socket_user(None, "browser-x", "secret")
    assert await service.socket_user(ann, "browser-a", "secret") == "browser-a"
    for reserved in ("public", "mine"):
        with pytest.raises(Invalid, match="the API keeps"):
            await service.create_room(
                bob, name=reserved.title(), slug=None, description=None, is_public=True, client="c"
            )
    with pytest.raises(NotFound):
        await service.room("nowhere", ann)
    with pytest.raises(Invalid, match="room slug"):
        await service.room("Not A Slug", ann)


async def test_a_private_rooms_owner_adds_and_removes_members(service: AccountService) -> None:
    ann, bob, cat = user("ann"), user("bob"), user("cat")
    for who in (ann, bob, cat):
        await service.me(who)
    await service.rename(bob, "Bobby")
    await service.create_room(
        ann, name="Secret", slug="secret", description=None, is_public=False, client="c"
    )
    with pytest.raises(Forbidden, match="only the owner"):
        await service.add_member("secret", bob, "bobby")
    with pytest.raises(NotFound, match="no account is named 'nobody'"):
        await service.add_member("secret", ann, "nobody")
    with pytest.raises(Invalid, match="3-20"):
        await service.add_member("secret", ann, "x")
    with pytest.raises(Invalid, match="public"):
        await service.add_member("default", ann, "bobby")

    member, added = await service.add_member("secret", ann, "BOBBY")  # names ignore case
    assert (member.account_id, member.username, member.is_owner, added) == (
        "bob",
        "Bobby",
        False,
        True,
    )
    assert (await service.add_member("secret", ann, "bobby"))[1] is False
    assert [r.slug for r in await service.my_rooms(bob)] == ["secret"]
    assert [r.slug for r in await service.my_rooms(cat)] == []
    # Bob may now see the room, join it with a name and open a socket in it.
    assert (await service.room("secret", bob)).slug == "secret"
    joined = await service.join("secret", bob, display_name="B", color="#123456")
    assert joined.settings.display_name == "B"
    assert await service.socket_user(bob, "browser-b", "secret") == "browser-b"
    listed = await service.members("secret", bob)
    assert [(m.account_id, m.is_owner, m.settings.display_name) for m in listed] == [
        ("ann", True, None),
        ("bob", False, "B"),
    ]
    with pytest.raises(Forbidden, match="not one of its members"):
        await service.members("secret", cat)

    with pytest.raises(Forbidden, match="only the owner"):
        await service.remove_member("secret", cat, "bobby")
    with pytest.raises(Invalid, match=r"owner .* cannot be removed"):
        await service.remove_member("secret", ann, "ann")
    await service.remove_member("secret", ann, "bobby")
    with pytest.raises(NotFound, match="not a member"):
        await service.remove_member("secret", ann, "bobby")
    with pytest.raises(Forbidden):
        await service.socket_user(bob, "browser-b", "secret")
    # Added again, the display name is free again, and a member may leave on its own.
    await service.add_member("secret", ann, "bobby")
    rejoined = await service.join("secret", bob, display_name="B", color=None)
    assert rejoined.settings.display_name == "B"
    await service.remove_member("secret", bob, "bobby")
    assert [m.account_id for m in await service.members("secret", ann)] == ["ann"]
    assert await service.my_rooms(bob) == []
    assert [r.slug for r in await service.my_rooms(ann)] == ["secret"]


async def test_room_creation_is_limited_per_creator(service: AccountService) -> None:
    for i in range(20):
        await service.create_room(
            user("busy"), name=f"r{i}", slug=None, description=None, is_public=True, client="c"
        )
    with pytest.raises(model.TooMany):
        await service.create_room(
            user("busy"), name="one more", slug=None, description=None, is_public=True, client="c"
        )
