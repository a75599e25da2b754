"""Direct connections from the coordinator of an index split over Ray to its shard actors, for a search's reads.

An ordinary Ray actor call to 2 actors at once took 1.35 ms a round (p50, no argument) on this project's 2-core
machine, and 2.27 ms to 4 (benchmarks/ray_round_trip.py), which a search over shards pays before any work. A shard
actor also listens on a TCP port of its node; the coordinator sends a read there as one pickled (method, args,
kwargs) and reads back the pickled answer: 0.08 / 0.14 ms a round in the same measurement. Ray stays the control
plane: it places, starts and restarts the actors, carries every change (sequence numbers, the log) and every read
that cannot take a connection, and the coordinator falls back to it when a connection breaks (the replica is then
treated as dead) or is slow (a hedged read).

Connections are authenticated with a key the coordinator gives each actor (the HMAC challenge of
``multiprocessing.connection``, both ways), carry length-prefixed frames (``multiprocessing.connection``'s) over
TCP with Nagle's delay off, and belong to one coordinator thread each, so that searches from several threads run
side by side. A frame's answer starts with one status byte: ``OK`` then the pickled answer, or ``FAILED`` then the
pickled exception the read raised (raised again in the coordinator).
"""

from __future__ import annotations

import os
import pickle
import socket
import struct
import threading
from collections.abc import Callable
from multiprocessing import AuthenticationError
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge
from typing import Any

__all__ = ["FAILED", "OK", "ChannelServer", "Channels"]

OK, FAILED = b"\x00", b"\x01"


HANDSHAKE_S = 10.0  # how long a side waits for the other's part of the handshake


def _receive_timeout(sock: socket.socket, seconds: float) -> None:
    """A kernel timeout on the socket's reads (0: none), which a ``Connection`` over its descriptor then meets as
    an OSError: the handshake cannot hang on a peer that stops answering."""
    whole = int(seconds)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", whole, int((seconds - whole) * 1e6)))


def _handshake(sock: socket.socket, authkey: bytes, *, server: bool, timeout: float) -> Connection:
    """A ``Connection`` over ``sock`` once both sides have proved they hold ``authkey`` (each within
    ``timeout``); the socket is closed when either fails (AuthenticationError, EOFError or OSError)."""
    sock.setblocking(True)  # (a connect timeout leaves the socket non-blocking)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a frame's header and body go out at once
    _receive_timeout(sock, timeout)
    conn = Connection(os.dup(sock.fileno()))
    try:
        if server:
            deliver_challenge(conn, authkey)
            answer_challenge(conn, authkey)
        else:
            answer_challenge(conn, authkey)
            deliver_challenge(conn, authkey)
        _receive_timeout(sock, 0)  # then a connection waits for its next frame as long as it takes
    except BaseException:
        conn.close()
        raise
    finally:
        sock.close()  # (the connection keeps its own descriptor of the socket)
    return conn


class ChannelServer:
    """A shard actor's end: listens on ``host`` (a free port) and answers each connection's frames with
    ``answer(payload)`` (the pickled answer), in a thread per connection."""

    def __init__(self, answer: Callable[[bytes], bytes], authkey: bytes, host: str) -> None:
        self._answer, self._authkey = answer, authkey
        self._listener = socket.create_server((host, 0))
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        threading.Thread(target=self._accept, name="rapidrag-channel", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:  # the listener closed
                return
            threading.Thread(target=self._serve, args=(sock,), name="rapidrag-channel-read", daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            conn = _handshake(sock, self._authkey, server=True, timeout=HANDSHAKE_S)
        except (EOFError, OSError, AuthenticationError):  # a stranger without the key, or one that went quiet
            return
        try:
            while True:
                payload = conn.recv_bytes()
                try:
                    reply = OK + self._answer(payload)
                except Exception as e:  # the read's own error, for the coordinator to raise
                    reply = FAILED + _pickled_error(e)
                conn.send_bytes(reply)
        except (EOFError, OSError):  # closed by the coordinator
            pass
        finally:
            conn.close()

    def close(self) -> None:
        """Stop taking connections (those open keep being served)."""
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (close alone would not)
        except OSError:
            pass
        self._listener.close()


def _pickled_error(error: Exception) -> bytes:
    try:
        return pickle.dumps(error, protocol=5)
    except Exception:  # an exception that does not pickle: its type and message
        return pickle.dumps(RuntimeError(f"{type(error).__name__}: {error}"), protocol=5)


class Channels:
    """The coordinator's end: per thread, one connection per replica (a key the caller chooses) to the address it
    was last asked for, opened on first use and kept until ``drop`` (or until the replica has a new address)."""

    def __init__(self, authkey: bytes) -> None:
        self._authkey = authkey
        self._local = threading.local()

    def _opened(self) -> dict[Any, tuple[tuple[str, int], Connection]]:
        opened = getattr(self._local, "opened", None)
        if opened is None:
            opened = self._local.opened = {}
        return opened

    def connection(self, key: Any, address: tuple[str, int], timeout: float) -> Connection:
        """This thread's connection for ``key`` at ``address``; a new one connects, and waits for each step of the
        handshake, at most ``timeout`` seconds (OSError, EOFError or multiprocessing's AuthenticationError when it
        cannot open)."""
        opened = self._opened()
        kept = opened.get(key)
        if kept is not None and kept[0] == address:
            return kept[1]
        self.drop(key)  # (the replica's earlier process, restarted elsewhere)
        sock = socket.create_connection(address, timeout=timeout)
        conn = _handshake(sock, self._authkey, server=False, timeout=timeout)
        opened[key] = (address, conn)
        return conn

    def drop(self, key: Any) -> None:
        """Close this thread's connection for ``key`` (an answer still owed on it is lost with it)."""
        kept = self._opened().pop(key, None)
        if kept is not None:
            kept[1].close()
