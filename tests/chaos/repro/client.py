# SPDX-License-Identifier: MIT
import socket, sys, os
fam, addr = sys.argv[1], sys.argv[2]
if fam == "tcp":
    c = socket.create_connection(("127.0.0.1", int(addr)))
else:
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); c.connect(addr)
print("client: connected, fd is", os.readlink("/proc/self/fd/%d" % c.fileno()), flush=True)
c.sendall(b"ping")
sys.stdin.readline()
c.settimeout(10)
try:
    print("client: got", c.recv(100), flush=True)
except socket.timeout:
    print("client: NOTHING after 10 s (a blocking recv would wait forever)", flush=True)
