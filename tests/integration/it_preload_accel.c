/* SPDX-License-Identifier: MIT */
/*
 * it_preload_accel.c - real programs under ipcd-run with a monitor: the data
 * must arrive intact AND go through shared memory (issue #4 item 9).
 *
 * Every case starts a monitor, runs server and client (both preloaded unless
 * the case says otherwise), checks the data end to end (ipcd-echo verifies
 * every byte of the echo and both sides print a hash; python compares
 * sha256), then asks the monitor (ipcdctl --json counters/connections):
 *   - two preloaded programs: every connection created and accepted as an
 *     accelerated one, none fell back to the kernel; where the client can
 *     hold mid-transfer, the open connections show the bytes on their rings;
 *   - a preloaded and a non-preloaded program: it works over the kernel, no
 *     accelerated connection, and the fallback is counted with its reason;
 * and finally that nothing was left behind (processes, connections, the
 * monitor's fds, /dev/shm).
 *
 * Cases: ipcd-echo blocking (threads, MSG_PEEK/WAITALL, readv/writev,
 * SO_RCVTIMEO), nonblocking (poll), select + sendfile, a reader and a writer
 * thread on one socket (blocking, poll, SO_RCVTIMEO), a process per
 * connection, IPv6, 1000 concurrent connections (nonblocking and blocking
 * clients), socat in the middle, python3 (settimeout, makefile() readline
 * protocol, 64 MiB sendall both ways at once with sha256), curl against
 * python3 -m http.server, preloaded <-> non-preloaded both ways and both at
 * once on one listener, EPIPE/SIGPIPE, ECONNREFUSED, EADDRINUSE, SO_RCVTIMEO.
 *
 * ThreadSanitizer builds skip (77), like it_preload_passthrough. A case whose
 * program (socat, curl) is absent is skipped with a message.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t_progs.h"


/* ---- python programs ------------------------------------------------------- */

/*
 * argv: PORT_FILE MODE. One connection. MODE timeout: answer "go" with
 * "hello", then close after "bye". lines: a readline protocol through
 * makefile(). bulk: 64 MiB each way at once (a reader thread), sha256 of
 * what was sent and what was received.
 */
static const char py_server[] =
	"import socket,sys,os,hashlib,threading,random\n"
	"pf,mode=sys.argv[1],sys.argv[2]\n"
	"l=socket.socket(); l.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
	"l.bind(('127.0.0.1',0)); l.listen(8)\n"
	"open(pf+'.tmp','w').write('%d\\n'%l.getsockname()[1]); os.rename(pf+'.tmp',pf)\n"
	"l.settimeout(60); c,peer=l.accept(); c.settimeout(30)\n"
	"assert c.getpeername()==peer,(c.getpeername(),peer)\n"
	"assert c.getsockname()==l.getsockname(),(c.getsockname(),l.getsockname())\n"
	"if mode=='timeout':\n"
	"    f=c.makefile('rb')\n"
	"    r=f.readline(); assert r==b'go\\n',r\n"
	"    c.sendall(b'hello\\n')\n"
	"    r=f.readline(); assert r==b'bye\\n',r\n"
	"    f.close(); c.close(); print('PY SERVER OK timeout',flush=True)\n"
	"elif mode=='lines':\n"
	"    f=c.makefile('rwb'); n=0\n"
	"    while True:\n"
	"        line=f.readline()\n"
	"        if not line: raise SystemExit('EOF before QUIT after %d lines'%n)\n"
	"        w=line.split()\n"
	"        if w[0]==b'ADD': f.write(b'SUM %d\\n'%(int(w[1])+int(w[2]))); f.flush(); n+=1\n"
	"        elif w[0]==b'QUIT': f.write(b'BYE %d\\n'%n); f.flush(); break\n"
	"        else: raise SystemExit('bad line %r'%line)\n"
	"    f.close(); c.close(); print('PY SERVER OK lines n=%d'%n,flush=True)\n"
	"else:\n"
	"    N=64<<20; data=random.Random(2).randbytes(N); got=[0,hashlib.sha256()]\n"
	"    def rd():\n"
	"        while True:\n"
	"            b=c.recv(1<<20)\n"
	"            if not b: break\n"
	"            got[0]+=len(b); got[1].update(b)\n"
	"    t=threading.Thread(target=rd); t.start()\n"
	"    c.sendall(data); c.shutdown(socket.SHUT_WR); t.join(120); assert not t.is_alive()\n"
	"    c.close()\n"
	"    print('PY SERVER OK bulk sent=%s rcvd=%s n=%d'%(hashlib.sha256(data).hexdigest(),"
	"got[1].hexdigest(),got[0]),flush=True)\n";

