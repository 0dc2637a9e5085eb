"""Faults on real pods, each with its recovery time measured: the Redis pod deleted (with
and without Sentinel, with persistence), a backend pod deleted under typing users, and the
leading operator pod killed while a change is being made."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import jwt
import pytest

from tests.e2e.conftest import (
    OPERATOR_NS,
    Report,
    Stack,
    get_json,
    http_get,
    redis_at,
    wait_for,
)
from tests.e2e.spy import ChannelSpy
from tests.fixtures.users import Numbered, Typist, Watcher, in_the_room, typing_users

pytestmark = [pytest.mark.devcluster, pytest.mark.e2e]


def room() -> str:
    return "e2e-" + uuid.uuid4().hex[:8]


def ws_to(base: str) -> Callable[[str], str]:
    return lambda query: base.replace("http://", "ws://") + "/api/chat?" + query


def largest_gap(times: list[float]) -> float:
    times = sorted(times)
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


async def poll_ready_endpoints(urls: list[str], until: Callable[[], bool]) -> dict[str, float]:
    """Seconds each backend's /ready answered 503 while ``until()`` is false."""
    unready: dict[str, float] = dict.fromkeys(urls, 0.0)
    while not until():
        for url in urls:
            code, _ = await asyncio.to_thread(http_get, url + "/ready", 1.0)
            if code != 200:
                unready[url] += 0.2
        await asyncio.sleep(0.2)
    return unready


@contextlib.asynccontextmanager
async def accounted_traffic(stack: Stack) -> AsyncIterator[tuple[Numbered, Watcher]]:
    """A writer on one backend pod and a watcher on another, already chatting; on a
    clean exit the writer stops and every frame it sent must be accounted for
    (delivered or refused) within 10 s."""
    a, b, _ = stack.backend_urls()
    channel = room()
    spy = ChannelSpy(stack, channel, stack.secret_value("chat-redis-auth", "redis-password"))
    spy.__enter__()
    # Frames sent before the watcher is in the room would reach nobody, rightly.
    try:
        watcher = await in_the_room(ws_to(b), channel)
    except BaseException:
        spy.__exit__()
        raise
    writer: Numbered | None = None
    try:
        writer = Numbered(ws_to(a), channel, "writer", rate=10)
        await asyncio.to_thread(
            wait_for, lambda: len(writer.delivered(watcher)) > 10, "traffic", 20
        )
        yield writer, watcher
        await writer.pause()  # it keeps reading: a refusal may still be on its way
        try:
            await asyncio.to_thread(
                wait_for, lambda: not writer.unaccounted(watcher), "every frame accounted", 10
            )
        except AssertionError:
            lost = sorted(writer.unaccounted(watcher))
            raise AssertionError(
                f"{len(lost)} of {len(writer.sent)} frames neither delivered nor refused: "
                f"{lost[:30]}; writer closes {writer.connection.close_codes} "
                f"(reconnects {writer.connection.reconnects}), watcher closes "
                f"{watcher.connection.close_codes} (reconnects {watcher.connection.reconnects})"
                f"\nwriter's pod {a}, watcher's pod {b}; where the Redis pods passed them on:\n"
                + spy.report(lost[:10])
                + "\nwhat the backends logged:\n"
                + broker_logs(stack)
            ) from None
        assert not writer.other_errors, writer.other_errors[:3]
    finally:
        if writer is not None:
            await writer.stop()
        await watcher.stop()
        spy.__exit__()


def broker_logs(stack: Stack) -> str:
    """The Redis-related lines each backend pod logged (to tell which server its
    subscriber and its commands were on when frames went missing)."""
    out = []
    for pod in stack.pods("backend", ready_only=False):
        name = pod["metadata"]["name"]
        read = stack.kubectl("logs", name, "-n", stack.namespace, "--tail=400", check=False)
        text = read.stdout or f"(no logs: {read.stderr.strip()})"
        lines = [
            line
            for line in text.splitlines()
            if any(
                word in line
                for word in ("redis", "recover", "missed", "published again", "dropped")
            )
        ]
        out.append(f"--- {name} ({pod['status'].get('podIP')})\n" + "\n".join(lines[-40:]))
    return "\n".join(out)


