# SPDX-License-Identifier: MIT
import socket, sys, os
fam = sys.argv[1]
if fam == "tcp":
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0)); addr = str(s.getsockname()[1])
else:
    path = sys.argv[2]
    try: os.unlink(path)
    except FileNotFoundError: pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(path); addr = path
s.listen(16)
print(addr, flush=True)
sys.stdin.readline()                     # "go": accept only now
c, _ = s.accept()
print("server: accepted", c, flush=True)
data = c.recv(100)
print("server: got", data, flush=True)
c.sendall(data)