/* argv: PORT MODE; the other side of py_server. */
static const char py_client[] =
	"import socket,sys,os,hashlib,threading,random,time\n"
	"port,mode=int(sys.argv[1]),sys.argv[2]\n"
	"if mode=='timeout':\n"
	"    s=socket.create_connection(('127.0.0.1',port),timeout=20)\n"
	"    s.settimeout(0.3); t0=time.monotonic()\n"
	"    try:\n"
	"        s.recv(10); raise SystemExit('recv returned with nothing sent: no timeout')\n"
	"    except socket.timeout: pass\n"
	"    dt=time.monotonic()-t0\n"
	"    s.settimeout(0.0)\n"
	"    try:\n"
	"        s.recv(10); raise SystemExit('nonblocking recv returned with nothing sent')\n"
	"    except BlockingIOError: pass\n"
	"    s.settimeout(20); s.sendall(b'go\\n'); f=s.makefile('rb')\n"
	"    r=f.readline(); assert r==b'hello\\n',r\n"
	"    s.settimeout(0.2)\n"
	"    try:\n"
	"        s.recv(1); raise SystemExit('recv returned after hello: no timeout')\n"
	"    except socket.timeout: pass\n"
	"    s.settimeout(20); s.sendall(b'bye\\n')\n"
	"    r=s.recv(1); assert r==b'',r\n"
	"    print('PY CLIENT OK timeout first_timeout_s=%.3f'%dt)\n"
	"elif mode=='lines':\n"
	"    s=socket.create_connection(('127.0.0.1',port)); s.settimeout(60)\n"
	"    f=s.makefile('rwb')\n"
	"    for i in range(500):\n"
	"        f.write(b'ADD %d %d\\n'%(i,2*i)); f.flush()\n"
	"        r=f.readline(); assert r==b'SUM %d\\n'%(3*i),(i,r)\n"
	"    for i in range(2000): f.write(b'ADD %d %d\\n'%(i,i))\n"
	"    f.flush()\n"
	"    for i in range(2000):\n"
	"        r=f.readline(); assert r==b'SUM %d\\n'%(2*i),(i,r)\n"
	"    f.write(b'QUIT\\n'); f.flush()\n"
	"    r=f.readline(); assert r==b'BYE 2500\\n',r\n"
	"    r=f.readline(); assert r==b'',r\n"
	"    print('PY CLIENT OK lines')\n"
	"else:\n"
	"    s=socket.create_connection(('127.0.0.1',port)); s.settimeout(30)\n"
	"    N=64<<20; data=random.Random(1).randbytes(N); got=[0,hashlib.sha256()]\n"
	"    def rd():\n"
	"        while True:\n"
	"            b=s.recv(1<<20)\n"
	"            if not b: break\n"
	"            got[0]+=len(b); got[1].update(b)\n"
	"    t=threading.Thread(target=rd); t.start()\n"
	"    s.sendall(data); s.shutdown(socket.SHUT_WR); t.join(120); assert not t.is_alive()\n"
	"    s.close()\n"
	"    print('PY CLIENT OK bulk sent=%s rcvd=%s n=%d'%(hashlib.sha256(data).hexdigest(),"
	"got[1].hexdigest(),got[0]))\n";

/* ---- common steps ------------------------------------------------------------- */

/* The "server done" line must count @n connections ended by EOF, no error. */
static void expect_server_clean(struct t_prog *srv, unsigned int n)
{
	const char *l = t_line(t_prog_read(srv), "server done");
	uint64_t eof = 0, err = 1, reset = 1;

	if (!l || !t_kv_u64(l, "eof", false, &eof) || !t_kv_u64(l, "errors", false, &err) ||
	    !t_kv_u64(l, "reset", false, &reset) || eof != n || err || reset) {
		t_prog_dump(srv);
		fail_msg("%s: expected %u connections ended by EOF and no error: %s", srv->label, n,
			 l ? l : "(no summary line)");
	}
}

/*
 * Echo server (@srv_args) and client (@cli_args), @n connections, preloaded
 * as said. @hold_at > 0: the client pauses once every connection echoed
 * that much, and the open connections must show it on their rings.
 */
static void run_echo(struct t_state *s, bool srv_pre, const char *srv_args, bool cli_pre,
		     const char *cli_args, unsigned int n, uint64_t hold_at, const char *what)
{
	const char *dir = s->mon.dir;
	struct t_prog srv, cli;
	char args[768], hold[512] = "", ready[160], go[160];
	unsigned int port;

	snprintf(args, sizeof(args), "--conns %u --report %s", n, srv_args);
	port = t_echo_server(&srv, dir, "server", srv_pre, args);
	if (hold_at) {
		snprintf(ready, sizeof(ready), "%s/ready", dir);
		snprintf(go, sizeof(go), "%s/go", dir);
		unlink(ready);
		unlink(go);
		snprintf(hold, sizeof(hold), "--ready-at %llu --ready-file %s --wait-file %s",
			 (unsigned long long)hold_at, ready, go);
	}
	snprintf(args, sizeof(args), "client --port %u --conns %u %s %s", port, n, cli_args, hold);
	t_prog_start(&cli, dir, "client", cli_pre, args);
	if (hold_at) {
		t_file_wait(ready, &cli, T_PROG_GUARD_MS);
		t_expect_live_bytes(&s->mon, n, hold_at, what);
		t_file_create(go);
	}
	t_prog_expect(&cli, T_PROG_GUARD_MS, 0);
	t_prog_expect(&srv, T_PROG_GUARD_MS, 0);
	fprintf(stderr, "%s: %s\n", what, t_line(cli.out, "client ok"));
	t_echo_match(&cli, &srv);
	expect_server_clean(&srv, n);
	t_prog_free(&cli);
	t_prog_free(&srv);
}

/* ---- ipcd-echo ------------------------------------------------------------------ */

static void test_echo_blocking(void **state)
{
	struct t_state *s = *state;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	/* a thread per connection; blocking client rotating write/send/writev/sendmsg and
	 * read/recv(MSG_WAITALL)/readv/recvmsg, MSG_PEEK, SO_RCVTIMEO as a hang guard */
	run_echo(s, true, "", true, "--size 4m --chunk 16k --rcvtimeo 30000", 4, 1 << 20,
		 "echo blocking");
	t_expect_accelerated(&s->mon, &c0, 4, "echo blocking");
	t_case_finish(s);
}

