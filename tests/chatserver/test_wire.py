"""Prepared frames must be byte-for-byte what websockets itself would send."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from chatserver import wire


def reference(payload: bytes) -> bytes:
    return Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_text_frame_matches_websockets_at_every_length_boundary(size: int) -> None:
    payload = b"x" * size
    assert wire.text_frame(payload) == reference(payload)


@given(st.text(max_size=300))
def test_text_frame_matches_websockets_for_any_text(text: str) -> None:
    payload = text.encode()
    assert wire.text_frame(payload) == reference(payload)


def test_writer_for_reads_the_scope_extension() -> None:
    def writer(frame: bytes) -> bool:
        return True

    assert wire.writer_for({"extensions": {wire.EXTENSION: writer}}) is writer
    assert wire.writer_for({"extensions": {"websocket.http.response": {}}}) is None
    assert wire.writer_for({"extensions": None}) is None
    assert wire.writer_for({}) is None
