# SPDX-License-Identifier: MIT
import socket, sys, os
role = sys.argv[1]
if role == "server":
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
    print(s.getsockname()[1], flush=True)
    c, _ = s.accept()
    print("server: accepted,", os.readlink("/proc/self/fd/%d" % c.fileno()), flush=True)
    print("server: got", c.recv(100), flush=True)
    c.settimeout(15)
    try:
        print("server: after the peer's death:", c.recv(100), flush=True)
    except socket.timeout:
        print("server: NOTHING 15 s after the peer's SIGKILL (a blocking recv waits forever)", flush=True)
    except OSError as e:
        print("server: after the peer's death:", e, flush=True)
else:
    c = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
    c.sendall(b"ping")
    print("client: connected,", os.readlink("/proc/self/fd/%d" % c.fileno()), flush=True)
    sys.stdin.readline()