static void test_echo_nonblock(void **state)
{
	struct t_state *s = *state;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	/* poll() loops on both sides: nonblocking connect, partial reads and writes */
	run_echo(s, true, "--nonblock", true, "--nonblock --size 2m --chunk 64k", 16, 0,
		 "echo nonblock");
	t_expect_accelerated(&s->mon, &c0, 16, "echo nonblock");
	t_case_finish(s);
}

static void test_echo_select_sendfile(void **state)
{
	struct t_state *s = *state;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	run_echo(s, true, "--select", true, "--select --size 1m", 4, 0, "echo select");
	run_echo(s, true, "--select", true, "--sendfile --size 2m --chunk 32k", 2, 0,
		 "echo sendfile");
	t_expect_accelerated(&s->mon, &c0, 6, "echo select + sendfile");
	t_case_finish(s);
}

static void test_echo_fork(void **state)
{
	struct t_state *s = *state;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	/* the server forks a process per accepted connection and closes its copy */
	run_echo(s, true, "--fork", true, "--size 1m", 4, 0, "echo fork");
	t_expect_accelerated(&s->mon, &c0, 4, "echo fork");
	t_case_finish(s);
}

/*
 * A writer thread and a reader thread on each connection at once (what
 * python's sendall with a reader thread does), waiting three ways: blocking
 * calls, poll() before nonblocking calls (python's settimeout), and
 * SO_RCVTIMEO/SO_SNDTIMEO.
 */
static void test_echo_duplex_blocking(void **state)
{
	struct t_state *s = *state;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	run_echo(s, true, "", true, "--duplex --size 16m --chunk 64k", 2, 0, "echo duplex");
	t_expect_accelerated(&s->mon, &c0, 2, "echo duplex");
	t_case_finish(s);
}

static void test_echo_duplex_poll(void **state)
{
	struct t_state *s = *state;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	run_echo(s, true, "", true, "--duplex --nonblock --size 16m --chunk 64k", 2, 0,
		 "echo duplex poll");
	t_expect_accelerated(&s->mon, &c0, 2, "echo duplex poll");
	t_case_finish(s);
}

static void test_echo_duplex_timeo(void **state)
{
	struct t_state *s = *state;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	run_echo(s, true, "", true, "--duplex --rcvtimeo 20000 --size 16m --chunk 64k", 2, 0,
		 "echo duplex SO_RCVTIMEO");
	t_expect_accelerated(&s->mon, &c0, 2, "echo duplex SO_RCVTIMEO");
	t_case_finish(s);
}

static bool have_ipv6_loopback(void)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

static void test_echo_ipv6(void **state)
{
	struct t_state *s = *state;
	struct t_ctr c0;

	if (!have_ipv6_loopback()) {
		fprintf(stderr, "test_echo_ipv6: no ::1 on this host: skipped\n");
		skip();
	}
	t_case_begin(s, &c0);
	run_echo(s, true, "--host ::1", true, "--host ::1 --size 2m", 2, 256 << 10, "echo ipv6");
	t_expect_accelerated(&s->mon, &c0, 2, "echo ipv6");
	t_case_finish(s);
}

static void test_conns_1000_nonblock(void **state)
{
	struct t_state *s = *state;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	run_echo(s, true, "--nonblock", true, "--nonblock --size 64k --chunk 16k", 1000, 0,
		 "1000 conns nonblock");
	t_expect_accelerated(&s->mon, &c0, 1000, "1000 conns nonblock");
	t_case_finish(s);
}

static void test_conns_1000_blocking(void **state)
{
	struct t_state *s = *state;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	/* 1000 connections open at once, served round-robin by one blocking client */
	run_echo(s, true, "--nonblock", true, "--size 16k --chunk 4k --rcvtimeo 30000", 1000, 0,
		 "1000 conns blocking");
	t_expect_accelerated(&s->mon, &c0, 1000, "1000 conns blocking");
	t_case_finish(s);
}

/* ---- socat in the middle -------------------------------------------------------- */

static void test_socat(void **state)
{
	struct t_state *s = *state;
	const char *dir = s->mon.dir, *hit;
	struct t_prog srv, relay, cli;
	char target[64], args[512], ready[160], go[160];
	unsigned int port, rport;
	struct t_ctr c0;

	if (!t_have_prog("socat")) {
		fprintf(stderr, "test_socat: no socat: skipped\n");
		skip();
	}
	t_case_begin(s, &c0);
	port = t_echo_server(&srv, dir, "server", true, "--conns 1 --report");
	snprintf(target, sizeof(target), "TCP:127.0.0.1:%u", port);
	{
		char *const argv[] = { (char *)"socat", (char *)"-d", (char *)"-d",
				       (char *)"TCP-LISTEN:0,bind=127.0.0.1", target, NULL };

		t_prog_startv(&relay, dir, "socat", true, argv);
	}
	hit = t_prog_wait_output(&relay, true, "listening on AF=2 127.0.0.1:", T_PROG_START_MS);
	if (sscanf(hit + strlen("listening on AF=2 127.0.0.1:"), "%u", &rport) != 1)
		fail_msg("socat: cannot read its port");
	snprintf(ready, sizeof(ready), "%s/ready", dir);
	snprintf(go, sizeof(go), "%s/go", dir);
	snprintf(args, sizeof(args), "client --port %u --size 4m --rcvtimeo 30000 --ready-at 1m "
		 "--ready-file %s --wait-file %s", rport, ready, go);
	t_prog_start(&cli, dir, "client", true, args);
	t_file_wait(ready, &cli, T_PROG_GUARD_MS);
	/* client -> socat and socat -> server, both accelerated, both carrying the data */
	t_expect_live_bytes(&s->mon, 2, 1 << 20, "socat");
	t_file_create(go);
	t_prog_expect(&cli, T_PROG_GUARD_MS, 0);
	t_prog_expect(&relay, T_PROG_GUARD_MS, 0);
	t_prog_expect(&srv, T_PROG_GUARD_MS, 0);
	t_echo_match(&cli, &srv);
	expect_server_clean(&srv, 1);
	t_expect_accelerated(&s->mon, &c0, 2, "socat");
	t_prog_free(&cli);
	t_prog_free(&relay);
	t_prog_free(&srv);
	t_case_finish(s);
}

