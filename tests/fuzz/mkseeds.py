#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""mkseeds.py - write the hand-made seed inputs of tests/fuzz/corpus/<target>/.

Each seed is a valid input of its target's little program (the op codes and
argument layouts of fuzz_<target>.c): the paths honest processes take
(register, bind, listen, connect, accept, lanes and kits, pipes, hold
tokens, named AF_UNIX sockets, remote connects, ipcdctl queries...), from
which the fuzzer mutates. Re-run it after changing an input format:

    tests/fuzz/mkseeds.py            # writes tests/fuzz/corpus/*/seed-*

Seeds are named seed-*; inputs the fuzzer found and scripts/fuzz.sh --merge
kept are named by their hash; regress-* are reproducers of fixed bugs.
"""
import os
import re
import struct
import sys

TOP = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(TOP, "corpus")
HDR = os.path.join(TOP, "..", "..", "include", "ipcd")


def define(header, name):
    with open(os.path.join(HDR, header)) as f:
        m = re.search(r"#define\s+%s\s+(\w+)" % name, f.read())
    return int(m.group(1), 0)


ABI_MAJOR = define("shm_abi.h", "IPCD_SHM_ABI_MAJOR")
ABI_MINOR = define("shm_abi.h", "IPCD_SHM_ABI_MINOR")
OP = {n: define("proto.h", "IPCD_OP_" + n) for n in (
    "NOP ECHO BIND LISTEN UNBIND CONNECT ACCEPT CLOSE FALLBACK KITS LANE_DONE KIT_ACCEPTED "
    "HOLD REGION PAIR ULISTEN UCONNECT UCLAIM RATTACH").split()}
SHM_MAGIC = 0x44435049
CTL_MAGIC = 0x4c544349
CL_MAGIC = 0x52445049


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(bytes(data))


def v4(a, b, c, d):
    return bytes(10) + b"\xff\xff" + bytes((a, b, c, d))


LOOP = v4(127, 0, 0, 1)
ANY = v4(0, 0, 0, 0)


def req(opcode, body=b"", flags=0):
    assert len(body) <= 48
    return struct.pack("<HHIQ", opcode, len(body), flags, 0) + body.ljust(48, b"\0")


def bind(addr, port, flags=1):
    return req(OP["BIND"], addr + struct.pack("<HHI", port, 0, flags))


def listen(backlog=8, flags=1):
    """LISTEN (ABI 3.6): id and kfd (offset 16) to be patched in."""
    return req(OP["LISTEN"], struct.pack("<IIIIiI", 0, backlog, 0, flags, -1, 0))


def connect(addr, port, flags=0):
    return req(OP["CONNECT"], addr + struct.pack("<HHIII", port, 0, flags, 0, 0))


# ---- config ------------------------------------------------------------------

def seeds_config():
    with open(os.path.join(TOP, "..", "..", "monitor", "config.c")) as f:
        src = f.read()
    m = re.search(r"ipcd_default_config\[\] =\n((?:\s*\".*\"\n?)+);", src)
    default = "".join(re.findall(r"\"(.*?)\"", m.group(1))).encode().decode("unicode_escape")
    write("fuzz_config", "default", default.encode())
    write("fuzz_config", "full", b"""# every key
