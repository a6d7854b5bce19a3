#!/usr/bin/env python3
"""short.py - short-lived connections for tests/rdma/cases.sh (case "short").

  short.py server HOST PORT N   accept N connections; each sends a 4-byte
                                length and that many bytes then closes at
                                once; check them, answer each with a banner
                                and close at once; print "server ok N"
  short.py client HOST PORT N   N times: connect, send, close without
                                waiting; then N times: connect, read the
                                banner to EOF; print "client ok N"

Both close the moment they have written: what was written before close()
must still arrive (a connection closed before the two hosts' engines have
bound it keeps its data until they have).
"""
import hashlib
import socket
import struct
import sys


def payload(i):
    return hashlib.sha256(str(i).encode()).digest() * (64 + i * 37 % 512)


def recv_all(c):
    out = bytearray()
    while True:
        b = c.recv(65536)
        if not b:
            return bytes(out)
        out += b


def server(host, port, n):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(64)
    print("listening", flush=True)
    for i in range(n):
        c, _ = ls.accept()
        c.settimeout(120)
        data = recv_all(c)
        (idx,) = struct.unpack("!I", data[:4])
        if data[4:] != payload(idx):
            sys.exit(f"server: connection {i}: {len(data)} bytes, not message {idx}")
        c.close()
    for i in range(n):
        c, _ = ls.accept()
        c.sendall(b"banner %d\n" % i + payload(i))
        c.close()
    print(f"server ok {n}", flush=True)


def client(host, port, n):
    for i in range(n):
        c = socket.create_connection((host, port), timeout=120)
        c.sendall(struct.pack("!I", i) + payload(i))
        c.close()
    for i in range(n):
        c = socket.create_connection((host, port), timeout=120)
        data = recv_all(c)
        c.close()
        head = data.split(b"\n", 1)
        if len(head) != 2 or not head[0].startswith(b"banner ") or head[1] != payload(int(head[0][7:])):
            sys.exit(f"client: banner {i}: {len(data)} bytes, not a whole banner")
    print(f"client ok {n}", flush=True)


if __name__ == "__main__":
    role, host, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    (server if role == "server" else client)(host, port, n)
