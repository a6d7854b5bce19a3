/* SPDX-License-Identifier: MIT */
/*
 * it_preload_passthrough.c - real programs under ipcd-run (libipcd.so in
 * pass-through mode), with and without a running monitor:
 *   echo:    python3 TCP echo server and client (two processes), 8 MiB each
 *            way, sha256 checked on both sides;
 *   http:    curl against python3 -m http.server, content compared;
 *   socat:   a socat relay in the middle of the echo (skipped if absent);
 *   fork:    python3 os.fork(), the child uses the parent's socket; with a
 *            monitor the parent exits first and the child's copy must not
 *            keep the parent registered;
 *   closefds: python3 closes fds 3..1023 (before and after registering),
 *            then TCP and fork still work;
 *   visible: ipcdctl processes shows a running preloaded program.
 * Without a monitor: exactly one "ipcd: no monitor" line per process that
 * opened a TCP socket. With one: 0 processes registered once all exited.
 * In an ASan build, ipcd-run puts the ASan runtime first in LD_PRELOAD, so
 * the programs run the sanitized library; ThreadSanitizer builds skip (77).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t_monitor.h"

#ifndef IPCD_RUN_BIN
#error "IPCD_RUN_BIN must name the ipcd-run binary"
#endif

#define NOMON_LINE	"ipcd: no monitor"

static struct t_out out;

/* ---- python programs ------------------------------------------------------ */

/* argv[1]: "direct" or the socat binary (relay between client and server). */
static const char py_echo[] =
	"import socket,subprocess,sys,hashlib,os,threading,re,time\n"
	"N=8<<20\n"
	"srv=r'''\n"
	"import socket,hashlib\n"
	"l=socket.socket(); l.bind(('127.0.0.1',0)); l.listen(1)\n"
	"print(l.getsockname()[1],flush=True)\n"
	"c,_=l.accept(); h=hashlib.sha256(); n=0\n"
	"while True:\n"
	"    b=c.recv(65536)\n"
	"    if not b: break\n"
	"    h.update(b); c.sendall(b); n+=len(b)\n"
	"c.close(); print(n,h.hexdigest(),flush=True)\n"
	"'''\n"
	"p=subprocess.Popen([sys.executable,'-c',srv],stdout=subprocess.PIPE,text=True)\n"
	"port=int(p.stdout.readline())\n"
	"relay=None\n"
	"if sys.argv[1]!='direct':\n"
	"    probe=socket.socket(); probe.bind(('127.0.0.1',0)); rport=probe.getsockname()[1]; probe.close()\n"
	"    relay=subprocess.Popen([sys.argv[1],'TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr'%rport,'TCP:127.0.0.1:%d'%port])\n"
	"    port=rport\n"
	"    for i in range(200):\n"
	"        try: s=socket.create_connection(('127.0.0.1',port)); break\n"
	"        except OSError: time.sleep(0.05)\n"
	"else:\n"
	"    s=socket.create_connection(('127.0.0.1',port))\n"
	"data=os.urandom(N); got=bytearray()\n"
	"def rd():\n"
	"    while True:\n"
	"        b=s.recv(65536)\n"
	"        if not b: break\n"
	"        got.extend(b)\n"
	"t=threading.Thread(target=rd); t.start()\n"
	"s.sendall(data); s.shutdown(socket.SHUT_WR); t.join(60); s.close()\n"
	"n,h=p.stdout.readline().split(); p.wait(60)\n"
	"if relay: relay.wait(60)\n"
	"want=hashlib.sha256(data).hexdigest()\n"
	"ok=int(n)==N and h==want and len(got)==N and hashlib.sha256(got).hexdigest()==want\n"
	"print('ECHO OK' if ok else 'ECHO BAD %s %s %d'%(n,h,len(got)))\n"
	"sys.exit(0 if ok else 1)\n";

/* argv[1]: a directory to serve from. The driver itself opens no TCP socket. */
static const char py_http[] =
	"import subprocess,sys,os,re,filecmp\n"
	"d=sys.argv[1]; f=os.path.join(d,'f.bin'); o=os.path.join(d,'out.bin')\n"
	"open(f,'wb').write(os.urandom(3<<20))\n"
	"p=subprocess.Popen([sys.executable,'-u','-m','http.server','0','--bind','127.0.0.1',"
	"'--directory',d],stdout=subprocess.PIPE,text=True)\n"
	"port=re.search(r'port (\\d+)',p.stdout.readline()).group(1)\n"
	"r=subprocess.run(['curl','-sS','--max-time','30','-o',o,'http://127.0.0.1:%s/f.bin'%port])\n"
	"p.terminate(); p.wait(30)\n"
	"ok=r.returncode==0 and filecmp.cmp(f,o,shallow=False)\n"
	"print('HTTP OK' if ok else 'HTTP BAD')\n"
	"sys.exit(0 if ok else 1)\n";

