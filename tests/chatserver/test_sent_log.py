"""The log of recently published chat frames the broker publishes again after a move."""

from chatserver.broker.sent_log import Sent, SentLog


def sent(at: float, message_id: str, text: str, channel: str = "room") -> Sent:
    return Sent(at, channel, "a", message_id, text.encode(), int(at * 1000), keep_ms=5000)


def test_only_the_newest_frame_of_each_message_is_kept() -> None:
    log = SentLog(keep_s=1.0)
    log.add(sent(10.0, "m1", "h"))
    log.add(sent(10.1, "m2", "x"))
    newest = sent(10.2, "m1", "hi")
    log.add(newest)
    assert [(s.message_id, s.data) for s in log.since(0)] == [("m2", b"x"), ("m1", b"hi")]
    assert log.is_newest(newest)
    assert not log.is_newest(sent(10.0, "m1", "h"))


def test_frames_older_than_the_window_are_dropped_and_since_filters_by_time() -> None:
    log = SentLog(keep_s=1.0)
    log.add(sent(10.0, "old", "a"))
    log.add(sent(10.6, "mid", "b"))
    log.add(sent(11.5, "new", "c"))
    assert [s.message_id for s in log.since(0)] == ["mid", "new"]
    assert [s.message_id for s in log.since(11.0)] == ["new"]


def test_the_same_key_in_two_channels_is_two_messages_and_the_cap_holds() -> None:
    log = SentLog(keep_s=10.0, cap=3)
    log.add(sent(1.0, "m", "a", channel="one"))
    log.add(sent(1.1, "m", "b", channel="two"))
    assert len(log) == 2
    for i in range(5):
        log.add(sent(2.0 + i / 10, f"k{i}", "z"))
    assert len(log) == 3
    assert [s.message_id for s in log.since(0)] == ["k2", "k3", "k4"]
