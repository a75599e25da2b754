"""rapidrag.channels in this process, over loopback: frames answered, errors carried back, the key checked."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterator
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection
from typing import Any

import pytest

from rapidrag.channels import FAILED, OK, Channels, ChannelServer

KEY = b"k" * 32


class _Unpicklable(Exception):
    def __reduce__(self) -> Any:
        raise TypeError("not this one")


def _answer(payload: bytes) -> bytes:
    method, args, _ = pickle.loads(payload)
    if method == "fail":
        raise KeyError(args[0])
    if method == "fail oddly":
        raise _Unpicklable("a lock inside")
    return pickle.dumps((method, args, threading.current_thread().name))


@pytest.fixture()
def server() -> Iterator[ChannelServer]:
    s = ChannelServer(_answer, KEY, "127.0.0.1")
    yield s
    s.close()


def test_frames_are_answered_and_errors_carried_back(server: ChannelServer) -> None:
    assert server.address[0] == "127.0.0.1"
    channels = Channels(KEY)
    conn = channels.connection("r0", server.address, 2.0)
    for n in (0, 1, 200_000):  # a frame larger than multiprocessing's one-write size (16 KiB)
        conn.send_bytes(pickle.dumps(("m", ("x" * n,), {})))
        reply = conn.recv_bytes()
        assert reply[:1] == OK
        method, args, thread = pickle.loads(reply[1:])
        assert (method, args) == ("m", ("x" * n,)) and thread == "rapidrag-channel-read"
    conn.send_bytes(pickle.dumps(("fail", ("why",), {})))
    reply = conn.recv_bytes()
    assert reply[:1] == FAILED
    error = pickle.loads(reply[1:])
    assert isinstance(error, KeyError) and error.args == ("why",)
    conn.send_bytes(pickle.dumps(("fail oddly", (), {})))  # an error that does not pickle: its type and message
    error = pickle.loads(conn.recv_bytes()[1:])
    assert isinstance(error, RuntimeError) and str(error) == "_Unpicklable: a lock inside"
    conn.send_bytes(pickle.dumps(("m", (1,), {})))  # the connection still serves after an error
    assert pickle.loads(conn.recv_bytes()[1:])[1] == (1,)
    assert channels.connection("r0", server.address, 2.0) is conn  # kept for this thread


def test_connections_are_per_thread_and_per_address(server: ChannelServer) -> None:
    channels = Channels(KEY)
    mine = channels.connection("r0", server.address, 2.0)
    theirs: list[Connection] = []
    worker = threading.Thread(target=lambda: theirs.append(channels.connection("r0", server.address, 2.0)))
    worker.start()
    worker.join()
    assert theirs and theirs[0] is not mine
    other = ChannelServer(_answer, KEY, "127.0.0.1")  # the replica restarted elsewhere: a new address
    try:
        moved = channels.connection("r0", other.address, 2.0)
        assert moved is not mine and mine.closed
        moved.send_bytes(pickle.dumps(("m", (), {})))
        assert moved.recv_bytes()[:1] == OK
    finally:
        other.close()
    channels.drop("r0")
    assert moved.closed
    channels.drop("never opened")  # nothing to close


def test_a_connection_without_the_key_is_refused(server: ChannelServer) -> None:
    with pytest.raises(AuthenticationError):
        Channels(b"wrong key").connection("r0", server.address, 2.0)
    import socket

    raw = Connection(socket.create_connection(server.address).detach())  # a stranger that skips the handshake
    raw.send_bytes(pickle.dumps(("m", (), {})))  # read as its answer to the challenge: wrong, and closed
    frames = []
    with pytest.raises((EOFError, OSError)):
        while True:
            frames.append(raw.recv_bytes())
    assert frames and all(f.startswith((b"#CHALLENGE#", b"#FAILURE#")) for f in frames)  # never an answer
    raw.close()
    conn = Channels(KEY).connection("r0", server.address, 2.0)  # the server still serves the key's holders
    conn.send_bytes(pickle.dumps(("m", (), {})))
    assert conn.recv_bytes()[:1] == OK


def test_a_closed_server_refuses_new_connections(server: ChannelServer) -> None:
    server.close()
    with pytest.raises(OSError):
        Channels(KEY).connection("r0", server.address, 2.0)


def test_a_peer_that_never_answers_the_handshake_is_given_up() -> None:
    """A port that takes the connection and then says nothing (a hung process): the handshake fails within its
    timeout instead of waiting for ever."""
    import socket

    silent = socket.create_server(("127.0.0.1", 0))
    raised: list[BaseException] = []

    def connect() -> None:
        try:
            Channels(KEY).connection("r0", silent.getsockname()[:2], 0.2)
        except BaseException as e:  # checked below, on the test's thread
            raised.append(e)

    attempt = threading.Thread(target=connect, daemon=True)
    attempt.start()
    attempt.join(30)  # (a handshake without its timeout would still be waiting: the test fails, not hangs)
    silent.close()
    assert not attempt.is_alive(), "the handshake waited past its timeout"
    assert len(raised) == 1 and isinstance(raised[0], OSError), raised
