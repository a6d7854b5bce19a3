# SPDX-License-Identifier: MIT
"""forks.py - the one-process-tree programs of it_monitor_restart.

    forks.py subprocess DIR             (python3 under ipcd-run)
    forks.py pipe-closerange DIR
    forks.py tcp METHOD DIR             METHOD: closerange, close or dup2
    forks.py lanekit DIR

subprocess: subprocess.Popen(['sh', '-c', 'sleep 2.5; echo ...'],
    stdout=PIPE) with the default close_fds=True (the child closes every fd
    but 0-2 before its exec), then communicate(), as subprocess.run() does:
    the parent must read the child's line, not an early EOF.
pipe-closerange: os.pipe(), fork; the child puts the write end at fd 1,
    os.closerange(3, 65536), sleeps 2.5 s and writes a line; the parent
    reads to EOF.
tcp: the parent connects to its own listener (both ends accelerated),
    forks; the child puts the connecting end at fd 0 and closes everything
    else the application has: os.closerange(3, 1024) (closerange), os.close()
    of every fd /proc/self/fd lists from 3 (close), or os.dup2() of a file
    onto each of them, then closing them (dup2); it sleeps 2.5 s, sends MSG
    and reads the reply. The parent, which closed its copy of the connecting
    end, waits in a blocking recv() meanwhile (more than a life-socket check
    of 1 s), and replies.
    The library's hidden fds (wake eventfds, hold tokens, the life socket,
    the monitor's socket) must survive all of them.
lanekit: a client (a fork child) makes 4 connections to the listener of its
    parent (lanes on: the first through the monitor, which makes the lane;
    the others are lane kits), sends one message on each; the listener,
    which accepted the first only, forks a worker (its fork gives the kits
    it received but did not accept back to the monitor's backlog); the
    worker accepts the other 3, holds all 4 for 3 s (the client idles in
    recv() meanwhile, more than a life-socket check), then answers each.
    Every connection must get its answer, on the accelerated connection.

Every step is one flushed stdout line starting with the role ("parent:",
"child:", "client:", "listener:", "worker:"); the test reads them, and
judges the END lines. Blocking calls stay blocking: the test's hang guards
SIGKILL the process group.
"""
import errno
import os
import subprocess
import sys
import socket
import time

from peer import err_name, read_with, recv_exact, say  # beside this file

LINE = b"from-the-child-after-it-closed-its-fds\n"
MSG = b"child-bytes:" + bytes(range(256)) * 4
REPLY = b"parent-reply:" + bytes(reversed(MSG))
NCONN = 4


def kind_fd(fd):
    """What the fd is: anon_inode:[eventfd] for an accelerated end."""
    try:
        return os.readlink("/proc/self/fd/%d" % fd)
    except OSError as e:
        return "gone (%s)" % errno.errorcode.get(e.errno, str(e.errno))


def fds():
    """Our open fds (the listing's own fd is gone by the time we look)."""
    return sorted(int(f) for f in os.listdir("/proc/self/fd")
                  if os.path.exists("/proc/self/fd/" + f))


def listing():
    return " ".join("%d=%s" % (fd, kind_fd(fd)) for fd in fds())


def read_exact(fd, n):
    """(data, end) from fd with os.read: end is None when n bytes came."""
    return read_with(lambda k: os.read(fd, k), n)


def write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]


def judge(role, data, end, want, what):
    """The END line of a reader that wanted @want."""
    if data == want and end in (None, "eof"):
        say(role, "END %s intact" % what)
    elif not data:
        say(role, "END %s EARLY %s: nothing read" % (what, end or "?"))
    elif want.startswith(data):
        say(role, "END %s PARTIAL: %d of %d bytes, then %s" % (what, len(data), len(want),
                                                             end))
    else:
        say(role, "END %s CORRUPT: %r" % (what, data[:64]))


# ---- pipes ------------------------------------------------------------------------

def run_subprocess():
    p = subprocess.Popen(["sh", "-c", "sleep 2.5; echo %s" % LINE.decode().strip()],
                         stdout=subprocess.PIPE)
    say("parent", "pipe fd=%s (its read end; close_fds=True); child pid=%d" % (
        kind_fd(p.stdout.fileno()), p.pid))
    out, _ = p.communicate()
    say("parent", "child exited %d; read %r" % (p.returncode, out))
    judge("parent", out, "eof", LINE, "line")
    return 0


def run_pipe_closerange():
    r, w = os.pipe()
    say("parent", "pipe fd=%s (its read end); write end fd=%s" % (kind_fd(r), kind_fd(w)))
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(w, 1)
            os.closerange(3, 65536)
            time.sleep(2.5)
            write_all(1, LINE)
        finally:
            os._exit(0)
    os.close(w)
    buf = b""
    while True:
        b = os.read(r, 4096)
        if not b:
            break
        buf += b
    _, st = os.waitpid(pid, 0)
    say("parent", "child exited %d; read %r" % (os.waitstatus_to_exitcode(st), buf))
    judge("parent", buf, "eof", LINE, "line")
    return 0


# ---- a TCP connection whose child end closes everything else ---------------------------

