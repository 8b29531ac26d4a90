"""The frame parser of `ow.core.bus._wire` on protocol bytes cut at every possible place."""

from __future__ import annotations

from ow.core.bus._wire import Frame, WireReader, header_int


def _hmsg(subject: bytes, sid: bytes, reply: bytes, header: bytes, payload: bytes) -> bytes:
    parts = [subject, sid] + ([reply] if reply else [])
    parts += [b"%d" % len(header), b"%d" % (len(header) + len(payload))]
    return b"HMSG " + b" ".join(parts) + b"\r\n" + header + payload + b"\r\n"


ACK = b"$JS.ACK.S.C.1.%d.%d.1700000000000000000.0"
HDR = b"NATS/1.0\r\nNats-Msg-Id: x\r\n\r\n"
FC = b"NATS/1.0 100 FlowControl Request\r\n\r\n"
HB = (b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 7\r\n"
      b"Nats-Consumer-Stalled: $JS.FC.z\r\n\r\n")

WIRE = b"".join([
    _hmsg(b"ow.mx.o.r1", b"1", ACK % (5, 1), HDR, b'{"a":1}'),
    b"PING\r\n",
    b"MSG ow.mx.o.r2 1 " + ACK % (6, 2) + b" 7\r\n{\"b\":2}\r\n",
    _hmsg(b"_INBOX.x", b"1", b"$JS.FC.abc", FC, b""),
    _hmsg(b"ow.mx.o.r1", b"9", ACK % (1, 1), HDR, b"late"),  # an earlier subscription's
    _hmsg(b"_INBOX.x", b"1", b"", HB, b""),
    b"PONG\r\n",
    _hmsg(b"ow.mx.o.r3", b"1", ACK % (8, 3), HDR, b"x" * 3000 + b"\r\n" + b"y" * 10),
])


def _reader() -> WireReader:
    r = WireReader(sock=None)  # type: ignore[arg-type] - _parse never touches the socket
    r._sid = b"1"
    return r


def _feed(cuts: list[int]) -> tuple[Frame, list[bytes], WireReader]:
    r, frame, replies, last = _reader(), Frame(), [], 0
    for cut in [*cuts, len(WIRE)]:
        r._buf += WIRE[last:cut]
        last = cut
        replies += r._parse(frame)
    return frame, replies, r


def _check(frame: Frame, replies: list[bytes], r: WireReader) -> None:
    assert [(s, d) for s, _, d in frame.data] == [
        ("ow.mx.o.r1", b'{"a":1}'), ("ow.mx.o.r2", b'{"b":2}'),
        ("ow.mx.o.r3", b"x" * 3000 + b"\r\n" + b"y" * 10),
    ]
    assert frame.data[0][1] == ACK % (5, 1)
    assert replies == [b"PONG\r\n", b"PUB $JS.FC.abc 0\r\n\r\n", b"PUB $JS.FC.z 0\r\n\r\n"]
    assert len(frame.status) == 2
    assert header_int(frame.status[1], b"Nats-Last-Consumer") == 7
    assert r._pongs == 1
    assert not r._buf


def test_one_read():
    _check(*_feed([]))


def test_cut_at_every_byte():
    for cut in range(1, len(WIRE)):
        _check(*_feed([cut]))


def test_cut_into_small_reads():
    _check(*_feed(list(range(7, len(WIRE), 7))))