/* ---- python3 ---------------------------------------------------------------------- */

/* py_server MODE and py_client MODE, both preloaded; returns their stdout lines. */
static void run_py(struct t_state *s, const char *mode, char *srv_line, char *cli_line, size_t len)
{
	const char *dir = s->mon.dir, *l;
	struct t_prog srv, cli;
	char pf[160], port[16], buf[32];
	FILE *f;

	snprintf(pf, sizeof(pf), "%s/py.port", dir);
	unlink(pf);
	{
		char *const argv[] = { (char *)"python3", (char *)"-c", (char *)py_server, pf,
				       (char *)mode, NULL };

		t_prog_startv(&srv, dir, "py-server", true, argv);
	}
	t_file_wait(pf, &srv, T_PROG_START_MS);
	f = fopen(pf, "re");
	if (!f || !fgets(buf, sizeof(buf), f))
		fail_msg("%s: unreadable", pf);
	fclose(f);
	snprintf(port, sizeof(port), "%u", (unsigned int)strtoul(buf, NULL, 10));
	{
		char *const argv[] = { (char *)"python3", (char *)"-c", (char *)py_client, port,
				       (char *)mode, NULL };

		t_prog_startv(&cli, dir, "py-client", true, argv);
	}
	t_prog_expect(&cli, T_PROG_GUARD_MS, 0);
	t_prog_expect(&srv, T_PROG_GUARD_MS, 0);
	l = t_line(srv.out, "PY SERVER OK");
	if (!l) {
		t_prog_dump(&srv);
		fail_msg("py-server: no OK line");
	}
	snprintf(srv_line, len, "%s", l);
	l = t_line(cli.out, "PY CLIENT OK");
	if (!l) {
		t_prog_dump(&cli);
		fail_msg("py-client: no OK line");
	}
	snprintf(cli_line, len, "%s", l);
	fprintf(stderr, "python %s:\n  %s\n  %s\n", mode, srv_line, cli_line);
	t_prog_free(&cli);
	t_prog_free(&srv);
}

static void test_python_timeout(void **state)
{
	struct t_state *s = *state;
	char sl[512], cl[512];
	struct t_ctr c0;

	t_case_begin(s, &c0);
	run_py(s, "timeout", sl, cl, sizeof(sl));
	t_expect_accelerated(&s->mon, &c0, 1, "python settimeout");
	t_case_finish(s);
}

static void test_python_lines(void **state)
{
	struct t_state *s = *state;
	char sl[512], cl[512];
	struct t_ctr c0;

	t_case_begin(s, &c0);
	run_py(s, "lines", sl, cl, sizeof(sl));
	if (!strstr(sl, "n=2500"))
		fail_msg("py-server: %s", sl);
	t_expect_accelerated(&s->mon, &c0, 1, "python makefile readline");
	t_case_finish(s);
}

/*
 * fork + exec: the child holds the parent's connections until its exec,
 * which drops them (the new image cannot use them); the parent then closes
 * its end and the peer must read EOF although the exec'd child still runs.
 */
static const char py_fork_exec[] =
	"import socket,os,sys\n"
	"l=socket.socket(); l.bind(('127.0.0.1',0)); l.listen(1)\n"
	"c=socket.create_connection(l.getsockname()); a,_=l.accept()\n"
	"r,w=os.pipe()\n"
	"pid=os.fork()\n"
	"if pid==0:\n"
	"    os.close(r); os.dup2(w,3) if w!=3 else None\n"
	"    os.execv('/bin/sh',['sh','-c','echo x >&3; exec sleep 5'])\n"
	"os.close(w); os.read(r,2)\n"			/* the child has exec'd */
	"a.close(); c.settimeout(10)\n"
	"try:\n"
	"    b=c.recv(1); print('EXEC EOF' if b==b'' else 'EXEC DATA')\n"
	"except socket.timeout: print('EXEC HANG: the exec\\'d child kept the end open')\n"
	"os.kill(pid,9); os.waitpid(pid,0)\n";

static void test_python_fork_exec(void **state)
{
	struct t_state *s = *state;
	char *const argv[] = { (char *)"python3", (char *)"-c", (char *)py_fork_exec, NULL };
	struct t_prog p;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	t_prog_startv(&p, s->mon.dir, "py-fork-exec", true, argv);
	t_prog_expect(&p, T_PROG_GUARD_MS, 0);
	if (!t_line(p.out, "EXEC EOF")) {
		t_prog_dump(&p);
		fail_msg("no EOF after the parent closed and the child exec'd");
	}
	t_prog_free(&p);
	t_expect_accelerated(&s->mon, &c0, 1, "python fork+exec");
	t_case_finish(s);
}

/*
 * A listener shared through exec with an image that finds no monitor (its
 * environment names another socket): that image's accept cannot be served
 * by the monitor and takes the accept eventfd out of its listening epoll
 * set, which must not be the one the other holders wait on (after fork and
 * exec it is one open file for all of them): the parent still accepts the
 * accelerated connection queued on the listener.
 */
static const char py_exec_nomon_child[] =
	"import socket,sys\n"
	"l=socket.socket(fileno=int(sys.argv[1])); l.settimeout(0.3)\n"
	"try:\n"
	"    a,_=l.accept(); a.close()\n"
	"except OSError: pass\n";
