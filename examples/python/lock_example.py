#!/usr/bin/env python3
"""Acquire, inspect and release a baton lock over a raw TCP socket (wire protocol v1, stdlib only).

Usage: python3 lock_example.py [HOST] [PORT] [LOCK_NAME]    (defaults: 127.0.0.1 5625 orders/42)
"""
import hashlib, os, socket, struct, sys

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
if len(sys.argv) > 2 and not (sys.argv[2].isdigit() and 1 <= int(sys.argv[2]) <= 65535):
    sys.exit(f"lock_example.py: PORT must be a number from 1 to 65535, got {sys.argv[2]!r}\n{__doc__.strip().splitlines()[-1]}")
port = int(sys.argv[2]) if len(sys.argv) > 2 else 5625
lock_id = hashlib.sha256((sys.argv[3] if len(sys.argv) > 3 else "orders/42").encode()).digest()[:16]
owner_id = os.urandom(16)

def call(sock, cmd, ttl_ms=None):
    """One request frame (u32 length + body), one fixed 17-byte reply: status, fencing_token, expires_at."""
    body = bytes([cmd]) + os.urandom(16) + lock_id + owner_id  # cmd, request_id, lock_id, owner_id
    if ttl_ms is not None:
        body += struct.pack(">Q", ttl_ms)
    sock.sendall(struct.pack(">I", len(body)) + body)
    reply = b""
    while len(reply) < 17:
        chunk = sock.recv(17 - len(reply))
        if not chunk:
            raise ConnectionError("lockd closed the connection")
        reply += chunk
    return struct.unpack(">BQQ", reply)

try:
    with socket.create_connection((host, port), timeout=10) as sock:
        for name, cmd, ttl_ms in (("ACQUIRE", 1, 30_000), ("INSPECT", 4, None), ("RELEASE", 3, None)):
            status, token, expires_at = call(sock, cmd, ttl_ms)
            if status > 6:  # no lockd answers 7-255 (an HTTP server's "HTTP/1.1" reads as 72)
                sys.exit(f"lock_example.py: {host}:{port} answered status {status}: is it lockd's --listen address?")
            print(f"{name} status={status} fencing_token={token} expires_at={expires_at}")
except OSError as error:  # refused, unreachable, timed out, closed mid-way: a real client would retry
    sys.exit(f"lock_example.py: {host}:{port}: {error}")