def child_close(method, d):
    """Close (or cover) every fd the application has but 0-2."""
    if method == "closerange":
        os.closerange(3, 1024)
        return "os.closerange(3, 1024)"
    mine = [fd for fd in fds() if fd >= 3]
    if method == "close":
        refused = 0
        for fd in mine:
            try:
                os.close(fd)
            except OSError:
                refused += 1
        return "os.close() of fds %s (%d refused)" % (mine, refused)
    f = os.open(os.path.join(d, "victim.file"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    covered = []
    for fd in mine:
        if fd != f:
            os.dup2(f, fd)
            covered.append(fd)
    for fd in covered:
        os.close(fd)
    os.close(f)
    return "os.dup2(file, fd) onto fds %s, then os.close() of them" % covered


def run_tcp(method, d):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    c = socket.create_connection(srv.getsockname())
    a, _ = srv.accept()
    say("parent", "connection fd=%s accepted fd=%s" % (kind_fd(c.fileno()), kind_fd(a.fileno())))
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.dup2(c.fileno(), 0)
            how = child_close(method, d)
            say("child", "pid=%d: connection at fd 0 (fd=%s); %s; left: %s" % (
                os.getpid(), kind_fd(0), how, listing()))
            time.sleep(2.5)
            try:
                write_all(0, MSG)
            except OSError as e:
                say("child", "END reply NOT SENT: %s" % err_name(e))
                os._exit(1)
            say("child", "sent %d bytes; waiting for the reply" % len(MSG))
            data, end = read_exact(0, len(REPLY))
            judge("child", data, end, REPLY, "reply")
            code = 0
        finally:
            os._exit(code)
    c.close()
    srv.close()
    say("parent", "child pid=%d; waiting in recv() for its bytes" % pid)
    data, end = recv_exact(a, len(MSG))
    judge("parent", data, end, MSG, "child's bytes")
    if data == MSG:
        try:
            a.sendall(REPLY)
            say("parent", "replied")
        except OSError as e:
            say("parent", "reply failed: %s" % err_name(e))
    _, st = os.waitpid(pid, 0)
    say("parent", "child exited %d" % os.waitstatus_to_exitcode(st))
    return 0


# ---- lane kits given back to the backlog by the listener's fork -----------------------

def run_lanekit():
    port_r, port_w = os.pipe()
    sent_r, sent_w = os.pipe()
    cpid = os.fork()
    if cpid == 0:
        code = 1
        try:
            os.close(port_w)
            os.close(sent_r)
            port = int(os.read(port_r, 16))
            cs = []
            for i in range(NCONN):
                c = socket.create_connection(("127.0.0.1", port))
                cs.append(c)
                say("client", "conn %d connected fd=%s" % (i, kind_fd(c.fileno())))
            for i, c in enumerate(cs):
                c.sendall(b"ping%d" % i)
            say("client", "sent ping0..ping%d; the listener forks now" % (NCONN - 1))
            os.write(sent_w, b"x")
            good = 0
            for i, c in reversed(list(enumerate(cs))):
                want = b"pong:ping%d" % i
                data, end = recv_exact(c, len(want))
                k = kind_fd(c.fileno())
                if data == want:
                    good += 1
                    say("client", "conn %d reply intact fd=%s" % (i, k))
                else:
                    say("client", "conn %d FAILED: %s after %r fd=%s" % (i, end or "CORRUPT",
                                                                         data, k))
            say("client", "END %d of %d replies intact" % (good, NCONN))
            code = 0
        finally:
            os._exit(code)
    os.close(port_r)
    os.close(sent_w)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    os.write(port_w, str(srv.getsockname()[1]).encode())
    a0, _ = srv.accept()    # through the monitor: brings the lane
    say("listener", "accepted conn 0 fd=%s" % kind_fd(a0.fileno()))
    if os.read(sent_r, 1) != b"x":
        say("listener", "the client is gone")
        return 1
    wpid = os.fork()        # lanes shut: kits received, not accepted, go back to the backlog
    if wpid == 0:
        code = 1
        try:
            conns = [a0]
            for i in range(1, NCONN):
                a, _ = srv.accept()
                conns.append(a)
                say("worker", "accepted a connection fd=%s" % kind_fd(a.fileno()))
            say("worker", "holding all %d for 3 s" % NCONN)
            time.sleep(3)
            for a in conns:
                d = b""
                while len(d) < len(b"ping0"):
                    b = a.recv(len(b"ping0") - len(d))
                    if not b:
                        break
                    d += b
                a.sendall(b"pong:" + d)
                say("worker", "answered %r" % d)
            time.sleep(1)   # the client reads before we close
            code = 0
        finally:
            os._exit(code)
    a0.close()
    _, st = os.waitpid(wpid, 0)
    wcode = os.waitstatus_to_exitcode(st)
    _, st = os.waitpid(cpid, 0)
    ccode = os.waitstatus_to_exitcode(st)
    say("listener", "worker exited %d, client exited %d" % (wcode, ccode))
    return 0 if wcode == 0 and ccode == 0 else 1


def main():
    scen = sys.argv[1]
    if scen == "subprocess":
        return run_subprocess()
    if scen == "pipe-closerange":
        return run_pipe_closerange()
    if scen == "tcp":
        return run_tcp(sys.argv[2], sys.argv[3])
    if scen == "lanekit":
        return run_lanekit()
    print("forks.py: unknown scenario %r" % scen, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