static const char py_exec_nomon[] =
	"import socket,os,sys\n"
	"l=socket.socket(); l.bind(('127.0.0.1',0)); l.listen(8); l.set_inheritable(True)\n"
	"c=socket.create_connection(l.getsockname())\n"
	"pid=os.fork()\n"
	"if pid==0:\n"
	"    os.execve(sys.executable,[sys.executable,'-c',sys.argv[1],str(l.fileno())],\n"
	"              {'IPCD_SOCKET':'/nonexistent/ipcd-no-monitor.sock','IPCD_QUIET':'1'})\n"
	"os.waitpid(pid,0); l.settimeout(10)\n"
	"try:\n"
	"    a,_=l.accept(); c.sendall(b'x')\n"
	"    print('NOMON OK' if a.recv(1)==b'x' else 'NOMON BAD DATA')\n"
	"except socket.timeout: print('NOMON HANG: the parent was never woken to accept')\n";

static void test_python_exec_nomon(void **state)
{
	struct t_state *s = *state;
	char *const argv[] = { (char *)"python3", (char *)"-c", (char *)py_exec_nomon,
			       (char *)py_exec_nomon_child, NULL };
	struct t_prog p;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	t_prog_startv(&p, s->mon.dir, "py-exec-nomon", true, argv);
	t_prog_expect(&p, T_PROG_GUARD_MS, 0);
	if (!t_line(p.out, "NOMON OK")) {
		t_prog_dump(&p);
		fail_msg("the parent could not accept after an exec'd image without a monitor "
			 "tried to");
	}
	t_prog_free(&p);
	t_expect_accelerated(&s->mon, &c0, 1, "python exec without a monitor");
	t_case_finish(s);
}

/*
 * IPCD_HANDOFF is anyone's to set (or a stale one is passed on): a value
 * that does not name our handover memfd, written for this process, is
 * ignored; the fd it names is never closed. Here it names cat's stdin (a
 * regular file), then garbage, then an fd that is not open: cat copies its
 * input every time.
 */
static void test_handoff_hostile(void **state)
{
	static const char *const values[] = { "0", "12abc", "-1", "999" };
	struct t_state *s = *state;
	char in[300], cmd[200];
	struct t_prog p;
	struct t_ctr c0;
	FILE *f;

	t_case_begin(s, &c0);
	snprintf(in, sizeof(in), "%s/handoff-in.txt", s->mon.dir);
	f = fopen(in, "we");
	assert_non_null(f);
	fputs("not a handover\n", f);
	fclose(f);
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char *const argv[] = { (char *)"sh", (char *)"-c", cmd, NULL };

		snprintf(cmd, sizeof(cmd), "IPCD_HANDOFF=%s exec cat", values[i]);
		t_prog_startv_io(&p, s->mon.dir, "handoff-hostile", true, argv, in, NULL);
		t_prog_expect(&p, T_PROG_GUARD_MS, 0);
		if (!t_line(t_prog_read(&p), "not a handover")) {
			t_prog_dump(&p);
			fail_msg("IPCD_HANDOFF=%s: cat did not copy its stdin", values[i]);
		}
		t_prog_free(&p);
	}
	t_case_finish(s);
}

/*
 * close() by one thread while another is blocked in read() on the same fd:
 * as in the kernel, the read still returns the data that arrives next (the
 * connection lives until the call returns), then the peer reads EOF.
 */
static const char py_close_blocked[] =
	"import socket,threading,time,os\n"
	"l=socket.socket(); l.bind(('127.0.0.1',0)); l.listen(1)\n"
	"c=socket.create_connection(l.getsockname()); a,_=l.accept()\n"
	"fd=c.fileno(); got=[]\n"
	"def rd():\n"
	"    try: got.append(os.read(fd,16))\n"
	"    except OSError as e: got.append(e)\n"
	"t=threading.Thread(target=rd); t.start(); time.sleep(0.3)\n"
	"os.close(fd); c.detach(); time.sleep(0.1)\n"
	"a.sendall(b'x'); t.join(10); a.settimeout(10)\n"
	"r=a.recv(1)\n"
	"print('CLOSE OK' if got==[b'x'] and r==b'' else 'CLOSE BAD %r %r'%(got,r))\n";

static void test_python_close_blocked(void **state)
{
	struct t_state *s = *state;
	char *const argv[] = { (char *)"python3", (char *)"-c", (char *)py_close_blocked, NULL };
	struct t_prog p;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	t_prog_startv(&p, s->mon.dir, "py-close-blocked", true, argv);
	t_prog_expect(&p, T_PROG_GUARD_MS, 0);
	if (!t_line(p.out, "CLOSE OK")) {
		t_prog_dump(&p);
		fail_msg("close() during a blocked read(): not what the kernel does");
	}
	t_prog_free(&p);
	t_expect_accelerated(&s->mon, &c0, 1, "python close during read");
	t_case_finish(s);
}

static void test_python_bulk_64m(void **state)
{
	struct t_state *s = *state;
	char sl[512], cl[512], ss[80], sr[80], cs[80], cr[80];
	uint64_t sn = 0, cn = 0;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	run_py(s, "bulk", sl, cl, sizeof(sl));
	if (!t_kv_word(sl, "sent", ss, sizeof(ss)) || !t_kv_word(sl, "rcvd", sr, sizeof(sr)) ||
	    !t_kv_word(cl, "sent", cs, sizeof(cs)) || !t_kv_word(cl, "rcvd", cr, sizeof(cr)) ||
	    !t_kv_u64(sl, "n", false, &sn) || !t_kv_u64(cl, "n", false, &cn))
		fail_msg("cannot parse:\n  %s\n  %s", sl, cl);
	if (strcmp(ss, cr) || strcmp(cs, sr) || sn != 64 << 20 || cn != 64 << 20)
		fail_msg("64 MiB each way: sha256 or length differ:\n  %s\n  %s", sl, cl);
	t_expect_accelerated(&s->mon, &c0, 1, "python 64 MiB both ways");
	t_case_finish(s);
}