/*
 * socketpair(AF_UNIX, SOCK_STREAM) corner cases, each printing what it saw:
 * readiness after shutdowns and closes, EPIPE, ECONNRESET after a close with
 * unread data, SCM_RIGHTS (a file, and an accelerated pipe's read end kept
 * working by the receiver) in order with the data, a control buffer too
 * small (MSG_CTRUNC), fds closed by a plain recv. The driver runs the same
 * code in a child with IPCD_PIPES=0 (the kernel's socketpairs: the oracle)
 * and compares.
 */
static const char py_unix[] =
	"import socket,select,signal,os,sys,array,subprocess\n"
	"signal.signal(signal.SIGPIPE,signal.SIG_IGN)\n"
	"def pl(s):\n"
	"    p=select.poll(); p.register(s,select.POLLIN|select.POLLOUT|select.POLLRDHUP)\n"
	"    r=p.poll(0); return hex(r[0][1]) if r else '0'\n"
	"def tr(f):\n"
	"    try: return repr(f())\n"
	"    except OSError as e: return 'errno %d'%e.errno\n"
	"def cases():\n"
	"    o=[]; a,b=socket.socketpair(); o.append(('fresh',pl(a)))\n"
	"    a.shutdown(socket.SHUT_WR); o+=[('shut_wr',pl(a),pl(b)),('send',tr(lambda:a.send(b'y')))]\n"
	"    b.shutdown(socket.SHUT_WR); o.append(('both',pl(a),pl(b)))\n"
	"    a,b=socket.socketpair(); a.close(); o+=[('closed',pl(b)),('recv',tr(lambda:b.recv(9))),('send',tr(lambda:b.send(b'z')))]\n"
	"    a,b=socket.socketpair(); b.shutdown(socket.SHUT_RD); o+=[('shut_rd',pl(a),pl(b)),('send',tr(lambda:a.send(b'q')))]\n"
	"    a,b=socket.socketpair(); a.send(b'x'); b.close(); o+=[('reset',tr(lambda:a.recv(9)),tr(lambda:a.send(b'x')))]\n"
	"    a,b=socket.socketpair(); r,w=os.pipe(); f=os.open('/proc/self/exe',os.O_RDONLY)\n"
	"    a.send(b'before'); a.sendmsg([b'with'],[(socket.SOL_SOCKET,socket.SCM_RIGHTS,array.array('i',[f,r]))]); a.send(b'after')\n"
	"    os.close(r); os.write(w,b'through the passed pipe'); os.close(w)\n"
	"    d1=b.recv(6); d2,anc,fl,_=b.recvmsg(100,socket.CMSG_SPACE(8)); fds=array.array('i'); [fds.frombytes(x[2]) for x in anc]\n"
	"    o+=[('rights',d1,d2,len(fds),fl,os.fstat(fds[0]).st_size==os.stat('/proc/self/exe').st_size,os.read(fds[1],100),os.read(fds[1],100),b.recv(100))]\n"
	/* A read that starts before the data sent with fds goes on into it, and ends after it. */
	"    a.send(b'x1'); a.sendmsg([b'y2'],[(socket.SOL_SOCKET,socket.SCM_RIGHTS,array.array('i',[f]))]); a.send(b'z3')\n"
	"    d,anc,fl,_=b.recvmsg(100,socket.CMSG_SPACE(4)); o+=[('span',d,[len(x[2]) for x in anc],b.recv(100))]\n"
	"    a.send(b'p1'); a.sendmsg([b'q2'],[(socket.SOL_SOCKET,socket.SCM_RIGHTS,array.array('i',[f]))]); a.send(b'r3')\n"
	"    o+=[('span-plain',b.recv(100),b.recv(100))]\n"
	"    a.sendmsg([b'M'],[(socket.SOL_SOCKET,socket.SCM_RIGHTS,array.array('i',[f,f,f]))])\n"
	"    d,anc,fl,_=b.recvmsg(10,socket.CMSG_SPACE(4)); o.append(('ctrunc',d,[len(x[2]) for x in anc],fl&socket.MSG_CTRUNC!=0))\n"
	"    r,w=os.pipe(); a.sendmsg([b'N'],[(socket.SOL_SOCKET,socket.SCM_RIGHTS,array.array('i',[r]))]); os.close(r)\n"
	"    o+=[('plain',b.recv(10)),('epipe',tr(lambda:os.write(w,b'x')))]\n"
	"    return o\n"
	"if sys.argv[1]=='child':\n"
	"    print(repr(cases())); sys.exit(0)\n"
	"mine=repr(cases())\n"
	"k=subprocess.run([sys.executable,'-c',sys.argv[2],'child',''],env=dict(os.environ,IPCD_PIPES='0'),capture_output=True,text=True)\n"
	"if k.stdout.strip()==mine: print('UNIX OK')\n"
	"else: print('UNIX BAD\\nkernel: %s\\nours:   %s\\n%s'%(k.stdout.strip(),mine,k.stderr))\n";

