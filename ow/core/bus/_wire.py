"""A plain-socket NATS connection that receives one subscription's messages in bulk.

nats-py spends ~25 µs per delivered message (a regex per frame, a header parser, an asyncio
queue and task hop per message); a rebuild reads millions. `Bus.read` uses this for bounded
catch-up reads instead (`_read.py`): it opens its own TCP connection, subscribes one inbox,
and parses whole socket reads of frames at once (~3 µs per message). It answers the server's
PINGs and the consumer's flow-control requests itself. Plain `nats://` only, with no
credentials, a token, or a user and password (what `bus.connect` uses); callers fall back
to nats-py for anything else.

Imports: stdlib, anyio and `ow.core.errors`.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel

from ow.core.errors import WireError

__all__ = ["Frame", "WireReader", "header_int"]

_READ = 1 << 20


@dataclass(slots=True)
class Frame:
    """What one `receive()` got: data messages and consumer status messages (headers)."""

    data: list[tuple[str, bytes, bytes]] = field(default_factory=list)  # subject, reply, payload
    status: list[bytes] = field(default_factory=list)  # header block of each status message


class WireReader:
    """One connection, one subscription at a time."""

    def __init__(self, sock: socket.socket):
        self._sock = sock  # non-blocking; used through anyio.wait_readable / wait_writable
        self._buf = bytearray()
        self._sid = b""
        self._n = 0
        self._pongs = 0
        self.inbox_prefix = "_INBOX"

    @classmethod
    async def connect(cls, host: str, port: int, auth: dict[str, Any], name: str) -> WireReader:
        """Connect, authenticate (`user`/`password` or `token`) and wait for the server's OK."""
        reader = cls(await _connect(host, port))
        reader.inbox_prefix = auth.get("inbox_prefix", "_INBOX")
        try:
            info = await reader._line()
            if not info.startswith(b"INFO "):
                raise WireError(f"expected INFO from {host}:{port}, got {info[:40]!r}")
            if json.loads(info[5:]).get("tls_required"):
                raise WireError("the server requires TLS")
            opts = {"verbose": False, "pedantic": False, "headers": True, "protocol": 1,
                    "no_responders": True, "name": name, "lang": "python-ow-wire"}
            if "token" in auth:
                opts["auth_token"] = auth["token"]
            elif "user" in auth:
                opts["user"], opts["pass"] = auth["user"], auth.get("password", "")
            await reader._send(b"CONNECT " + json.dumps(opts).encode() + b"\r\nPING\r\n")
            while (line := await reader._line()) != b"PONG":
                if line.startswith(b"-ERR"):
                    raise WireError(line[5:].decode(errors="replace").strip("' "))
        except BaseException:
            reader._sock.close()
            raise
        return reader

    async def aclose(self) -> None:
        self._sock.close()

    async def subscribe(self) -> str:
        """Subscribe a fresh inbox (dropping the previous subscription); its subject."""
        if self._sid:
            await self._send(b"UNSUB " + self._sid + b"\r\n")
        self._n += 1
        self._sid = str(self._n).encode()
        inbox = f"{self.inbox_prefix}.{secrets.token_hex(11)}"
        pongs = self._pongs
        await self._send(f"SUB {inbox} ".encode() + self._sid + b"\r\nPING\r\n")
        while self._pongs == pongs:  # then the server has the subscription
            await self._fill(Frame())
        return inbox

    async def receive(self) -> Frame:
        """Wait for the next socket read; return every complete message in it."""
        frame = Frame()
        while not frame.data and not frame.status:
            await self._fill(frame)
        return frame

    async def _fill(self, frame: Frame) -> None:
        await self._recv()
        replies = self._parse(frame)
        if replies:
            await self._send(b"".join(replies))

    def _parse(self, frame: Frame) -> list[bytes]:
        """Move the complete frames of the buffer into `frame`; the protocol replies due."""
        buf, replies = self._buf, []
        with memoryview(buf) as view:  # one copy per payload (a bytearray slice is two)
            pos = self._frames(buf, view, frame, replies)
        del buf[:pos]
        return replies

    def _frames(
        self, buf: bytearray, view: memoryview, frame: Frame, replies: list[bytes]
    ) -> int:
        find, pos, sid, size = buf.find, 0, self._sid, len(buf)
        data = frame.data
        while True:
            eol = find(b"\r\n", pos)
            if eol < 0:
                return pos
            op = buf[pos:pos + 4]
            if op == b"HMSG" or op == b"MSG ":
                headers = op == b"HMSG"
                args = buf[pos + (5 if headers else 4):eol].split()
                start, end = eol + 2, eol + 2 + int(args[-1])
                if end + 2 > size:
                    return pos
                hlen = int(args[-2]) if headers else 0
                reply = bytes(args[2]) if len(args) > (4 if headers else 3) else b""
                pos = end + 2
                if args[1] != sid:
                    continue  # a late message of an earlier subscription
                if reply.startswith(b"$JS.ACK."):
                    data.append((args[0].decode(), reply, bytes(view[start + hlen:end])))
                elif hlen:
                    header = bytes(view[start:start + hlen])
                    frame.status.append(header)
                    if reply:  # a flow-control request: answering it lets the consumer go on
                        replies.append(b"PUB " + reply + b" 0\r\n\r\n")
                    stalled = _header(header, b"Nats-Consumer-Stalled")
                    if stalled:
                        replies.append(b"PUB " + stalled + b" 0\r\n\r\n")
                continue
            line = bytes(view[pos:eol])
            pos = eol + 2
            if line == b"PING":
                replies.append(b"PONG\r\n")
            elif line == b"PONG":
                self._pongs += 1
            elif line.startswith(b"-ERR"):
                raise WireError(line[5:].decode(errors="replace").strip("' "))

    async def _line(self) -> bytes:
        while (eol := self._buf.find(b"\r\n")) < 0:
            await self._recv()
        line = bytes(self._buf[:eol])
        del self._buf[:eol + 2]
        if line == b"PING":
            await self._send(b"PONG\r\n")
            return await self._line()
        return line

    async def _send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[self._sock.send(view):]
            except BlockingIOError:
                await anyio.wait_writable(self._sock)

    async def _recv(self) -> None:
        """Append what the socket holds (up to 1 MB) to the buffer, waiting if it is empty.

        A plain socket: an anyio stream's `receive` registers and unregisters the socket
        with the event loop on every call and reads 256 kB at a time, and each of those
        system calls gives up the GIL, which the folds hold while a rebuild runs (the
        reader then waits for it once per call)."""
        while True:
            try:
                data = self._sock.recv(_READ)
            except BlockingIOError:
                await anyio.wait_readable(self._sock)
                continue
            if not data:
                raise WireError("the server closed the connection")
            self._buf += data
            await anyio.lowlevel.checkpoint()  # a busy socket must not starve the loop
            return


async def _connect(host: str, port: int) -> socket.socket:
    """A connected non-blocking TCP socket."""
    family, kind, proto, _, addr = (await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM))[0]
    sock = socket.socket(family, kind, proto)
    sock.setblocking(False)
    try:
        try:
            sock.connect(addr)
        except BlockingIOError:
            await anyio.wait_writable(sock)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err)) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


def _header(block: bytes, name: bytes) -> bytes:
    """One header's value from a `NATS/1.0 ...` header block, or b""."""
    for line in block.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip() == name:
            return value.strip()
    return b""


def header_int(block: bytes, name: bytes) -> int:
    """An integer header of a status message (0 if absent)."""
    value = _header(block, name)
    return int(value) if value.isdigit() else 0