/* ---- curl against python3 -m http.server ----------------------------------------- */

static bool same_file(const char *a, const char *b)
{
	FILE *fa = fopen(a, "re"), *fb = fopen(b, "re");
	char ba[65536], bb[65536];
	bool same = fa && fb;

	while (same) {
		size_t na = fread(ba, 1, sizeof(ba), fa), nb = fread(bb, 1, sizeof(bb), fb);

		if (na != nb || memcmp(ba, bb, na))
			same = false;
		if (na == 0)
			break;
	}
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return same;
}

static void test_curl_http(void **state)
{
	struct t_state *s = *state;
	const char *dir = s->mon.dir, *hit;
	char web[160], src[200], out1[200], out2[200], url1[96], url2[96];
	struct t_prog http, curl;

#ifdef IPCD_ASAN_RUNTIME
	/*
	 * curl deadlocks in its own setlocale() at start when the ASan runtime
	 * and an ASan-built libipcd.so are preloaded (not with either alone):
	 * not diagnosed yet, see issue #4's note. Release builds run this case.
	 */
	fprintf(stderr, "curl under an ASan-built preload: skipped\n");
	skip();
#endif
	unsigned int port;
	struct t_ctr c0;
	FILE *f;

	if (!t_have_prog("curl")) {
		fprintf(stderr, "test_curl_http: no curl: skipped\n");
		skip();
	}
	t_case_begin(s, &c0);
	/* what http.server serves lives in a subdirectory: the test's logs are not in it */
	snprintf(web, sizeof(web), "%s/www", dir);
	if (mkdir(web, 0755))
		fail_msg("mkdir %s: %s", web, strerror(errno));
	snprintf(src, sizeof(src), "%s/f.bin", web);
	f = fopen(src, "we");
	if (!f)
		fail_msg("%s: %s", src, strerror(errno));
	for (unsigned int i = 0; i < (8u << 20) / 8; i++) {
		uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull;

		fwrite(&x, sizeof(x), 1, f);
	}
	fclose(f);
	{
		char *const argv[] = { (char *)"python3", (char *)"-u", (char *)"-m",
				       (char *)"http.server", (char *)"0", (char *)"--bind",
				       (char *)"127.0.0.1", (char *)"--directory", web, NULL };

		t_prog_startv(&http, dir, "http-server", true, argv);
	}
	hit = t_prog_wait_output(&http, false, " port ", T_PROG_START_MS);
	if (sscanf(hit, " port %u", &port) != 1)
		fail_msg("http.server: cannot read its port");
	snprintf(out1, sizeof(out1), "%s/out1.bin", dir);
	snprintf(out2, sizeof(out2), "%s/out2.bin", dir);
	snprintf(url1, sizeof(url1), "http://127.0.0.1:%u/f.bin", port);
	snprintf(url2, sizeof(url2), "http://127.0.0.1:%u/", port);
	{
		char *const argv[] = { (char *)"curl", (char *)"-sS", (char *)"--fail",
				       (char *)"--max-time", (char *)"60", (char *)"-o", out1, url1,
				       (char *)"-o", out2, url2, NULL };

		t_prog_startv(&curl, dir, "curl", true, argv);
	}
	t_prog_expect(&curl, T_PROG_GUARD_MS, 0);
	kill(http.pid, SIGTERM);
	t_prog_wait(&http, T_PROG_GUARD_MS);
	if (!same_file(src, out1))
		fail_msg("curl: %s differs from what http.server served (%s)", out1, src);
	if (!t_file_contains(out2, "f.bin"))
		fail_msg("curl: the directory listing %s does not name f.bin", out2);
	t_expect_accelerated(&s->mon, &c0, 2, "curl + http.server");
	unlink(src);
	rmdir(web);
	unlink(out1);
	unlink(out2);
	t_prog_free(&curl);
	t_prog_free(&http);
	t_case_finish(s);
}

/* ---- preloaded <-> not preloaded: the kernel, and the reason counted ---------------- */

static void test_preloaded_to_kernel_server(void **state)
{
	struct t_state *s = *state;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	run_echo(s, false, "--nonblock", true, "--size 1m --rcvtimeo 30000", 2, 0,
		 "preloaded client -> plain server");
	t_expect_fallback(&s->mon, &c0, 2, "no_listener", "preloaded client -> plain server");
	t_case_finish(s);
}

static void test_kernel_client_to_preloaded_server(void **state)
{
	struct t_state *s = *state;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	run_echo(s, true, "--nonblock", false, "--size 1m --rcvtimeo 30000", 2, 0,
		 "plain client -> preloaded server");
	t_expect_fallback(&s->mon, &c0, 2, "peer_not_preloaded",
			  "plain client -> preloaded server");
	t_case_finish(s);
}