/* The child uses the parent's connected socket; the parent answers and joins. */
static const char py_fork[] =
	"import socket,os,sys\n"
	"l=socket.socket(); l.bind(('127.0.0.1',0)); l.listen(1)\n"
	"c=socket.create_connection(l.getsockname()); a,_=l.accept()\n"
	"pid=os.fork()\n"
	"if pid==0:\n"
	"    c.sendall(b'ping'); r=c.recv(4)\n"
	"    os._exit(0 if r==b'PING' else 3)\n"
	"c.close(); a.settimeout(60)\n"
	"b=a.recv(4); a.sendall(b.upper())\n"
	"st=os.waitpid(pid,0)[1]\n"
	"print('FORK OK' if b==b'ping' and st==0 else 'FORK BAD')\n";

/*
 * argv[1]: ipcdctl, argv[2]: the monitor's socket. Q (registered) forks C,
 * which keeps every inherited fd and blocks; Q exits. The monitor must drop
 * Q although C is alive: C closed its copy of Q's control socket at fork.
 */
static const char py_outlive[] =
	"import subprocess,sys,os,re,time\n"
	"q=r'''\n"
	"import socket,os,sys\n"
	"l=socket.socket(); l.bind(('127.0.0.1',0)); l.listen(1)\n"
	"c=socket.create_connection(l.getsockname()); a,_=l.accept()\n"
	"pid=os.fork()\n"
	"if pid==0:\n"
	"    os.read(int(sys.argv[1]),1); c.sendall(b'x'); os._exit(0)\n"
	"print(pid,flush=True)\n"
	"'''\n"
	"rd,wr=os.pipe()\n"
	"p=subprocess.Popen([sys.executable,'-c',q,str(rd)],stdout=subprocess.PIPE,text=True,pass_fds=(rd,))\n"
	"child=int(p.stdout.readline()); p.wait(30); os.close(rd)\n"
	/* Processes other than this driver (its pipes register it too). */
	"def procs():\n"
	"    o=subprocess.run([sys.argv[1],'-s',sys.argv[2],'--json','processes'],capture_output=True,text=True).stdout\n"
	"    return len([p for p in re.findall(r'\"pid\":(\\d+)',o) if int(p)!=os.getpid()])\n"
	"n=-1\n"
	"for i in range(400):\n"
	"    n=procs()\n"
	"    if n==0: break\n"
	"    time.sleep(0.05)\n"
	"alive=os.path.exists('/proc/%d'%child)\n"
	"os.write(wr,b'g'); os.close(wr)\n"
	"print('OUTLIVE OK' if n==0 and alive else 'OUTLIVE BAD n=%d alive=%s'%(n,alive))\n";

/* A TCP socket (registers), then close 3..1023 (drops the control socket),
 * new sockets reuse those numbers, fork: the child must not close them. */
static const char py_closefds[] =
	"import socket,os,sys\n"
	"if sys.argv[1]=='after': s0=socket.socket()\n"
	"os.closerange(3,1024)\n"
	"l=socket.socket(); l.bind(('127.0.0.1',0)); l.listen(1)\n"
	"c=socket.create_connection(l.getsockname()); a,_=l.accept()\n"
	"pid=os.fork()\n"
	"if pid==0:\n"
	"    c.sendall(b'x'*100); os._exit(0)\n"
	"st=os.waitpid(pid,0)[1]; a.settimeout(30); n=0\n"
	"while n<100:\n"
	"    b=a.recv(100)\n"
	"    if not b: break\n"
	"    n+=len(b)\n"
	"c.sendall(b'y'); ok=a.recv(1)==b'y' and n==100 and st==0\n"
	"print('CLOSEFDS OK' if ok else 'CLOSEFDS BAD')\n";

