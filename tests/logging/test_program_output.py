"""ProgramOutput's rules on their own: the token bucket, cuts, drop summaries, both formats."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from sidecar.logging import output
from sidecar.logging.context import current_plugin
from sidecar.logging.output import OutputLimits, ProgramOutput, TokenBucket
from tests._wait import until


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def json_mode() -> Iterator[None]:
    output.use_format("json", "demo")
    yield
    output.use_format("text")


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_the_bucket_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=5, clock=clock)
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    clock.now += 0.25  # 2.5 tokens
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.now += 60  # never more than the burst
    assert sum(bucket.take() for _ in range(10)) == 5


def test_text_lines_keep_the_prefix_and_are_cut_with_their_length() -> None:
    stream = io.StringIO()
    tee: list[str] = []
    writer = ProgramOutput("web", OutputLimits(max_line=8), stream=stream, tee=tee.append)
    writer.write_output("stdout", b"short", 5)
    writer.write_output("stderr", b"0123456789", 10)
    writer.write_output("stdout", b"\xe2\x82\xac" * 3, 9)  # the cut falls inside the third
    writer.write_output("stdout", b"head", 70_000)  # the reader cut it already
    assert lines(stream) == ["[web] short", "[web] 01234567… [truncated from 10 bytes]",
                             "[web] €€… [truncated from 9 bytes]",
                             "[web] head… [truncated from 70000 bytes]"]
    assert tee == [line.removeprefix("[web] ") for line in lines(stream)]


def test_json_objects_whatever_the_bytes(json_mode: None) -> None:
    stream = io.StringIO()
    writer = ProgramOutput("web", stream=stream)
    token = current_plugin.set("supervisor")
    try:
        writer.write_output("stderr", b"\xff\x00\x1b[1m\xe2\x80\xa8 \xc2\x85 \"q\" \\", 16)
    finally:
        current_plugin.reset(token)
    (line,) = lines(stream)
    assert "\u2028" not in line and "\x85" not in line  # escaped: one line to any reader
    record = json.loads(line)
    assert record.pop("time").endswith("Z")
    assert record == {"level": "info", "logger": "sidecar.program",
                      "message": "\ufffd\x00\x1b[1m\u2028 \x85 \"q\" \\", "plugin": "supervisor",
                      "service_label": "demo", "event": "program.output", "program": "web",
                      "stream": "stderr"}


def test_json_where_the_stream_cannot_encode_unicode(json_mode: None) -> None:
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii")
    ProgramOutput("web", stream=stream).write_output("stdout", b"caf\xc3\xa9 \xff", 7)
    line = raw.getvalue().decode("ascii")
    assert json.loads(line)["message"] == "café \ufffd"


async def test_dropped_lines_are_counted_in_one_summary(json_mode: None) -> None:
    stream = io.StringIO()
    tee: list[str] = []
    clock = Clock()
    writer = ProgramOutput("chatty", OutputLimits(rate=1, burst=3, summary_interval=0.05),
                           stream=stream, tee=tee.append, clock=clock)
    for n in range(10):
        writer.write_output("stdout", b"line %d" % n, 6)
    assert len(tee) == 10  # the tail keeps every line
    assert [json.loads(line)["message"] for line in lines(stream)] == \
        ["line 0", "line 1", "line 2"]
    await until(lambda: len(lines(stream)) == 4, 5, "the summary")
    summary = json.loads(lines(stream)[3])
    assert (summary["level"], summary["event"], summary["program"], summary["dropped"]) == \
        ("warning", "program.output.dropped", "chatty", 7)
    assert summary["message"] == ("program chatty: 7 output lines dropped: more than 1 "
                                  "lines/s (bursts of 3)")
    clock.now += 1
    writer.write_output("stdout", b"again", 5)
    assert json.loads(lines(stream)[4])["message"] == "again"
    writer.write_output("stdout", b"dropped", 7)
    writer.flush()  # a program removed: its summary is written at once
    assert json.loads(lines(stream)[5])["dropped"] == 1
    assert writer.dropped == 8


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        OutputLimits(rate=0)