/* One preloaded listener, a preloaded and a plain client at the same time. */
static void test_hybrid_listener(void **state)
{
	struct t_state *s = *state;
	const char *dir = s->mon.dir;
	struct t_prog srv, pre, plain;
	struct t_ctr c0, c1;
	long long kernel_peer0, kernel_peer1;
	char args[256];
	unsigned int port;

	t_case_begin(s, &c0);
	kernel_peer0 = t_counter(&s->mon, "peer_not_preloaded");
	port = t_echo_server(&srv, dir, "server", true, "--conns 4 --report");
	snprintf(args, sizeof(args), "client --port %u --conns 2 --size 2m --seed 1", port);
	t_prog_start(&pre, dir, "client-preloaded", true, args);
	snprintf(args, sizeof(args), "client --port %u --conns 2 --size 2m --seed 2", port);
	t_prog_start(&plain, dir, "client-plain", false, args);
	t_prog_expect(&pre, T_PROG_GUARD_MS, 0);
	t_prog_expect(&plain, T_PROG_GUARD_MS, 0);
	t_prog_expect(&srv, T_PROG_GUARD_MS, 0);
	expect_server_clean(&srv, 4);
	t_ctr_read(&s->mon, &c1);
	kernel_peer1 = t_counter(&s->mon, "peer_not_preloaded");
	fprintf(stderr, "hybrid: %lld accelerated, %lld accepted from the kernel\n",
		c1.created - c0.created, kernel_peer1 - kernel_peer0);
	if (c1.created - c0.created != 2 || c1.accepted - c0.accepted != 2 ||
	    kernel_peer1 - kernel_peer0 != 2)
		fail_msg("hybrid listener: expected 2 accelerated and 2 kernel connections, got "
			 "%lld created, %lld accepted, %lld kernel peers", c1.created - c0.created,
			 c1.accepted - c0.accepted, kernel_peer1 - kernel_peer0);
	t_prog_free(&pre);
	t_prog_free(&plain);
	t_prog_free(&srv);
	t_case_finish(s);
}

/* ---- errors as the kernel gives them ------------------------------------------------ */

static void run_probe(struct t_state *s, bool preload, const char *args, const char *label)
{
	struct t_prog p;
	char buf[256];

	snprintf(buf, sizeof(buf), "probe %s", args);
	t_prog_start(&p, s->mon.dir, label, preload, buf);
	t_prog_expect(&p, T_PROG_GUARD_MS, 0);
	fprintf(stderr, "%s: %s", label, p.out);
	t_prog_free(&p);
}

static void test_epipe(void **state)
{
	struct t_state *s = *state;
	struct t_prog srv;
	char args[64];
	unsigned int port;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	port = t_echo_server(&srv, s->mon.dir, "server", true, "--conns 1 --close --report");
	snprintf(args, sizeof(args), "epipe --port %u", port);
	run_probe(s, true, args, "probe-epipe");
	t_prog_expect(&srv, T_PROG_GUARD_MS, 0);
	t_expect_accelerated(&s->mon, &c0, 1, "EPIPE");
	t_prog_free(&srv);
	t_case_finish(s);
}

static void test_refused(void **state)
{
	struct t_state *s = *state;
	struct t_ctr c0, c1;

	t_case_begin(s, &c0);
	run_probe(s, true, "refused", "probe-refused");
	run_probe(s, true, "refused --host ::1", "probe-refused-v6");
	t_ctr_read(&s->mon, &c1);
	if (c1.created != c0.created)
		fail_msg("a connection to a closed port was accelerated (%lld created)",
			 c1.created - c0.created);
	t_case_finish(s);
}

static void test_addrinuse(void **state)
{
	struct t_state *s = *state;
	struct t_prog srv, plain;
	char args[64];
	unsigned int port, sport;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	/* a preloaded listener: preloaded and plain binders collide with it */
	sport = t_echo_server(&srv, s->mon.dir, "server", true, "--conns 1 --report");
	snprintf(args, sizeof(args), "addrinuse --port %u", sport);
	run_probe(s, true, args, "probe-addrinuse-preloaded");
	run_probe(s, false, args, "probe-addrinuse-plain");
	/* a plain listener: a preloaded binder collides with it */
	port = t_echo_server(&plain, s->mon.dir, "server-plain", false, "--conns 1 --report");
	snprintf(args, sizeof(args), "addrinuse --port %u", port);
	run_probe(s, true, args, "probe-addrinuse-vs-plain");
	/* both servers still work, and finish after one echo each */
	t_ctr_read(&s->mon, &c0);
	snprintf(args, sizeof(args), "timeo --port %u --ms 50", sport);
	run_probe(s, true, args, "probe-timeo-preloaded");
	t_expect_accelerated(&s->mon, &c0, 1, "after EADDRINUSE: preloaded -> preloaded");
	t_ctr_read(&s->mon, &c0);
	snprintf(args, sizeof(args), "timeo --port %u --ms 50", port);
	run_probe(s, true, args, "probe-timeo-plain");
	t_expect_fallback(&s->mon, &c0, 1, "no_listener", "after EADDRINUSE: preloaded -> plain");
	t_prog_expect(&plain, T_PROG_GUARD_MS, 0);
	t_prog_expect(&srv, T_PROG_GUARD_MS, 0);
	t_prog_free(&plain);
	t_prog_free(&srv);
	t_case_finish(s);
}

static void test_rcvtimeo(void **state)
{
	struct t_state *s = *state;
	struct t_prog srv;
	char args[64];
	unsigned int port;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	port = t_echo_server(&srv, s->mon.dir, "server", true, "--conns 1 --report");
	snprintf(args, sizeof(args), "timeo --port %u --ms 300", port);
	run_probe(s, true, args, "probe-timeo");
	t_prog_expect(&srv, T_PROG_GUARD_MS, 0);
	expect_server_clean(&srv, 1);
	t_expect_accelerated(&s->mon, &c0, 1, "SO_RCVTIMEO");
	t_prog_free(&srv);
	t_case_finish(s);
}