queue_mode = shared
core = 1
spin_us = 0
skip_us = 500
control_socket = /tmp/x.sock
max_processes = 256
max_connections = 1000
ring_bytes = 1048576
ring_max_bytes = 8388608
request_ring_bytes = 8192
log_level = debug
bind_rule = deny uid=1000 ports=8000-8999
bind_rule = allow gid=50 ports=9000
bind_rule = deny uid=* ports=1-65535
peer = hostb 10.0.0.2 7471
peer = hostc fe80::1
""")
    write("fuzz_config", "bad", b"queue_mode = shared\nring_bytes = 3000\n")
    write("fuzz_config", "limits", b"max_process_connections = 100\nmax_memory = 2G\n"
          b"max_process_memory = 512M\nlimit_action = error\n")


# ---- queues --------------------------------------------------------------------

def seeds_spsc():
    # geo byte: capacity 64 << (geo % 7), 0x80 stream, 0x40 max_msg 0 (largest)
    send = lambda n: bytes([3]) + struct.pack("<H", n) + bytes(range(n % 256)).ljust(n, b"x")
    recv = lambda n: bytes([7]) + struct.pack("<H", n)
    readv = lambda fl, n: bytes([9, fl, 1]) + struct.pack("<H", n)
    write("fuzz_spsc", "msg", bytes([0x44]) + send(10) + send(100) + recv(64) + recv(200) +
          bytes([8]) + struct.pack("<H", 512) + bytes([4]) + bytes([10, 0, 0, 0, 0]))
    writev = bytes([4, 2]) + struct.pack("<H", 30) + b"a" * 30 + struct.pack("<H", 50) + b"b" * 50
    write("fuzz_spsc", "stream", bytes([0xc3]) + writev + readv(1, 20) + readv(0, 100) +
          bytes([6]) + send(5) + readv(2, 10) + readv(4, 10) + bytes([12, 1]) + readv(0, 10))
    write("fuzz_spsc", "corrupt", bytes([0xc2]) + send(8) + bytes([2]) +
          struct.pack("<IIB", 0, 9999, 3) + readv(0, 64) + bytes([1, 0xf0, 0xff, 0xff, 0xff, 1]) +
          recv(16) + bytes([13, 0]))


def seeds_mpsc():
    push = lambda v: bytes([5]) + struct.pack("<I", v)
    deq = lambda n: bytes([6, n])
    write("fuzz_mpsc", "honest", bytes([0, 0, 1]) + push(1) + push(2) + bytes([3]) +
          bytes([4]) + struct.pack("<I", 3) + deq(8) + bytes([8]) + bytes([9]))
    write("fuzz_mpsc", "stall", bytes([1, 0, 1]) + bytes([3]) + push(7) + deq(4) +
          bytes([7]) + struct.pack("<H", 200) + deq(4) + bytes([4]) + struct.pack("<I", 3) +
          deq(4))
    write("fuzz_mpsc", "forged", bytes([2, 0, 1]) + bytes([0]) +
          struct.pack("<IIIB", 0, 1, 0x77, 0) + bytes([1]) + struct.pack("<IB", 500, 0) + deq(16))


def seeds_reqq():
    def submit(c, r):
        return bytes([c, 0]) + r

    poll = lambda c: bytes([c, 6]) + struct.pack("<H", 64)
    for mode in (0, 1):
        write("fuzz_reqq", "serve-%d" % mode, bytes([mode | 8]) + submit(0, req(OP["NOP"])) +
              submit(1, req(OP["ECHO"], b"hi")) + poll(0) + bytes([0, 8]) +
              bytes([2, 1]) + req(OP["NOP"]) + bytes([2, 7]) + poll(2) +
              bytes([3, 9, 16]) + bytes([1, 10, 2]) + submit(1, req(OP["NOP"])) + poll(1))
    # A client that corrupts its ring, and forged doorbells.
    write("fuzz_reqq", "hostile", bytes([1]) + submit(0, req(OP["NOP"])) +
          bytes([0, 4]) + struct.pack("<IB", 0x80000001, 0) + bytes([1, 3, 1]) +
          struct.pack("<I", 12345) + bytes([2, 5]) + struct.pack("<IIIB", 0x40000000, 0x80000001, 0, 0) +
          bytes([0, 6]) + struct.pack("<H", 64))


def shm_hdr(kind, size, areas):
    h = struct.pack("<IHHIIQQII", SHM_MAGIC, ABI_MAJOR, ABI_MINOR, 192, kind, size, 1,
                    len(areas), 1)
    for off, sz in areas:
        h += struct.pack("<QQ", off, sz)
    return h.ljust(192, b"\0")


def spsc_shm(cap, max_msg, flags):
    return struct.pack("<III", cap, flags, max_msg).ljust(512, b"\0")


def seeds_region():
    # kind byte, length = 192 + u16 % 32768, then the bytes
    def region(kind, areas, fill):
        size = 4096
        b = bytearray(shm_hdr(kind, size, areas).ljust(size, b"\0"))
        for off, data in fill:
            b[off:off + len(data)] = data
        return bytes([kind]) + struct.pack("<H", size - 192) + bytes(b)

    cap = 1024
    ring = 512 + cap
    a2b, b2a, ctl = 256, 256 + ring, 256 + 2 * ring
    stamp = struct.pack("<II", 0, 0xffffffff)
    write("fuzz_region", "conn", region(1, [(a2b, ring), (b2a, ring), (ctl, 256)], [
        (a2b, spsc_shm(cap, cap - 16, 1)), (a2b + 512, stamp), (b2a, spsc_shm(cap, cap - 16, 1)),
        (b2a + 512, stamp), (ctl, struct.pack("<Q", 1))]))
    cap = 512
    ring = 512 + cap
    write("fuzz_region", "client", region(2, [(256, 384), (640, ring), (640 + ring, ring)], [
        (640, spsc_shm(cap, 64, 0)), (640 + 512, stamp), (640 + ring, spsc_shm(cap, 64, 0)),
        (640 + ring + 512, stamp)]))
    mpsc = struct.pack("<I", 16).ljust(512, b"\0") + b"".join(
        struct.pack("<Q", i) for i in range(16))
    write("fuzz_region", "global", region(3, [(256, 256), (512, 512 + 16 * 8)], [(512, mpsc)]))


# ---- the monitor -------------------------------------------------------------------

def patch(off=None, idx=0, wide=False):
    """fuzz_reqs/fuzz_cluster patch(): put value #idx at body offset @off."""
    if off is None:
        return bytes([0, 0])
    return bytes([0x80 | (0x40 if wide else 0) | off // 1, idx])


def op_req(c, r, p1=None, p2=None, how=0):
    return bytes([0, c]) + r + (p1 or patch()) + (p2 or patch()) + bytes([how])


def op(code, c, *args):
    return bytes([code, c]) + b"".join(args)


def klisten(code, c, how=0):
    """OP_KLISTEN (@code: the target's): a kernel listener; how 0: 127.0.0.1, 2: 0.0.0.0."""
    return bytes([code, c, how])


def query(what, flags=0):
    return struct.pack("<II", what, flags).ljust(32, b"\0")


def seeds_reqs():
    # Values the fixture collects, in order, without repeats (fx.c fx_val_add(),
    # IPCD_FUZZ_LOG=1 shows them): #0 = 1 and #1 = 2, the two client ids; the
    # kernel listener's fd (#2) and port (#3, patched into BIND and CONNECT at
    # body offset 16); BIND's answer (#4; its u32, the bind id, is 1: #0);
    # LISTEN's accept token (#5); the CONNECT's lane (#6) and connection (#7);
    # the kits (#8...).
    kl = klisten(11, 0)
    head = (kl + op_req(0, bind(LOOP, 0), patch(16, 3)) +
            op_req(0, listen(), patch(0, 0), patch(16, 2)) +
            op_req(1, connect(LOOP, 0), patch(16, 3)) +
            op_req(0, req(OP["ACCEPT"], bytes(16)), patch(0, 0)))
    tcp = (head +
           op_req(1, req(OP["KITS"], struct.pack("<II", 0, 4)), patch(0, 6)) +
           op_req(0, req(OP["KIT_ACCEPTED"], bytes(8)), patch(0, 8, True)) +
           op(4, 1, bytes([0, 1, 4]), struct.pack("<I", 140), struct.pack("<I", 3)) +
           op_req(0, req(OP["LANE_DONE"], struct.pack("<IIII", 0, 3, 1, 0)), patch(0, 6)) +
           op_req(1, req(OP["HOLD"], struct.pack("<QII", 0, 1, 0)), patch(0, 7, True)) +
           op(7, 1, bytes([0])) +
           op_req(1, req(OP["CLOSE"], bytes(16)), patch(0, 7, True)) +
           op_req(0, req(OP["CLOSE"], bytes(16)), patch(0, 7, True)) +
           op(9, 0, query(4, 1)) + op(3, 1) + op(9, 0, query(5)) +
           op_req(0, req(OP["UNBIND"], bytes(8)), patch(0, 0)))
    write("fuzz_reqs", "tcp", bytes([0]) + tcp)
    write("fuzz_reqs", "tcp-shared", bytes([1]) + tcp)
    write("fuzz_reqs", "tcp-limits", bytes([0x10]) + tcp)
    # Lane regions reused (ring_scrub): kits closed by both ends, or marked closed.
    write("fuzz_reqs", "lane-reuse", bytes([0]) + head +
          op_req(1, req(OP["KITS"], struct.pack("<II", 0, 2)), patch(0, 6)) +
          op_req(0, req(OP["KIT_ACCEPTED"], bytes(8)), patch(0, 8, True)) +
          op_req(1, req(OP["CLOSE"], bytes(16)), patch(0, 8, True)) +
          op_req(0, req(OP["CLOSE"], bytes(16)), patch(0, 8, True)) +
          op_req(1, req(OP["KITS"], struct.pack("<II", 0, 1)), patch(0, 6)) +
          op(4, 1, bytes([2, 1, 4]), struct.pack("<I", 140), struct.pack("<I", 3)) +
          op_req(1, req(OP["KITS"], struct.pack("<II", 0, 1)), patch(0, 6)) +
          op_req(0, req(OP["LANE_DONE"], struct.pack("<IIII", 0, 4, 0, 0)), patch(0, 6)) +
          op(9, 0, query(4)) + op(3, 0))
    # A shared listener whose owner dies: orphaned (its kernel socket lives on, as
    # in a child), adopted by an ACCEPT with the token.
    write("fuzz_reqs", "orphan", bytes([0]) + klisten(11, 0, 2) +
          op_req(0, bind(ANY, 0), patch(16, 3)) +
          op_req(0, listen(4, 0), patch(0, 0), patch(16, 2)) +
          op_req(0, listen(4, 0), patch(0, 0), patch(16, 2)) + op(3, 0) +
          op_req(1, connect(LOOP, 0), patch(16, 3)) + op(10, 0) +
          op_req(1, req(OP["ACCEPT"], bytes(16)), patch(0, 0), patch(8, 5, True)) +
          op_req(1, connect(LOOP, 0), patch(16, 3)))
    # Hold tokens of a listener and of an end, their hang-ups.
    write("fuzz_reqs", "holds", bytes([0]) + kl + op_req(0, bind(LOOP, 0), patch(16, 3)) +
          op_req(0, listen(4, 0), patch(0, 0), patch(16, 2)) +
          op_req(0, req(OP["HOLD"], struct.pack("<QII", 0, 4, 0)), patch(0, 0)) +
          op_req(1, connect(LOOP, 0), patch(16, 3)) +
          op_req(0, req(OP["ACCEPT"], bytes(16)), patch(0, 0)) +
          op_req(0, req(OP["HOLD"], struct.pack("<QII", 0, 2, 0)), patch(0, 6, True)) +
          op(7, 0, bytes([0])) + op(3, 0) + op(7, 1, bytes([0])) + op(9, 1, query(4)))
    write("fuzz_reqs", "pipes", bytes([2]) +
          op_req(0, req(OP["PAIR"], struct.pack("<IIII", 1, 0, 0, 0))) +
          op_req(0, req(OP["PAIR"], struct.pack("<IIII", 2, 65536, 0, 0))) +
          op(4, 0, bytes([0, 1, 4]), struct.pack("<I", 132), struct.pack("<I", 3)) +
          op_req(0, req(OP["HOLD"], struct.pack("<QII", 0, 2, 0)), patch(0, 2, True)) +
          op_req(0, req(OP["REGION"], struct.pack("<QII", 0, 1, 0)), patch(0, 2, True)) +
          op(9, 1, query(4)) + op(3, 0) + op(10, 0) + op(9, 1, query(2, 1)))
    key = struct.pack("<Q", 0x1234)
    write("fuzz_reqs", "unix", bytes([0]) +
          op_req(0, req(OP["ULISTEN"], key + bytes(8))) +
          op_req(1, req(OP["UCONNECT"], key + struct.pack("<Ii", 0, -1))) +
          op_req(0, req(OP["UCLAIM"], struct.pack("<QQiI", 0, 0, 0, 0)), patch(0, 3, True),
                 patch(8, 4, True)) +
          op_req(1, req(OP["CLOSE"], struct.pack("<QII", 0, 5, 0)), patch(0, 3, True)) +
          op_req(0, req(OP["ULISTEN"], key + struct.pack("<II", 1, 0))) + op(3, 0))
    write("fuzz_reqs", "misc", bytes([4]) +
          op_req(0, req(OP["NOP"])) + op_req(1, req(OP["ECHO"], b"hello")) +
          op_req(0, req(OP["FALLBACK"], LOOP + struct.pack("<HHI", 80, 1, 0))) +
          op_req(1, req(OP["RATTACH"])) + op_req(0, req(99), how=0) +
          op(2, 2, bytes([0x81])) + op_req(2, req(99)) + op(8, 1) +
          op(5, 0, struct.pack("<IB", 0x80000100, 4), b"\xff" * 4) + op_req(0, req(OP["NOP"])) +
          op(6, 1, struct.pack("<HB", 0, 8), bytes(8)) +
          op(9, 0, query(1)) + op(9, 0, query(3, 1)) + op(9, 0, query(6)) +
          op(9, 0, query(7, 1)) + op(10, 0))
    # Limits and refusals: a privileged port, a full backlog, nobody listening.
    # Values: #2/#3 the kernel listener (0.0.0.0), #4 and #5 two answers, #6 the
    # third answer, #7 its bind id (3).
    write("fuzz_reqs", "refused", bytes([2]) + klisten(11, 0, 2) +
          op_req(1, bind(LOOP, 5000)) + op_req(1, bind(ANY, 80)) +
          op_req(0, bind(ANY, 0), patch(16, 3)) +
          op_req(0, listen(1, 0), patch(0, 7), patch(16, 2)) +
          op_req(1, connect(LOOP, 0), patch(16, 3)) + op_req(1, connect(LOOP, 0), patch(16, 3)) +
          op_req(1, connect(LOOP, 0), patch(16, 3)) + op_req(1, connect(LOOP, 7001)) +
          op(3, 0) + op_req(1, connect(LOOP, 0), patch(16, 3)))


def seeds_hello():
    # one(): how (1: uid 1000, 2: a second message, 4: close first, 8: read twice),
    # then each message: how (1: raw; 2: admin; 4..64: fields from the input; 128: cut)
    hello = bytes([0]) + bytes(16)
    write("fuzz_hello", "client", bytes([0]) + hello + bytes([1, 1]))
    admin = b"".join(bytes([2]) + bytes([2]) + bytes(16) + bytes([0, w, 1]) + bytes([0, 0])
                     for w in range(1, 9))
    write("fuzz_hello", "admin", admin)
    write("fuzz_hello", "bad", bytes([0, 1, 10]) + b"not-hello!" + bytes([0, 0]) +
          bytes([1, 4, 9, 0]) + bytes(16) + bytes([0, 0]) + bytes([4, 0]) + bytes(16) +
          bytes([1, 1]) + bytes([1, 0x10, 7, 0, 0, 0]) + bytes(16) + bytes([0, 1]))


def seeds_cluster():
    # setup bit 0: the link to host 2 is up. Values: 1, 2 (client ids), the kernel
    # listener's fd (#2) and port (#3), BIND's answer (#4; bind id 1 = #0), the
    # accept token (#5), then what RATTACH, frames and answers bring.
    # fuzz_cluster's patch() takes even offsets: p & 0x3f is the offset / 2.
    def cpatch(off=None, idx=0, wide=False):
        if off is None:
            return bytes([0, 0])
        return bytes([0x80 | (0x40 if wide else 0) | off // 2, idx])

    def rreq(c, r, p1=None, p2=None, how=0):
        return bytes([0, c]) + r + (p1 or cpatch()) + (p2 or cpatch()) + bytes([how])

    def frame(type_, fields, echo=None, patches=None):
        assert len(fields) < 8
        how = 1 if echo is not None else 0
        b = bytes([4, 0, 0, how, echo or 0])
        b += bytes([type_, len(fields)])
        for off, data in fields:
            b += bytes([off]) + data.ljust(8, b"\0")[:8]
        return b + (patches or bytes(4))

    inbound = (klisten(12, 0, 2) + rreq(0, bind(ANY, 0), cpatch(16, 3)) +
               rreq(0, listen(8, 0), cpatch(0, 0), cpatch(16, 2)) +
               rreq(0, req(OP["RATTACH"])) +
               # F_CONNECT to our listener: its port (#3) patched in at dst_port (66)
               frame(1, [(8, struct.pack("<II", 7, 4096)), (16, struct.pack("<Q", 0x10001)),
                         (24, struct.pack("<Q", 0x100001)), (48, LOOP[:8]), (56, LOOP[8:]),
                         (64, struct.pack("<H", 40000))], patches=cpatch(66, 3) + cpatch()) +
               rreq(0, req(OP["ACCEPT"], bytes(16)), cpatch(0, 0)) +
               bytes([5, 0, 0]) + struct.pack("<HHIQ", 1, 4, 2, 0x10001) +
               b"ping".ljust(128, b"\0") +
               frame(4, [(8, struct.pack("<II", 4, 0)), (16, struct.pack("<Q", 0x10001))],
                     patches=cpatch(24, 6, True) + cpatch()) +
               frame(6, [], patches=cpatch(16, 8, True) + cpatch(24, 2, True)) +
               frame(3, [(8, struct.pack("<II", 3, 0))], patches=cpatch(16, 8, True) + cpatch()) +
               frame(5, [(16, struct.pack("<Q", 0x10001))]) + frame(7, []) +
               bytes([7, 0]) + bytes([11, 0, 1]) + bytes([3, 0, 0]))
    write("fuzz_cluster", "inbound", bytes([1]) + inbound)
    outbound = (rreq(1, req(OP["RATTACH"])) + rreq(1, connect(LOOP, 9000), how=2) +
                frame(2, [(12, struct.pack("<i", 0)), (24, struct.pack("<I", 4096))], echo=0) +
                frame(6, [(8, struct.pack("<I", 0))], echo=1) +
                bytes([6, 0, 1]) + rreq(1, connect(LOOP, 9001), how=2) + bytes([6, 0, 0]) +
                bytes([7, 0]) + bytes([2, 0, 1]) + rreq(1, connect(LOOP, 9002), how=6) +
                frame(2, [(12, struct.pack("<i", -111))], echo=0) +
                bytes([3, 0, 0]) + bytes([8, 1]) + bytes([11, 0, 0]))
    write("fuzz_cluster", "outbound", bytes([1]) + outbound)


def main():
    seeds_config()
    seeds_spsc()
    seeds_mpsc()
    seeds_reqq()
    seeds_region()
    seeds_reqs()
    seeds_hello()
    seeds_cluster()
    return 0


if __name__ == "__main__":
    sys.exit(main())