def frames_and_gap(writer: Numbered, watcher: Watcher) -> tuple[str, float]:
    """What happened to the writer's frames, and the longest pause between deliveries."""
    counts = (
        f"{len(writer.sent)} sent, {len(writer.delivered(watcher))} delivered, "
        f"{len(writer.refused)} refused (unavailable), "
        f"{len(writer.unaccounted(watcher))} lost"
    )
    gap = largest_gap([t for (u, _), t in watcher.seen_at.items() if u == writer.uid])
    return counts, round(gap, 1)


def restarts(stack: Stack, component: str) -> int:
    return sum(
        c.get("restartCount", 0)
        for p in stack.pods(component, ready_only=False)
        for c in p["status"].get("containerStatuses", [])
    )


async def test_deleting_the_redis_pod_loses_nothing_silently(
    stack_factory: Callable[[str], Stack], report: Report
) -> None:
    stack = stack_factory("chat")
    stack.apply({"backend": {"rateLimitPerMinute": 100000}})
    stack.wait_ready()
    async with accounted_traffic(stack) as (writer, watcher):
        deleted = time.monotonic()
        stack.kubectl("delete", "pod", "chat-redis-0", "-n", stack.namespace, "--wait=false")
        recovered: list[float] = []

        def all_ready_again() -> bool:
            if time.monotonic() - deleted < 2:
                return False
            codes = [http_get(u + "/ready", 1.0)[0] for u in stack.backend_urls()]
            ok = len(codes) == 3 and all(c == 200 for c in codes) and bool(writer.refused)
            if ok and not recovered:
                recovered.append(time.monotonic() - deleted)
            return ok

        done = asyncio.Event()
        polling = asyncio.create_task(poll_ready_endpoints(stack.backend_urls(), done.is_set))
        await asyncio.to_thread(wait_for, all_ready_again, "backends ready after Redis", 90)
        await asyncio.sleep(3)  # typing goes on after the recovery
        done.set()
        unready = await polling
    assert writer.refused, "no frame was refused: did the outage happen?"
    assert restarts(stack, "backend") == 0, "a backend restarted (crash loop?)"
    stack.wait_ready()
    counts, gap = frames_and_gap(writer, watcher)
    report.record("redis_pod_deleted_backends_ready_again_seconds", round(recovered[0], 1))
    report.record("redis_pod_deleted_backend_unready_seconds", round(max(unready.values()), 1))
    report.record("redis_pod_deleted_frames", counts)
    report.record("redis_pod_deleted_chat_gap_seconds", gap)


