"""A TCP proxy on 127.0.0.1 between the gateway and its upstream that breaks chosen HTTP requests,
the way a real network and a struggling object store do: an error answer instead of the upstream's,
a connection reset before any answer, an answer cut in the middle of its body, an answer that stops
for a while in the middle.

It reads each request's head and its Content-Length body (the upstream client always sends one), so
it knows where requests start on a keep-alive connection; answers are forwarded byte by byte.

    proxy = FaultProxy("127.0.0.1", upstream_port).start()
    proxy.inject(Fault.status(503), method="PUT", times=2)
    ...  # the gateway's storage endpoint is proxy.endpoint
    proxy.stop()
"""

from __future__ import annotations

import dataclasses
import re
import socket
import struct
import threading
import time


@dataclasses.dataclass
class Fault:
    kind: str  # "status", "reset", "cut", "stall"
    status: int = 503
    after_bytes: int = 0  # cut, stall: answer bytes forwarded first
    seconds: float = 0.0  # stall: how long nothing more is forwarded

    @staticmethod
    def status(code: int = 503) -> "Fault":
        """Answer with this HTTP status and an S3 error body; the upstream never sees the request."""
        return Fault("status", status=code)

    @staticmethod
    def reset() -> "Fault":
        """Reset the connection once the request head arrived, before any answer."""
        return Fault("reset")

    @staticmethod
    def cut(after_bytes: int) -> "Fault":
        """Forward the request, then reset the connection after this many bytes of the answer."""
        return Fault("cut", after_bytes=after_bytes)

    @staticmethod
    def stall(after_bytes: int, seconds: float) -> "Fault":
        """Forward the request, then stop forwarding the answer for `seconds` after this many bytes."""
        return Fault("stall", after_bytes=after_bytes, seconds=seconds)


@dataclasses.dataclass
class _Rule:
    fault: Fault
    method: str | None
    target: re.Pattern | None
    times: int


_ERRORS = {500: ("Internal Server Error", "InternalError"), 503: ("Service Unavailable", "ServiceUnavailable"),
           403: ("Forbidden", "AccessDenied"), 404: ("Not Found", "NoSuchKey")}


def _error_answer(status: int) -> bytes:
    reason, code = _ERRORS.get(status, ("Error", "InternalError"))
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>injected by the test proxy</Message></Error>").encode()
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {len(body)}\r\n"
            f"\r\n").encode() + body


def _reset(sock: socket.socket):
    """Close with a TCP RST rather than an orderly FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class FaultProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._stopped = threading.Event()
        self.requests: list[tuple[str, str, str]] = []  # (method, target, fault kind or "")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def start(self) -> "FaultProxy":
        self._listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self):
        self._stopped.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for s in list(self._sockets):
                try:
                    s.close()
                except OSError:
                    pass

    def inject(self, fault: Fault, *, method: str | None = None, target: str | None = None, times: int = 1):
        """Apply `fault` to the next `times` requests with this method whose request-target
        matches the regular expression `target` (searched, not anchored)."""
        with self._lock:
            self._rules.append(_Rule(fault, method, re.compile(target) if target else None, times))

    def clear(self):
        """Forgets the faults not applied yet and the requests seen."""
        with self._lock:
            self._rules.clear()
            self.requests.clear()

    def injected(self, kind: str | None = None) -> int:
        """How many requests a fault (of this kind) was applied to."""
        with self._lock:
            return sum(1 for _, _, k in self.requests if k and (kind is None or k == kind))

    def _take(self, method: str, target: str) -> Fault | None:
        with self._lock:
            fault = None
            for rule in self._rules:
                if rule.times > 0 and (rule.method is None or rule.method == method) and \
                        (rule.target is None or rule.target.search(target)):
                    rule.times -= 1
                    fault = rule.fault
                    break
            self.requests.append((method, target, fault.kind if fault else ""))
            return fault

    def _accept(self):
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _track(self, *socks):
        with self._lock:
            self._sockets.update(socks)

    def _serve(self, client: socket.socket):
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            _reset(client)
            return
        upstream.settimeout(None)
        self._track(client, upstream)
        state = {"fault": None, "forwarded": 0, "dead": False}
        cond = threading.Condition()
        client_write = threading.Lock()

        def kill():
            with cond:
                state["dead"] = True
                cond.notify_all()
            _reset(client)
            _reset(upstream)

        def answers():
            """Upstream to client, byte by byte, applying the current request's answer fault."""
            try:
                while True:
                    data = upstream.recv(65536)
                    if not data:
                        break
                    while data:
                        with cond:
                            fault = state["fault"]
                            room = len(data)
                            if fault is not None:
                                room = max(0, min(room, fault.after_bytes - state["forwarded"]))
                        if fault is not None and room == 0:
                            if fault.kind == "cut":
                                kill()
                                return
                            with cond:
                                state["fault"] = None  # a stall happens once
                            time.sleep(fault.seconds)
                            continue
                        piece, data = data[:room], data[room:]
                        with client_write:
                            client.sendall(piece)
                        with cond:
                            state["forwarded"] += len(piece)
            except OSError:
                pass
            kill()

        threading.Thread(target=answers, daemon=True).start()
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = client.recv(65536)
                    if not data:
                        raise ConnectionError
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, target = lines[0].split(" ")[:2]
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                fault = self._take(method, target)
                if fault is not None and fault.kind == "reset":
                    kill()
                    return
                if fault is not None and fault.kind == "status":
                    while len(buf) < length:  # the body is read and dropped
                        data = client.recv(65536)
                        if not data:
                            raise ConnectionError
                        buf += data
                    buf = buf[length:]
                    with client_write:
                        client.sendall(_error_answer(fault.status))
                    continue
                with cond:
                    state["fault"] = fault
                    state["forwarded"] = 0
                upstream.sendall(head + b"\r\n\r\n")
                sent = min(length, len(buf))
                upstream.sendall(buf[:sent])
                buf = buf[sent:]
                remaining = length - sent
                while remaining > 0:
                    data = client.recv(min(65536, remaining))
                    if not data:
                        raise ConnectionError
                    upstream.sendall(data)
                    remaining -= len(data)
        except (OSError, ConnectionError, ValueError):
            pass
        kill()
