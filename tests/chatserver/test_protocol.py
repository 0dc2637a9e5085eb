import json
import math
import re

import pytest

from chatserver import protocol
from chatserver.protocol import (
    ChatFrame,
    ColorChanged,
    ErrorCode,
    Identity,
    Position,
    ProtocolError,
    UsernameChanged,
)

ME = Identity("alice", "room", claimed_user_id="local-uuid")


def parse(frame: object, limit: int = 100) -> protocol.ClientFrame:
    text = frame if isinstance(frame, str) else json.dumps(frame)
    return protocol.parse_client_frame(text, identity=ME, max_payload_bytes=limit)


def test_chat_frame_of_the_original_client() -> None:
    frame = parse(
        {
            "type": "chat",
            "message_id": "5b0c4a5e-8c4e-4a8b-9a59-1b2f3c4d5e6f",
            "channel_id": "room",
            "user_id": "local-uuid",
            "payload": "héllo",
            "position": {"x": 10.5, "y": -3},
            "timestamp": 123,
        }
    )
    assert frame == ChatFrame("5b0c4a5e-8c4e-4a8b-9a59-1b2f3c4d5e6f", "héllo", Position(10.5, -3.0))


def test_minimal_chat_frame() -> None:
    minimal = parse({"type": "chat"})
    assert isinstance(minimal, ChatFrame)
    assert (minimal.payload, minimal.position) == ("", None)
    # Without a message_id the server assigns one, a new one each time.
    assert re.fullmatch(r"[0-9a-f]{32}", minimal.message_id)
    again = parse({"type": "chat"})
    assert isinstance(again, ChatFrame)
    assert again.message_id != minimal.message_id


def test_presence_changes() -> None:
    assert parse({"type": "username_changed", "username": "  Bob\x07 "}) == UsernameChanged("Bob")
    assert parse({"type": "color_changed", "color": "#e11d48"}) == ColorChanged("#e11d48")