async def test_sentinel_fails_over_when_the_master_pod_is_killed_or_deleted(
    stack_factory: Callable[[str], Stack], report: Report
) -> None:
    """Killed (no preStop): the sentinels promote a replica and the pod, back within
    seconds, joins as a replica instead of reclaiming mastership with no data. Deleted
    (graceful): its preStop hands mastership over before it stops."""
    stack = stack_factory("chat")
    # DEBUG: the backends log each recovery read and each frame they drop, for the
    # failure message should a frame go missing.
    backend = {"rateLimitPerMinute": 100000, "logLevel": "DEBUG"}
    stack.apply({"redis": {"replicas": 3}, "backend": backend})
    stack.wait_ready(timeout=300)
    password = stack.secret_value("chat-redis-auth", "redis-password")

    def master() -> str:
        # Every sentinel is asked: one that has not yet heard of a switch (they learn of
        # it up to seconds apart; a restarted pod's sentinel starts from what it was told)
        # would name a master of the past.
        named = set()
        for pod in stack.pods("redis"):
            found = redis_at(pod["status"]["podIP"], 26379).sentinel_get_master_addr_by_name(
                "mymaster"
            )
            assert isinstance(found, tuple), "a sentinel names no master"
            named.add(found[0])
        assert len(named) == 1, f"the sentinels disagree: {sorted(named)}"
        host = named.pop()
        assert isinstance(host, str)
        assert host.startswith("chat-redis-"), host
        return host

    def roles() -> dict[str, str]:
        out = {}
        for pod in stack.pods("redis"):
            role = redis_at(pod["status"]["podIP"], password=password).execute_command("ROLE")
            out[pod["metadata"]["name"]] = "master" if role[0] == "master" else "replica"
        return out

    def settled_roles() -> dict[str, str] | None:
        # Right after the pods are Ready the sentinels may still be reconfiguring them
        # (one CI run read three replicas at that moment): wait for the settled state.
        found = roles()
        return found if sorted(found.values()) == ["master", "replica", "replica"] else None

    async with accounted_traffic(stack) as (writer, watcher):
        for how, flags in (("killed", ["--grace-period=0", "--force"]), ("deleted", [])):
            old_master = await asyncio.to_thread(
                wait_for, lambda: master().split(".")[0], "the sentinels to agree", 30
            )
            started = time.monotonic()
            stack.kubectl(
                "delete", "pod", old_master, "-n", stack.namespace, "--wait=false", *flags
            )
            new_master = await asyncio.to_thread(
                wait_for,
                lambda old=old_master: (m := master().split(".")[0]) != old and m,
                f"a new master after the master was {how}",
                90,
            )
            promoted = time.monotonic() - started
            sent_after = len(writer.sent)
            await asyncio.to_thread(
                wait_for,
                lambda n0=sent_after: any(n > n0 for n in writer.delivered(watcher)),
                f"chat after the master was {how}",
                60,
            )
            resumed = time.monotonic() - started
            report.record(f"sentinel_master_{how}_new_master_seconds", round(promoted, 1))
            report.record(f"sentinel_master_{how}_chat_resumed_seconds", round(resumed, 1))
            await asyncio.to_thread(stack.wait_ready, 180)
            found = await asyncio.to_thread(
                wait_for, settled_roles, "one master and two replicas among the Redis pods", 60
            )
            assert found[new_master] == "master", (new_master, found)
            assert found[old_master] == "replica", (old_master, found)
    counts, gap = frames_and_gap(writer, watcher)
    report.record("sentinel_failovers_frames", counts)
    report.record("sentinel_failovers_longest_chat_gap_seconds", gap)


def test_persistent_redis_keeps_accounts_across_a_pod_restart(
    stack_factory: Callable[[str], Stack], report: Report
) -> None:
    """An instance with sign-in keeps accounts: Redis logs every write (AOF) on its claim,
    status says so, and an account made through the API is there after the pod is
    deleted."""
    stack = stack_factory("chat")
    secret = "e2e-jwt-secret-" + uuid.uuid4().hex
    stack.kubectl(
        "create",
        "secret",
        "generic",
        "jwt",
        f"--from-literal=secret={secret}",
        "-n",
        stack.namespace,
    )
    stack.apply(
        {
            "redis": {"persistence": {"enabled": True, "size": "1Gi"}},
            "auth": {"mode": "jwt", "jwt": {"secretRef": {"name": "jwt", "key": "secret"}}},
        }
    )
    stack.wait_ready()
    assert stack.status()["redis"]["persistence"] == (
        "accounts kept: append-only file on a PersistentVolumeClaim per pod"
    )
    password = stack.secret_value("chat-redis-auth", "redis-password")
    ip = stack.pods("redis")[0]["status"]["podIP"]
    assert redis_at(ip, password=password).config_get("appendonly") == {"appendonly": "yes"}

    api = f"http://{stack.service_ip('chat-backend')}:8080"
    claims = {"sub": "e2e-keeper", "exp": int(time.time()) + 900, "iat": int(time.time())}
    auth = {"Authorization": f"Bearer {jwt.encode(claims, secret, algorithm='HS256')}"}

    def rename() -> httpx.Response | None:
        # The Service may still be wiring up the new pods' endpoints: retry until it answers.
        try:
            answer = httpx.patch(
                f"{api}/api/auth/username", json={"username": "kept_e2e"}, headers=auth, timeout=5
            )
        except httpx.HTTPError:
            return None
        assert answer.status_code in (200, 503), answer.text
        return answer if answer.status_code == 200 else None

    renamed = wait_for(rename, "a rename through the backend Service", 60)
    old_uid = stack.pods("redis")[0]["metadata"]["uid"]
    deleted = time.monotonic()
    stack.kubectl("delete", "pod", "chat-redis-0", "-n", stack.namespace)

    def new_redis_ip() -> str | None:
        pods = stack.pods("redis")
        return (
            pods[0]["status"]["podIP"] if pods and pods[0]["metadata"]["uid"] != old_uid else None
        )

    wait_for(new_redis_ip, "the Redis pod back", 120)
    report.record("redis_persistent_pod_restart_seconds", round(time.monotonic() - deleted, 1))

    def account() -> dict[str, str] | None:
        try:
            answer = httpx.get(f"{api}/api/auth/me", headers=auth, timeout=5)
        except httpx.HTTPError:
            return None
        return answer.json() if answer.status_code == 200 else None

    assert wait_for(account, "the account through the API again", 60) == renamed.json()
    pvcs = get_json(stack.kubectl, "pvc", "-n", stack.namespace)["items"]
    assert [c["status"]["phase"] for c in pvcs] == ["Bound"]