/* argv[1]: a file; holds a TCP socket until the file exists (bounded). */
static const char py_hold[] =
	"import socket,os,sys,time\n"
	"s=socket.socket(); print('up',flush=True)\n"
	"for i in range(600):\n"
	"    if os.path.exists(sys.argv[1]): break\n"
	"    time.sleep(0.05)\n";

/* ---- helpers ---------------------------------------------------------------- */

static bool have_prog(const char *name)
{
	char *const argv[] = { (char *)"sh", (char *)"-c", (char *)"command -v \"$0\" >/dev/null",
			       (char *)name, NULL };

	t_run(&out, NULL, argv, NULL);
	return out.code == 0;
}

/* The monitor (if @mon) and the environment every preloaded run sees. */
static void env_setup(struct t_state *s, bool mon)
{
	char path[160];

	unsetenv("IPCD_QUIET");
	if (mon) {
		t_mon_start(&s->mon);
		setenv("IPCD_SOCKET", s->mon.sock, 1);
	} else {
		snprintf(path, sizeof(path), "%s/none.sock", s->mon.dir);
		setenv("IPCD_SOCKET", path, 1);
	}
}

/* ipcd-run python3 -c @script @a1 @a2; checks exit 0 and @ok on stdout. */
static void run_py(const char *script, const char *a1, const char *a2, const char *ok)
{
	char *const argv[] = { (char *)IPCD_RUN_BIN, (char *)"python3", (char *)"-c", (char *)script, (char *)a1,
			       (char *)a2, NULL };

	t_run(&out, NULL, argv, NULL);
	if (out.code != 0 || !strstr(out.out, ok))
		fail_msg("exit %d\nstdout:\n%s\nstderr:\n%s", out.code, out.out, out.err);
}

static void expect_lines(bool mon, unsigned int n)
{
	unsigned int got = t_count_str(out.err, NOMON_LINE);

	if (got != (mon ? 0 : n))
		fail_msg("%u \"" NOMON_LINE "\" lines, expected %u:\n%s", got, mon ? 0 : n,
			 out.err);
}

static void expect_none_left(struct t_state *s, bool mon)
{
	if (mon)
		assert_int_equal(t_ctl_wait_num(&s->mon, "status", "processes", 0), 0);
}

/* ---- cases ------------------------------------------------------------------ */

static void do_echo(void **state, bool mon)
{
	struct t_state *s = *state;

	env_setup(s, mon);
	run_py(py_echo, "direct", NULL, "ECHO OK");
	expect_lines(mon, 2);		/* client and server */
	expect_none_left(s, mon);
	T_PASSED(s);
}

static void test_echo_nomon(void **state) { do_echo(state, false); }
static void test_echo_mon(void **state) { do_echo(state, true); }

static void do_http(void **state, bool mon)
{
	struct t_state *s = *state;

#ifdef IPCD_ASAN_RUNTIME
	/*
	 * curl deadlocks in its own setlocale() at start when the ASan runtime
	 * and an ASan-built libipcd.so are preloaded (not with either alone):
	 * not diagnosed yet, see issue #4's note. Release builds run this case.
	 */
	fprintf(stderr, "curl under an ASan-built preload: skipped\n");
	skip();
#endif

	if (!have_prog("curl"))
		skip();
	env_setup(s, mon);
	run_py(py_http, s->mon.dir, NULL, "HTTP OK");
	expect_lines(mon, 2);		/* http.server and curl; not the driver */
	expect_none_left(s, mon);
	T_PASSED(s);
}

static void test_http_nomon(void **state) { do_http(state, false); }
static void test_http_mon(void **state) { do_http(state, true); }

static void do_socat(void **state, bool mon)
{
	struct t_state *s = *state;

	if (!have_prog("socat"))
		skip();
	env_setup(s, mon);
	run_py(py_echo, "socat", NULL, "ECHO OK");
	expect_lines(mon, 3);		/* client, socat, server */
	expect_none_left(s, mon);
	T_PASSED(s);
}

static void test_socat_nomon(void **state) { do_socat(state, false); }
static void test_socat_mon(void **state) { do_socat(state, true); }

static void do_fork_join(void **state, bool mon)
{
	struct t_state *s = *state;

	env_setup(s, mon);
	run_py(py_fork, NULL, NULL, "FORK OK");
	expect_lines(mon, 1);		/* the child inherits the parent's "failed" */
	expect_none_left(s, mon);
	T_PASSED(s);
}

static void test_fork_nomon(void **state) { do_fork_join(state, false); }
static void test_fork_mon(void **state) { do_fork_join(state, true); }

