# SPDX-License-Identifier: MIT
import socket, sys, os, time
role = sys.argv[1]
if role == "server":
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
    print(s.getsockname()[1], flush=True)
    c, _ = s.accept()
    print("server: accepted,", os.readlink("/proc/self/fd/%d" % c.fileno()), flush=True)
    c.settimeout(30)
    try:
        print("server: recv ->", c.recv(100), "(the client is alive and never closed)", flush=True)
    except OSError as e:
        print("server: recv ->", e, "(the client is alive and never closed)", flush=True)
else:
    port = int(sys.argv[2])
    c = socket.create_connection(("127.0.0.1", port))
    print("client: connected,", os.readlink("/proc/self/fd/%d" % c.fileno()), flush=True)
    sys.stdin.readline()
    t = time.time()
    d = socket.create_connection(("127.0.0.1", port))     # a monitor call while it does not answer
    print("client: second connect returned after %.1f s (%s)" % (time.time() - t,
          os.readlink("/proc/self/fd/%d" % d.fileno())), flush=True)
    sys.stdin.readline()
    c.sendall(b"still here")
    print("client: sent on the first connection", flush=True)
    sys.stdin.readline()