/* Blocking recv and signals: EINTR, SA_RESTART, and no restart with SO_RCVTIMEO. */
static void test_eintr(void **state)
{
	struct t_state *s = *state;
	struct t_prog srv;
	char args[64];
	unsigned int port;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	port = t_echo_server(&srv, s->mon.dir, "server", true, "--conns 1 --report");
	snprintf(args, sizeof(args), "eintr --port %u", port);
	run_probe(s, true, args, "probe-eintr");
	t_prog_expect(&srv, T_PROG_GUARD_MS, 0);
	expect_server_clean(&srv, 1);
	t_expect_accelerated(&s->mon, &c0, 1, "EINTR and SA_RESTART");
	t_prog_free(&srv);
	t_case_finish(s);
}

/* An edge-triggered epoll loop: EPOLLOUT edges after EAGAIN, then both ways. */
static void test_epollet(void **state)
{
	struct t_state *s = *state;
	struct t_prog srv;
	char args[64];
	unsigned int port;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	port = t_echo_server(&srv, s->mon.dir, "server", true, "--conns 1 --report");
	snprintf(args, sizeof(args), "epollet --port %u", port);
	run_probe(s, true, args, "probe-epollet");
	t_prog_expect(&srv, T_PROG_GUARD_MS, 0);
	expect_server_clean(&srv, 1);
	t_expect_accelerated(&s->mon, &c0, 1, "epoll EPOLLET");
	t_prog_free(&srv);
	t_case_finish(s);
}

/*
 * A prefork server: the parent listens, forks two workers that accept, and
 * closes its own copy. Every connection is accepted by a worker (through the
 * listener's accept token) and accelerated; none is lost or goes to the kernel.
 */
static const char py_prefork[] =
	"import socket,os,sys\n"
	"N=40\n"
	"l=socket.socket(); l.bind(('127.0.0.1',0)); l.listen(64)\n"
	"addr=l.getsockname(); kids=[]\n"
	"for w in range(2):\n"
	"    pid=os.fork()\n"
	"    if pid==0:\n"
	"        l.settimeout(10)\n"
	"        while True:\n"
	"            try: c,_=l.accept()\n"
	"            except socket.timeout: os._exit(0)\n"
	"            d=c.recv(16)\n"
	"            if d==b'quit': c.close(); os._exit(0)\n"
	"            c.sendall(b'w%d:'%w+d); c.close()\n"
	"    kids.append(pid)\n"
	"l.close()\n"
	"ok=0; by=set()\n"
	"for i in range(N):\n"
	"    s=socket.create_connection(addr); s.sendall(b'%d'%i)\n"
	"    r=s.recv(64); s.close()\n"
	"    if r.endswith(b':%d'%i): ok+=1; by.add(r[:2])\n"
	"for w in kids:\n"
	"    s=socket.create_connection(addr); s.sendall(b'quit'); s.close()\n"
	"for w in kids: os.waitpid(w,0)\n"
	"print('PREFORK OK %d' % ok if ok==N else 'PREFORK BAD %d of %d' % (ok,N), sorted(by))\n";

static void test_python_prefork(void **state)
{
	struct t_state *s = *state;
	char *const argv[] = { (char *)"python3", (char *)"-c", (char *)py_prefork, NULL };
	struct t_prog p;
	struct t_ctr c0;

	t_case_begin(s, &c0);
	t_prog_startv(&p, s->mon.dir, "py-prefork", true, argv);
	t_prog_expect(&p, T_PROG_GUARD_MS, 0);
	if (!t_line(p.out, "PREFORK OK")) {
		t_prog_dump(&p);
		fail_msg("prefork: not every connection was served by a worker");
	}
	t_prog_free(&p);
	t_expect_accelerated(&s->mon, &c0, 42, "python prefork workers");
	t_case_finish(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T_ONCE(test_echo_blocking),
		T_BOTH(test_echo_nonblock),
		T_ONCE(test_echo_select_sendfile),
		T_ONCE(test_echo_duplex_blocking),
		T_ONCE(test_echo_duplex_poll),
		T_ONCE(test_echo_duplex_timeo),
		T_ONCE(test_echo_fork),
		T_ONCE(test_echo_ipv6),
		T_ONCE(test_conns_1000_nonblock),
		T_ONCE(test_conns_1000_blocking),
		T_ONCE(test_socat),
		T_ONCE(test_python_timeout),
		T_ONCE(test_python_lines),
		T_ONCE(test_python_fork_exec),
		T_ONCE(test_python_exec_nomon),
		T_ONCE(test_handoff_hostile),
		T_ONCE(test_python_close_blocked),
		T_ONCE(test_python_prefork),
		T_ONCE(test_eintr),
		T_ONCE(test_epollet),
		T_ONCE(test_python_bulk_64m),
		T_ONCE(test_curl_http),
		T_ONCE(test_preloaded_to_kernel_server),
		T_ONCE(test_kernel_client_to_preloaded_server),
		T_ONCE(test_hybrid_listener),
		T_ONCE(test_epipe),
		T_ONCE(test_refused),
		T_ONCE(test_addrinuse),
		T_ONCE(test_rcvtimeo),
	};

#if defined(IPCD_SANITIZED) && !defined(IPCD_ASAN_RUNTIME)
	fprintf(stderr, "it_preload_accel: skipped in ThreadSanitizer builds "
			"(ThreadSanitizer cannot be preloaded)\n");
	return T_EXIT_SKIP;
#endif
	if (!t_have_prog("python3")) {
		fprintf(stderr, "it_preload_accel: no python3: skipped\n");
		return T_EXIT_SKIP;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
