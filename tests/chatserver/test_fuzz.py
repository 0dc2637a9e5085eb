"""Fuzz one live chat server with hypothesis-generated frames over a real socket.

A fuzzer client sends generated frames (valid-ish chat, wrong types, non-finite and
absurd numbers as raw JSON text, random unicode, random JSON, non-JSON, binary, oversized
payloads) and an observer in the same room checks that only well-formed frames ever
reach other users. After each example a sentinel (a ``username_changed`` both clients
see) fences it, so every frame is accounted for: it either reached the observer or was
answered with an ``error`` frame, never both and never neither.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
import time
import urllib.request
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.fixtures.processes import ChatProcess

# On a failure hypothesis's pytest plugin imports its patch writer, whose libcst import
# trips a third-party DeprecationWarning that filterwarnings=error turns into an
# INTERNALERROR hiding the falsifying example. Import it once here, warning silenced.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    with contextlib.suppress(ImportError):
        import hypothesis.extra._patching  # noqa: F401

ROOM = "fuzzroom"
FUZZER = "fuzzer-1"
OBSERVER = "observer-1"
MAX_PAYLOAD = 4096
TRANSPORT_LIMIT = MAX_PAYLOAD * 6 + 1024

# What the protocol promises others see (PROTOCOL.md), written independently of the
# server's own validators.
MESSAGE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
INPUT_ERRORS = frozenset(
    {
        "invalid_json",
        "invalid_frame",
        "unknown_type",
        "forbidden_type",
        "payload_too_large",
        "invalid_position",
        "spoofed_identity",
        "wrong_channel",
        "binary_not_supported",
    }
)

# --- the live server and its two clients ---------------------------------------------


class Reader:
    """Collects every frame a sync connection receives, on a thread of its own."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.frames: list[Any] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for raw in self.conn:
                frame = json.loads(raw)
                with self.lock:
                    self.frames.append(frame)
        except ConnectionClosed:
            pass

    def count(self) -> int:
        with self.lock:
            return len(self.frames)

    def since(self, start: int) -> list[Any]:
        with self.lock:
            return list(self.frames[start:])

    def wait_for(self, predicate: Any, start: int, *, timeout: float, what: str) -> int:
        """Index (absolute) of the first frame from ``start`` matching ``predicate``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for offset, frame in enumerate(self.since(start)):
                if predicate(frame):
                    return start + offset
            if not self.thread.is_alive():
                raise AssertionError(f"connection closed while waiting for {what}")
            time.sleep(0.002)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Rig:
    def __init__(self, server: ChatProcess, fuzzer: ClientConnection, observer: Reader) -> None:
        self.server = server
        self.fuzzer = fuzzer
        self.fuzzer_reader = Reader(fuzzer)
        self.observer = observer
        self.sentinels = 0
        self.observer_start = 0


def _connect(stack: contextlib.ExitStack, server: ChatProcess, uid: str) -> ClientConnection:
    return stack.enter_context(
        connect(
            server.ws(f"uid={uid}&channel={ROOM}"),
            open_timeout=10,
            max_size=None,
            compression=None,
            proxy=None,
            ping_interval=None,  # keepalive pings draw from `random` mid-generation
        )
    )


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    server = ChatProcess(
        tmp_path_factory.mktemp("fuzz"),
        {
            "ASOCIAL_ABUSE_THRESHOLD": "1000000000",
            "ASOCIAL_FRAMES_PER_SECOND": "1000000",
            "ASOCIAL_RATE_LIMIT_PER_MINUTE": "1000000000",
            "ASOCIAL_MAX_MESSAGE_SIZE": str(MAX_PAYLOAD),
            "ASOCIAL_SEND_QUEUE_SIZE": "4096",
        },
        "fuzz",
    )
    try:
        with contextlib.ExitStack() as stack:
            observer = Reader(_connect(stack, server, OBSERVER))
            observer.wait_for(lambda f: f.get("type") == "user_sync", 0, timeout=10, what="sync")
            rig = Rig(server, _connect(stack, server, FUZZER), observer)
            joined = observer.wait_for(
                lambda f: f.get("type") == "user_joined" and f.get("user_id") == FUZZER,
                0,
                timeout=10,
                what="the fuzzer's user_joined",
            )
            rig.fuzzer_reader.wait_for(
                lambda f: f.get("type") == "user_sync", 0, timeout=10, what="the fuzzer's sync"
            )
            rig.observer_start = joined + 1
            yield rig
        for reader in (observer, rig.fuzzer_reader):
            reader.thread.join(timeout=10)
    finally:
        alive = server.proc.poll() is None
        logs = server.logs()
        server.stop()
    assert alive, f"the fuzzed server died:\n{logs}"


# --- strategies ----------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
# Strings the server's own patterns should accept, plus whatever surrounds them.
ids = (
    st.from_regex(r"^[A-Za-z0-9_.:-]{1,128}$")
    | st.from_regex(r"[A-Za-z0-9_.:-]{1,16}")
    | st.text(max_size=20)
    | json_values
)
numbers = (
    st.floats(min_value=-1e7, max_value=1e7)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(10**8), max_value=10**8)
    | st.integers()
    | json_values
)
positions = st.fixed_dictionaries({"x": numbers, "y": numbers}) | json_values
payloads = (
    st.text(max_size=200)
    | st.integers(MAX_PAYLOAD - 4, MAX_PAYLOAD + 4).map(lambda n: "a" * n)
    | st.integers(MAX_PAYLOAD // 2 - 2, MAX_PAYLOAD // 2 + 2).map(lambda n: "é" * n)
    | st.integers(MAX_PAYLOAD + 1, 3 * MAX_PAYLOAD).map(lambda n: "€" * (n // 3))
    | json_values
)
identities = st.sampled_from([None, "", FUZZER, OBSERVER, "someone-else"]) | json_values
channels = st.sampled_from([None, "", ROOM, "elsewhere", ROOM + "\n"]) | json_values
types = st.sampled_from(
    [
        "chat",
        "chat",
        "chat",
        "username_changed",
        "color_changed",
        "user_sync",
        "user_joined",
        "user_left",
        "error",
        "CHAT",
        "",
    ]
) | st.text(max_size=10)

client_frames = st.fixed_dictionaries(
    {"type": types},
    optional={
        "message_id": ids,
        "payload": payloads,
        "position": positions,
        "user_id": identities,
        "channel_id": channels,
        "username": st.text(max_size=80) | json_values,
        "color": st.from_regex(COLOR.pattern) | st.from_regex(r"^#[0-9a-f]{6}$") | json_values,
        "timestamp": json_values,
        "users": json_values,
        "extra": json_values,
    },
)
RAW_NUMBERS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e999",
    "1e7",
    "-10000000",
    "10000000.000001",
    "1E+7",
    "-0.0",
    "0.1e-400",
    "123456789012345678901234567890",
    "9" * 400,
    "0x10",
    "+1",
    ".5",
    "01",
]


@st.composite
def raw_position_frames(draw: st.DrawFn) -> str:
    x = draw(st.sampled_from(RAW_NUMBERS))
    y = draw(st.sampled_from(RAW_NUMBERS) | st.just("0"))
    return f'{{"type":"chat","payload":"p","position":{{"x":{x},"y":{y}}}}}'


def dumps(frame: Any, ensure_ascii: bool) -> str:
    return json.dumps(frame, ensure_ascii=ensure_ascii)


frames_out = st.one_of(
    st.builds(dumps, client_frames, st.booleans()),
    st.builds(dumps, json_values, st.booleans()),
    raw_position_frames(),
    st.text(max_size=100),
    st.sampled_from(['{"type":"chat","payload":"\\ud800"}', '{"type":"chat"', "", "[]", "null"]),
    st.binary(max_size=64),
).filter(lambda f: len(f.encode() if isinstance(f, str) else f) < TRANSPORT_LIMIT)


# --- checks --------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_observed(frame: Any) -> None:
    """What the observer may see: well-formed frames the fuzzer caused, nothing else."""
    assert isinstance(frame, dict), f"not a JSON object: {frame!r}"
    kind = frame.get("type")
    assert frame.get("channel_id") == ROOM, f"wrong channel_id: {frame!r}"
    assert frame.get("user_id") == FUZZER, f"wrong user_id: {frame!r}"
    assert isinstance(frame.get("timestamp"), int), f"bad timestamp: {frame!r}"
    assert not isinstance(frame["timestamp"], bool), frame
    base = {"type", "channel_id", "user_id", "timestamp"}
    if kind == "chat":
        assert set(frame) in (
            {*base, "message_id", "payload", "offset"},
            {*base, "message_id", "payload", "position", "offset"},
        ), f"unexpected chat fields: {frame!r}"
        assert isinstance(frame["offset"], int), frame
        assert not isinstance(frame["offset"], bool), frame
        message_id = frame["message_id"]
        assert isinstance(message_id, str), frame
        assert MESSAGE_ID.fullmatch(message_id), (
            f"chat relayed with a message_id outside [A-Za-z0-9_.:-]{{1,128}}: {message_id!r}"
        )
        payload = frame["payload"]
        assert isinstance(payload, str), frame
        assert len(payload.encode()) <= MAX_PAYLOAD, f"payload over the limit: {len(payload)}"
        if "position" in frame:
            position = frame["position"]
            assert isinstance(position, dict), frame
            assert set(position) == {"x", "y"}, frame
            for v in position.values():
                assert _is_number(v), frame
                assert math.isfinite(v), frame
                assert abs(v) <= 1e7, frame
    elif kind == "username_changed":
        assert set(frame) == {*base, "username"}, frame
        name = frame["username"]
        assert isinstance(name, str), frame
        assert 0 < len(name) <= 64, frame
        assert not CONTROL.search(name), frame
        assert name == name.strip(), frame
    elif kind == "color_changed":
        assert set(frame) == {*base, "color"}, frame
        color = frame["color"]
        assert isinstance(color, str), frame
        assert COLOR.fullmatch(color), f"color relayed that is not a hex colour: {color!r}"
    else:
        raise AssertionError(f"the observer got a frame it should never see: {frame!r}")


def check_answer(frame: Any) -> None:
    """What the fuzzer may get back: errors with known codes, echoes of its own changes."""
    assert isinstance(frame, dict), frame
    kind = frame.get("type")
    if kind == "error":
        assert set(frame) <= {"type", "code", "message", "message_id"}, frame
        assert frame["code"] in INPUT_ERRORS, f"unexpected error code: {frame!r}"
        assert isinstance(frame["message"], str), frame
        assert frame["message"], frame
    else:
        assert kind in {"username_changed", "color_changed"}, f"unexpected frame: {frame!r}"
        check_observed(frame)


def health(server: ChatProcess) -> int:
    with urllib.request.urlopen(server.http("/health"), timeout=5) as response:
        return int(response.status)


# --- the test --------------------------------------------------------------------------


@settings(
    max_examples=400,
    deadline=None,
    database=None,
    derandomize=True,  # the same thousands of frames every run: a failure is never luck
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(frames=st.lists(frames_out, min_size=1, max_size=15))
def test_fuzzed_frames_never_reach_others_malformed(rig: Rig, frames: list[str | bytes]) -> None:
    exchange(rig, frames)


EDGE_FRAMES = {
    "message-id-trailing-newline": '{"type":"chat","message_id":"m1\\n","payload":"x"}',
    "color-trailing-newline": '{"type":"color_changed","color":"#fff\\n"}',
    "channel-id-trailing-newline": '{"type":"chat","channel_id":"fuzzroom\\n","payload":"x"}',
    "nan-position": '{"type":"chat","payload":"x","position":{"x":NaN,"y":0}}',
    "infinite-position": '{"type":"chat","payload":"x","position":{"x":1e400,"y":0}}',
    "huge-integer-position": '{"type":"chat","payload":"x","position":{"x":1'
    + "0" * 30
    + ',"y":0}}',
    "boolean-position": '{"type":"chat","payload":"x","position":{"x":true,"y":0}}',
    "position-at-the-bound": '{"type":"chat","payload":"x","position":{"x":1e7,"y":-1e7}}',
    "lone-surrogate": '{"type":"chat","payload":"\\ud800"}',
    "two-byte-payload-over-limit": json.dumps(
        {"type": "chat", "payload": "é" * (MAX_PAYLOAD // 2 + 1)}
    ),
    "payload-at-the-limit": json.dumps({"type": "chat", "payload": "é" * (MAX_PAYLOAD // 2)}),
    "spoofed-user": json.dumps({"type": "chat", "user_id": OBSERVER, "payload": "x"}),
    "server-only-type": json.dumps({"type": "user_sync", "users": []}),
    "username-control-chars": json.dumps({"type": "username_changed", "username": "\u0000\u001b"}),
    "binary": b"\x00binary",
}


@pytest.mark.parametrize("frame", list(EDGE_FRAMES.values()), ids=list(EDGE_FRAMES))
def test_edge_frames(rig: Rig, frame: str | bytes) -> None:
    exchange(rig, [frame])


def exchange(rig: Rig, frames: list[str | bytes]) -> None:
    """Send ``frames`` and a sentinel; check every outcome up to the sentinel."""
    observer, answers = rig.observer, rig.fuzzer_reader
    seen_from, answered_from = observer.count(), answers.count()
    for frame in frames:
        rig.fuzzer.send(frame)
    rig.sentinels += 1
    sentinel = f"sentinel {rig.sentinels}"
    rig.fuzzer.send(json.dumps({"type": "username_changed", "username": sentinel}))

    def is_sentinel(f: Any) -> bool:
        return (
            isinstance(f, dict)
            and f.get("type") == "username_changed"
            and (f.get("username") == sentinel)
        )

    seen_end = observer.wait_for(is_sentinel, seen_from, timeout=10, what=sentinel)
    answered_end = answers.wait_for(is_sentinel, answered_from, timeout=10, what=sentinel)
    seen = observer.since(seen_from)[: seen_end - seen_from]
    answered = answers.since(answered_from)[: answered_end - answered_from]

    for frame in seen:
        check_observed(frame)
    for frame in answered:
        check_answer(frame)
    errors = [f for f in answered if f["type"] == "error"]
    assert len(seen) + len(errors) == len(frames), (
        f"{len(frames)} frames sent, {len(seen)} relayed, {len(errors)} answered with an "
        "error: every frame must have exactly one outcome"
    )
    assert rig.server.proc.poll() is None, "the server process died"


def test_server_survived_the_fuzzing(rig: Rig) -> None:
    assert rig.server.proc.poll() is None, f"the server process died:\n{rig.server.logs()}"
    assert health(rig.server) == 200
    log = rig.server.logs()
    assert "Traceback" not in log, f"the server logged an exception while fuzzed:\n{log[-4000:]}"
