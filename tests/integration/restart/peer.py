# SPDX-License-Identifier: MIT
"""peer.py - the programs of it_monitor_restart (tests/integration/it_monitor_restart.c).

    peer.py server  SCENARIO FAMILY DIR [WAIT]
    peer.py client  SCENARIO FAMILY DIR ADDR
    peer.py sentinel FAMILY ADDR          (run without the preload)

SCENARIO: death (peer death after a monitor restart), unaccepted (a
connection queued when the monitor goes), slow (a monitor that does not
answer for a while), slow-second (slow, then the connection made while the
monitor did not answer is accepted and carries data), slow-many (slow,
with more connects during the stall and one after it; the server is slow's).
FAMILY: tcp (127.0.0.1) or unix (DIR/srv.sock).
Client only: unaccepted-close: the unaccepted client closes its socket
(after go-close) instead of waiting for a reply; unaccepted-bigclose: the
same with 250 times the bytes; unaccepted-forkclose: a fork child closes
its copy, then the client waits for the reply. unaccepted-epoll,
unaccepted-poll, unaccepted-select: the
unaccepted client waiting for its reply in an event loop (non-blocking
socket, select.epoll/poll/select with a 0.5 s timeout called again and
again) instead of a blocking recv(); the server is the unaccepted one.
WAIT (death only): how the server waits for its peer's end: recv (a
blocking recv), poll (select.poll, no timeout) or epoll (select.epoll, no
timeout).

Every step is one flushed stdout line starting with the role ("server:",
"client:", "sentinel:"); the test reads them. The test steps the programs
by creating files in DIR (go-*). The programs never time out on their
sockets: blocking calls stay blocking, the test's hang guards SIGKILL them.
A wait for a go file gives up (exit 3) after GUARD_S, far past the test's.
"""
import errno
import os
import random
import select
import signal
import socket
import sys
import time

GUARD_S = 300

# unaccepted: what the client sends, what the server answers, and the
# sentinel's message (same length: the server reads MSG_LEN bytes).
MSG_LEN = 1024
# unaccepted-WAIT: the client's event loop waits this long per call, shorter
# than the library's 1 s life-socket check (IPCD_LIVE_CHECK_NS).
LOOP_WAIT_S = 0.5
PAYLOAD = b"client-payload:" + random.Random(1).randbytes(MSG_LEN - 15)
SENTINEL = b"sentinel:" + bytes(MSG_LEN - 9)


def reply_to(data):
    return b"reply:" + bytes(reversed(data))


# slow: (round, size); round 0 before the stall, the others after it. Then
# one exchange on the connection made while the monitor did not answer.
ROUNDS = [(0, 64), (1, 10), (2, 4096), (3, 65536), (4, 200000)]
SECOND = b"second-connection:" + random.Random(2).randbytes(1000)
# slow-many: connect()s made during the stall (the second one included),
# then one after the monitor is back.
STALL_CONNECTS = 5


def pattern(k, n, salt):
    return random.Random(k * 1000 + salt).randbytes(n)


def say(role, *words):
    """One line, in one write(): a fork child shares this stdout with its parent,
    and print() under PYTHONUNBUFFERED writes each word apart, so two processes'
    lines could interleave mid-line."""
    line = (" ".join([role + ":"] + [str(w) for w in words]) + "\n").encode()
    sys.stdout.flush()
    while line:
        line = line[os.write(sys.stdout.fileno(), line):]


def kind(s):
    """What the fd is: anon_inode:[eventfd] for an accelerated connection."""
    return os.readlink("/proc/self/fd/%d" % s.fileno())


def wait_file(role, path):
    end = time.monotonic() + GUARD_S
    while not os.path.exists(path):
        if time.monotonic() > end:
            say(role, "GUARD: %s never appeared" % path)
            sys.exit(3)
        time.sleep(0.005)