/* A forked child outlives its registered parent: the parent must be dropped. */
static void test_fork_child_outlives(void **state)
{
	struct t_state *s = *state;

	env_setup(s, true);
	run_py(py_outlive, IPCDCTL_BIN, s->mon.sock, "OUTLIVE OK");
	expect_none_left(s, true);
	T_PASSED(s);
}

static void do_closefds(void **state, bool mon)
{
	struct t_state *s = *state;

	env_setup(s, mon);
	run_py(py_closefds, "before", NULL, "CLOSEFDS OK");
	expect_lines(mon, 1);
	run_py(py_closefds, "after", NULL, "CLOSEFDS OK");
	expect_lines(mon, 1);
	expect_none_left(s, mon);
	T_PASSED(s);
}

static void test_closefds_nomon(void **state) { do_closefds(state, false); }
static void test_closefds_mon(void **state) { do_closefds(state, true); }

/* AF_UNIX socketpairs: the kernel's answers (py_unix), and accelerated. */
static void test_unix_pairs(void **state)
{
	struct t_state *s = *state;
	long long before;

	env_setup(s, true);
	before = t_ctl_num(&s->mon, "counters", "socketpairs");
	run_py(py_unix, "parent", py_unix, "UNIX OK");
	if (t_ctl_num(&s->mon, "counters", "socketpairs") < before + 5)
		fail_msg("socketpairs: %lld made through the monitor, expected at least 5 "
			 "(the parent's cases)", t_ctl_num(&s->mon, "counters", "socketpairs") - before);
	expect_none_left(s, true);
	T_PASSED(s);
}

/* ipcdctl processes shows a running preloaded program, and 0 after it exits. */
static void test_visible(void **state)
{
	struct t_state *s = *state;
	char flag[160];
	pid_t pid;
	int fd;

	env_setup(s, true);
	snprintf(flag, sizeof(flag), "%s/go", s->mon.dir);
	pid = t_fork(90);
	if (pid == 0) {
		char *const argv[] = { (char *)IPCD_RUN_BIN, (char *)"python3", (char *)"-c", (char *)py_hold, flag, NULL };

		fd = open("/dev/null", O_WRONLY);
		if (fd >= 0)
			dup2(fd, 1);
		execv(argv[0], argv);
		_exit(127);
	}
	/*
	 * python3 may be a wrapper script whose shell registers first (its
	 * pipes): wait for python3 itself, as long as T_WAIT_MS allows.
	 */
	for (fd = 0; fd < T_WAIT_MS / 50; fd++) {
		assert_int_equal(t_ctl(&s->mon, &out, false, "processes"), 0);
		if (strstr(out.out, "python3"))
			break;
		usleep(50 * 1000);
	}
	if (!strstr(out.out, "python3"))
		fail_msg("ipcdctl processes does not show python3:\n%s", out.out);
	fd = open(flag, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(t_wait(pid, T_WAIT_MS), 0);
	expect_none_left(s, true);
	T_PASSED(s);
}

/* ipcd-run itself: a missing command exits 127 like a shell, usage 2. */
static void test_run_errors(void **state)
{
	struct t_state *s = *state;
	char *const missing[] = { (char *)IPCD_RUN_BIN, (char *)"--",
				      (char *)"ipcd-no-such-command", NULL };
	char *const none[] = { (char *)IPCD_RUN_BIN, NULL };

	t_run(&out, NULL, missing, NULL);
	assert_int_equal(out.code, 127);
	assert_non_null(strstr(out.err, "ipcd-no-such-command"));
	t_run(&out, NULL, none, NULL);
	assert_int_equal(out.code, 2);
	T_PASSED(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T_ONCE(test_run_errors),
		T_ONCE(test_echo_nomon),
		T_ONCE(test_echo_mon),
		T_ONCE(test_http_nomon),
		T_ONCE(test_http_mon),
		T_ONCE(test_socat_nomon),
		T_ONCE(test_socat_mon),
		T_ONCE(test_fork_nomon),
		T_ONCE(test_fork_mon),
		T_ONCE(test_fork_child_outlives),
		T_ONCE(test_closefds_nomon),
		T_ONCE(test_closefds_mon),
		T_ONCE(test_visible),
		T_ONCE(test_unix_pairs),
	};

#if defined(IPCD_SANITIZED) && !defined(IPCD_ASAN_RUNTIME)
	fprintf(stderr, "it_preload_passthrough: skipped in ThreadSanitizer builds "
			"(ThreadSanitizer cannot be preloaded)\n");
	return T_EXIT_SKIP;
#endif
	if (!have_prog("python3")) {
		fprintf(stderr, "it_preload_passthrough: no python3: skipped\n");
		return T_EXIT_SKIP;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