async def test_a_backend_pod_deleted_under_typing_users_loses_no_keystroke(
    stack_factory: Callable[[str], Stack], report: Report
) -> None:
    stack = stack_factory("chat")
    stack.apply()
    stack.wait_ready()
    pods = stack.pods("backend")
    victim, other = pods[0], pods[1]
    victim_url = f"http://{victim['status']['podIP']}:8080"
    service = f"http://{stack.service_ip('chat-backend')}:8080"
    first = {"used": 0}

    def victim_then_service(query: str) -> str:
        # The first connection lands on the victim; reconnects go through the Service.
        first["used"] += 1
        return ws_to(victim_url if first["used"] <= 2 else service)(query)

    channel = room()
    watcher = Watcher(ws_to(f"http://{other['status']['podIP']}:8080"), channel)
    typists = [Typist(victim_then_service, channel, f"t{i}", rate=10) for i in range(2)]
    async with typing_users(typists, [watcher], messages=8) as users:
        stack.kubectl(
            "delete", "pod", victim["metadata"]["name"], "-n", stack.namespace, "--wait=false"
        )
    lost = users.lost(watcher)
    assert 1001 in users.close_codes, users.close_codes
    report.record("backend_pod_deleted_keystrokes", f"{users.typed} typed, {lost} lost")
    assert lost == 0


def test_a_change_made_while_the_leader_is_killed_converges_under_the_standby(
    stack_factory: Callable[[str], Stack], report: Report
) -> None:
    stack = stack_factory("chat")
    stack.apply({"autoscaling": {"enabled": False}, "backend": {"replicas": 2}})
    stack.wait_ready()
    kubectl = stack.kubectl

    def holder() -> str:
        spec = get_json(kubectl, "lease", "asocial-operator", "-n", OPERATOR_NS)["spec"]
        return str(spec.get("holderIdentity") or "")

    leader = holder()
    leader_pod = next(
        p["metadata"]["name"]
        for p in get_json(
            kubectl, "pods", "-n", OPERATOR_NS, "-l", "app.kubernetes.io/name=asocial-operator"
        )["items"]
        if leader.startswith(p["metadata"]["name"])
    )
    # SIGKILL-like (no Lease release), then a change while nobody leads: the standby must
    # take the Lease after it expires and roll the backend to the new configuration.
    killed = time.monotonic()
    kubectl("delete", "pod", leader_pod, "-n", OPERATOR_NS, "--grace-period=0", "--force")
    stack.apply(
        {"autoscaling": {"enabled": False}, "backend": {"replicas": 2, "logLevel": "DEBUG"}}
    )
    wait_for(lambda: holder() not in ("", leader), "another leader", 90)
    takeover = time.monotonic() - killed
    stack.wait_ready(timeout=180)
    converged = time.monotonic() - killed
    config = get_json(kubectl, "configmap", "chat-config", "-n", stack.namespace)["data"]
    assert config["ASOCIAL_LOG_LEVEL"] == "DEBUG"
    deployment = get_json(kubectl, "deploy", "chat-backend", "-n", stack.namespace)
    assert deployment["status"].get("updatedReplicas") == 2
    report.record("operator_leader_killed_takeover_seconds", round(takeover, 1))
    report.record("operator_leader_killed_converged_seconds", round(converged, 1))
    kubectl("rollout", "status", "deploy/asocial-operator", "-n", OPERATOR_NS, "--timeout=120s")