def err_name(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__


def recv_exact(s, n):
    """(data, end): end is None when n bytes came, else eof/reset/error NAME."""
    return read_with(s.recv, n)


def read_with(read, n):
    """recv_exact() for any read(k) callable (forks.py: os.read of an fd)."""
    buf = b""
    while len(buf) < n:
        try:
            b = read(n - len(buf))
        except ConnectionResetError:
            return buf, "reset"
        except OSError as e:
            return buf, "error " + err_name(e)
        if not b:
            return buf, "eof"
        buf += b
    return buf, None


def listener(fam, d):
    if fam == "tcp":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        addr = str(s.getsockname()[1])
    else:
        addr = os.path.join(d, "srv.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(addr)
    s.listen(16)
    return s, addr


def connect(fam, addr):
    if fam == "tcp":
        return socket.create_connection(("127.0.0.1", int(addr)))
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(addr)
    return c


# ---- death: the server sees its peer's SIGKILL -----------------------------------

def server_death(s, wait):
    c, _ = s.accept()
    say("server", "accepted fd=%s" % kind(c))
    data, end = recv_exact(c, 4)
    if end:
        say("server", "END %s before the client's bytes (got %r)" % (end, data))
        return 1
    say("server", "got %r" % data)
    say("server", "waiting in %s" % wait)
    if wait == "poll":
        p = select.poll()
        p.register(c, select.POLLIN)
        say("server", "poll ->", p.poll())
    elif wait == "epoll":
        ep = select.epoll()
        ep.register(c.fileno(), select.EPOLLIN)
        say("server", "epoll ->", ep.poll())
    try:
        b = c.recv(100)
    except ConnectionResetError:
        say("server", "END reset")
        return 0
    except OSError as e:
        say("server", "END error %s" % err_name(e))
        return 0
    say("server", "END eof" if not b else "END data %r" % b)
    return 0


def client_death(c):
    c.sendall(b"ping")
    say("client", "sent 4 bytes; idle until SIGKILLed")
    while True:
        time.sleep(60)


# ---- unaccepted: a connection still queued when the monitor goes -------------------

def server_unaccepted(s, d):
    """Accept only after go-accept; serve connections one by one until the sentinel."""
    wait_file("server", os.path.join(d, "go-accept"))
    n = 0
    while True:
        say("server", "accepting")
        c, _ = s.accept()
        n += 1
        say("server", "accepted #%d fd=%s" % (n, kind(c)))
        data, end = recv_exact(c, MSG_LEN)
        if end:
            say("server", "conn #%d END %s after %d bytes" % (n, end, len(data)))
            c.close()
            continue
        if data == SENTINEL:
            c.sendall(b"sentinel-ok")
            say("server", "conn #%d sentinel; done" % n)
            return 0
        if data != PAYLOAD:
            say("server", "conn #%d CORRUPT %d bytes: %r" % (n, len(data), data[:64]))
            c.close()
            continue
        say("server", "conn #%d got the payload intact" % n)
        try:
            c.sendall(reply_to(data))
        except OSError as e:
            say("server", "conn #%d reply failed: %s" % (n, err_name(e)))
            c.close()
            continue
        say("server", "conn #%d replied" % n)
        c.close()


def client_unaccepted(c):
    c.sendall(PAYLOAD)
    say("client", "sent %d bytes; waiting for the reply" % len(PAYLOAD))
    want = reply_to(PAYLOAD)
    data, end = recv_exact(c, len(want))
    say_reply_end(data, end, want)
    return 0


# unaccepted-bigclose: more than an AF_UNIX replay may write at close() (half
# the kernel socket's buffer), less than the ring holds.
BIG = PAYLOAD * 250


def client_unaccepted_close(c, d, data):
    """
    Its bytes sent, it waits (in no socket call) for go-close, then closes.
    SIGPIPE is a C program's default here: a close() must never raise it.
    """
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    c.sendall(data)
    say("client", "sent %d bytes; closing after go-close" % len(data))
    wait_file("client", os.path.join(d, "go-close"))
    c.close()
    say("client", "closed")
    return 0


def client_unaccepted_forkclose(c, d):
    """
    Its bytes sent, it forks; the child closes its copy (after go-close)
    and exits; then the parent waits for the reply as client_unaccepted.
    """
    c.sendall(PAYLOAD)
    pid = os.fork()
    if pid == 0:
        wait_file("child", os.path.join(d, "go-close"))
        c.close()
        say("child", "closed")
        os._exit(0)
    say("client", "sent %d bytes; child pid=%d closes its copy" % (len(PAYLOAD), pid))
    os.waitpid(pid, 0)
    say("client", "child gone; waiting for the reply")
    want = reply_to(PAYLOAD)
    data, end = recv_exact(c, len(want))
    say_reply_end(data, end, want)
    return 0


def say_reply_end(data, end, want):
    """The client's END line for the reply it waited for."""
    if end is None:
        say("client", "END reply " + ("intact" if data == want else "CORRUPT %r" % data[:64]))
    elif data:
        say("client", "END %s after a PARTIAL reply of %d bytes" % (end, len(data)))
    else:
        say("client", "END %s" % end)


def client_unaccepted_loop(c, wait):
    """client_unaccepted() as an event loop: non-blocking, waits of 0.5 s, again and again."""
    c.sendall(PAYLOAD)
    c.setblocking(False)
    if wait == "epoll":
        ep = select.epoll()
        ep.register(c.fileno(), select.EPOLLIN)
        wait_once = lambda: ep.poll(LOOP_WAIT_S)
    elif wait == "poll":
        p = select.poll()
        p.register(c, select.POLLIN)
        wait_once = lambda: p.poll(int(LOOP_WAIT_S * 1000))
    else:
        wait_once = lambda: select.select([c], [], [], LOOP_WAIT_S)[0]
    say("client", "sent %d bytes; waiting for the reply in %s() calls of %.1f s" % (
        len(PAYLOAD), wait, LOOP_WAIT_S))
    want = reply_to(PAYLOAD)
    data, end, calls, idle = b"", None, 0, 0
    deadline = time.monotonic() + GUARD_S
    while len(data) < len(want):
        if time.monotonic() > deadline:
            end = "GUARD: nothing for %d s" % GUARD_S
            break
        calls += 1
        if not wait_once():
            idle += 1
            continue
        try:
            b = c.recv(len(want) - len(data))
        except BlockingIOError:
            continue
        except ConnectionResetError:
            end = "reset"
            break
        except OSError as e:
            end = "error " + err_name(e)
            break
        if not b:
            end = "eof"
            break
        data += b
    say("client", "%d %s() calls (%d timed out); fd=%s" % (calls, wait, idle, kind(c)))
    say_reply_end(data, end, want)
    return 0


def sentinel(fam, addr):
    c = connect(fam, addr)
    c.sendall(SENTINEL)
    data, end = recv_exact(c, len(b"sentinel-ok"))
    say("sentinel", "END", end if end else data.decode())
    return 0


# ---- slow: a monitor that does not answer for longer than the library waits -------

def server_slow(s, second):
    c, _ = s.accept()
    say("server", "accepted fd=%s" % kind(c))
    for k, n in ROUNDS:
        data, end = recv_exact(c, n)
        if end:
            say("server", "round %d END %s after %d of %d bytes" % (k, end, len(data), n))
            return 1
        if data != pattern(k, n, 1):
            say("server", "round %d CORRUPT: %d bytes not what the client sent" % (k, n))
            return 1
        try:
            c.sendall(pattern(k, n, 2))
        except OSError as e:
            say("server", "round %d reply failed: %s" % (k, err_name(e)))
            return 1
        say("server", "round %d ok (%d bytes each way)" % (k, n))
    if second:
        if server_second(s):
            return 1
    data, end = recv_exact(c, 1)
    say("server", "END %s" % (end if end else "data %r" % data))
    return 0


def server_second(s):
    """The next accept() must be the client's connection made during the stall."""
    e, _ = s.accept()
    say("server", "accepted the second connection fd=%s" % kind(e))
    data, end = recv_exact(e, len(SECOND))
    if end or data != SECOND:
        say("server", "second connection %s after %d bytes" % (
            "END " + end if end else "CORRUPT", len(data)))
        return 1
    e.sendall(reply_to(SECOND))
    say("server", "second connection ok")
    e.close()
    return 0


def connect_how(fam, addr, keep):
    """connect(); "fd=KIND" (the socket kept in @keep) or "failed: ERRNO"."""
    try:
        e = connect(fam, addr)
    except OSError as ex:
        return "failed: %s" % err_name(ex)
    keep.append(e)
    return "fd=%s" % kind(e)


def client_stall_more(fam, addr, d, keep):
    """slow-many: more connect()s while the monitor is stopped, one after."""
    for i in range(2, STALL_CONNECTS + 1):
        say("client", "stalled connect %d returned, %s" % (i, connect_how(fam, addr, keep)))
    say("client", "stalled connects done")
    wait_file("client", os.path.join(d, "go-recover"))
    say("client", "recovered connect returned, %s" % connect_how(fam, addr, keep))


def client_slow(c, fam, addr, d, second, many=False):
    def round_(k, n):
        try:
            c.sendall(pattern(k, n, 1))
        except OSError as e:
            say("client", "round %d send failed: %s" % (k, err_name(e)))
            return False
        data, end = recv_exact(c, n)
        if end:
            say("client", "round %d END %s after %d of %d bytes" % (k, end, len(data), n))
            return False
        if data != pattern(k, n, 2):
            say("client", "round %d CORRUPT reply" % k)
            return False
        say("client", "round %d ok (%d bytes each way) fd=%s" % (k, n, kind(c)))
        return True

    if not round_(*ROUNDS[0]):
        return 1
    wait_file("client", os.path.join(d, "go-stall"))
    t = time.monotonic()
    try:
        e = connect(fam, addr)
        how = "fd=%s" % kind(e)
    except OSError as ex:
        e, how = None, "failed: %s" % err_name(ex)
    say("client", "second connect returned after %.1f s, %s" % (time.monotonic() - t, how))
    more = []
    if many:
        client_stall_more(fam, addr, d, more)
    wait_file("client", os.path.join(d, "go-rounds"))
    for k, n in ROUNDS[1:]:
        if not round_(k, n):
            return 1
    if second and not client_second(e):
        return 1
    say("client", "all rounds ok")
    c.close()
    for x in [e] + more:
        if x:
            x.close()
    return 0


def client_second(e):
    if not e:
        return False
    try:
        e.sendall(SECOND)
    except OSError as ex:
        say("client", "second connection send failed: %s" % err_name(ex))
        return False
    data, end = recv_exact(e, len(reply_to(SECOND)))
    if end or data != reply_to(SECOND):
        say("client", "second connection %s after %d bytes" % (
            "END " + end if end else "CORRUPT reply", len(data)))
        return False
    say("client", "second connection ok")
    return True


def main():
    role = sys.argv[1]
    if role == "sentinel":
        return sentinel(sys.argv[2], sys.argv[3])
    scen, fam, d = sys.argv[2], sys.argv[3], sys.argv[4]
    if role == "server":
        s, addr = listener(fam, d)
        say("server", "pid=%d listening on %s fd=%s" % (os.getpid(), addr, kind(s)))
        with open(os.path.join(d, "server.addr.tmp"), "w") as f:
            f.write(addr + "\n")
        os.rename(os.path.join(d, "server.addr.tmp"), os.path.join(d, "server.addr"))
        if scen == "death":
            return server_death(s, sys.argv[5])
        if scen == "unaccepted":
            return server_unaccepted(s, d)
        return server_slow(s, scen == "slow-second")
    addr = sys.argv[5]
    c = connect(fam, addr)
    say("client", "pid=%d connected fd=%s" % (os.getpid(), kind(c)))
    if scen == "death":
        return client_death(c)
    if scen == "unaccepted":
        return client_unaccepted(c)
    if scen == "unaccepted-close":
        return client_unaccepted_close(c, d, PAYLOAD)
    if scen == "unaccepted-bigclose":
        return client_unaccepted_close(c, d, BIG)
    if scen == "unaccepted-forkclose":
        return client_unaccepted_forkclose(c, d)
    if scen.startswith("unaccepted-"):
        return client_unaccepted_loop(c, scen[len("unaccepted-"):])
    return client_slow(c, fam, addr, d, scen == "slow-second", scen == "slow-many")


if __name__ == "__main__":
    sys.exit(main())