def test_an_empty_username_means_no_display_name() -> None:
    # The original client sends this when its user clears the name field.
    for cleared in ("", "   "):
        assert parse({"type": "username_changed", "username": cleared}) == UsernameChanged(None)
    changed = protocol.presence_frame(
        protocol.FrameType.USERNAME_CHANGED,
        member=protocol.Member("bob", None, "#123456"),
        channel_id="r",
        timestamp_ms=1,
    )
    assert changed == {
        "type": "username_changed",
        "channel_id": "r",
        "timestamp": 1,
        "user_id": "bob",
        "username": "",
    }


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", ErrorCode.INVALID_JSON),
        ('{"type": "chat", "position": {"x": NaN, "y": 1}}', ErrorCode.INVALID_JSON),
        ('{"type": "chat", "position": {"x": Infinity, "y": 1}}', ErrorCode.INVALID_JSON),
        ("[1, 2]", ErrorCode.INVALID_FRAME),
        ('"chat"', ErrorCode.INVALID_FRAME),
        ('{"payload": "x"}', ErrorCode.INVALID_FRAME),
        ('{"type": 7}', ErrorCode.INVALID_FRAME),
        ('{"type": "shout"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": "user_joined"}', ErrorCode.FORBIDDEN_TYPE),
        ('{"type": "user_sync", "users": []}', ErrorCode.FORBIDDEN_TYPE),
        ('{"type": "error"}', ErrorCode.FORBIDDEN_TYPE),
        ('{"type": "chat", "payload": 5}', ErrorCode.INVALID_FRAME),
        ('{"type": "chat", "payload": ["a"]}', ErrorCode.INVALID_FRAME),
        ('{"type": "chat", "message_id": 5}', ErrorCode.INVALID_FRAME),
        ('{"type": "chat", "message_id": "a b"}', ErrorCode.INVALID_FRAME),
        ('{"type": "chat", "message_id": ""}', ErrorCode.INVALID_FRAME),
        ('{"type": "chat", "position": [1, 2]}', ErrorCode.INVALID_POSITION),
        ('{"type": "chat", "position": {"x": "1", "y": 2}}', ErrorCode.INVALID_POSITION),
        ('{"type": "chat", "position": {"x": true, "y": 2}}', ErrorCode.INVALID_POSITION),
        ('{"type": "chat", "position": {"x": 1}}', ErrorCode.INVALID_POSITION),
        ('{"type": "chat", "position": {"x": 1e300, "y": 2}}', ErrorCode.INVALID_POSITION),
        ('{"type": "chat", "position": {"x": -10000001, "y": 2}}', ErrorCode.INVALID_POSITION),
        ('{"type": "chat", "user_id": "mallory"}', ErrorCode.SPOOFED_IDENTITY),
        ('{"type": "chat", "user_id": 5}', ErrorCode.SPOOFED_IDENTITY),
        ('{"type": "chat", "channel_id": "other"}', ErrorCode.WRONG_CHANNEL),
        ('{"type": "username_changed", "username": "\\u200b"}', ErrorCode.INVALID_FRAME),
        ('{"type": "username_changed", "username": 3}', ErrorCode.INVALID_FRAME),
        ('{"type": "username_changed", "username": "' + "x" * 65 + '"}', ErrorCode.INVALID_FRAME),
        ('{"type": "color_changed", "color": "red; background: url(x)"}', ErrorCode.INVALID_FRAME),
        ('{"type": "color_changed"}', ErrorCode.INVALID_FRAME),
    ],
)
def test_bad_frames_are_refused_with_a_stable_code(raw: str, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as info:
        parse(raw)
    assert info.value.code == code
    assert info.value.message


def test_payload_limit_counts_utf8_bytes() -> None:
    frame = {"type": "chat", "message_id": "m1", "payload": "é" * 50}
    assert parse(frame, limit=100) == ChatFrame("m1", "é" * 50, None)
    with pytest.raises(ProtocolError) as info:
        parse({"type": "chat", "message_id": "m1", "payload": "é" * 51}, limit=100)
    assert info.value.code == ErrorCode.PAYLOAD_TOO_LARGE
    assert info.value.message_id == "m1"
    assert "102 bytes" in info.value.message


def test_lone_surrogates_do_not_crash() -> None:
    with pytest.raises(ProtocolError):
        parse('{"type": "chat", "payload": "\\ud800"}')


def test_server_frames_are_stamped_and_carry_only_known_fields() -> None:
    out = protocol.chat_frame(
        ChatFrame("m", "hi", Position(1, 2)), identity=ME, message_id="m", timestamp_ms=5
    )
    assert out == {
        "type": "chat",
        "message_id": "m",
        "channel_id": "room",
        "user_id": "alice",
        "payload": "hi",
        "timestamp": 5,
        "position": {"x": 1.0, "y": 2.0},
    }
    assert all(math.isfinite(v) for v in out["position"].values())


def test_presence_frames() -> None:
    member = protocol.Member("bob", "Bob", "#123456")
    joined = protocol.presence_frame(
        protocol.FrameType.USER_JOINED, member=member, channel_id="r", timestamp_ms=1
    )
    assert joined == {
        "type": "user_joined",
        "channel_id": "r",
        "timestamp": 1,
        "user_id": "bob",
        "username": "Bob",
        "color": "#123456",
    }
    left = protocol.presence_frame(
        protocol.FrameType.USER_LEFT, member=member, channel_id="r", timestamp_ms=1
    )
    assert left == {"type": "user_left", "channel_id": "r", "timestamp": 1, "user_id": "bob"}
    sync = protocol.user_sync_frame(
        [member], channel_id="r", user_id="bob", timestamp_ms=2, epoch="e1"
    )
    assert sync["users"] == [{"user_id": "bob", "username": "Bob", "color": "#123456"}]
    assert sync["epoch"] == "e1"


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("default", True),
        ("room-1.a:b_c", True),
        ("", False),
        ("a b", False),
        ("x" * 65, False),
        ("é", False),
    ],
)
def test_channel_names(name: str, ok: bool) -> None:
    assert protocol.valid_channel(name) is ok


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Ann", "Ann"),
        ("ad\u202emin", "admin"),  # right-to-left override
        ("b\u200bo\u200db", "bob"),  # zero-width space and joiner
        ("\u2066x\u2069", "x"),  # bidi isolates
        ("tab\tand\nnew\x07line", "tab and newline"),
        ("  lots   of   space ", "lots of space"),
        ("e\u0301", "\u00e9"),  # NFC
        ("\u200b\u202e", None),  # nothing visible left
    ],
)
def test_clean_username_strips_invisible_characters(raw: str, clean: str | None) -> None:
    assert protocol.clean_username(raw) == clean


def test_peek_message_id_reads_only_a_valid_id() -> None:
    assert protocol.peek_message_id('{"type":"chat","message_id":"m-1"}') == "m-1"
    assert protocol.peek_message_id('{"message_id":"bad id!"}') is None
    assert protocol.peek_message_id("not json") is None
    assert protocol.peek_message_id('["message_id"]') is None
