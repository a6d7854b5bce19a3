/* SPDX-License-Identifier: MIT */
/*
 * it_real_memcached.c - memcached (4 worker threads, -I 2m) from Debian,
 * unmodified, with clients that store and verify data: python3 speaking the
 * text protocol, and libmemcached-tools (memccp, memccat, memcslap). Each
 * scenario on the kernel and then all under ipcd-run (issue #5 item 6).
 *
 * Cases (each starts its own memcached on its own port, no UDP):
 *   - python: 4 threads, a connection each, set/get of values of 0 B to
 *     1 MiB (deterministic bytes, random.Random(key)), one request at a
 *     time, then a multi-get of all of them, then everything again
 *     pipelined (all sets sent before reading a reply, then all gets); then
 *     32 connections open at once, each storing and reading its own value.
 *     Every byte and the flags of every value are checked, and the values'
 *     sha256 printed;
 *   - tools: memccp stores files of 1 B, 4 KiB, 64 KiB and 1 MiB (one
 *     connection for all), memccat --file reads each back (a connection
 *     each): byte-exact, with checksums;
 *   - slap: memcslap, 16 threads, set then get (text protocol), and get
 *     with the binary protocol: exit 0 and no error reported (it exits 0
 *     even when its requests time out, so its stderr is checked too).
 * Preloaded, the monitor must have accelerated every connection (no
 * fallback); on the kernel it must have seen none. Then nothing is left
 * behind.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "t_real.h"

#define SLAP_THREADS	16

/*
 * argv: PORT. Prints "MC OK ..." and exits 0 when every value came back
 * intact; exits 1 with the first problem otherwise.
 */
static const char py_client[] =
	"import socket,sys,random,hashlib,threading\n"
	"port=int(sys.argv[1])\n"
	"SIZES=[0,1,100,1023,1024,4096,65535,65536,100000,524288,1000000,1048576]\n"
	"def val(key,n): return random.Random(key).randbytes(n)\n"
	"class Conn:\n"
	"    def __init__(s):\n"
	"        s.s=socket.create_connection(('127.0.0.1',port),timeout=30); s.buf=b''\n"
	"    def fill(s):\n"
	"        d=s.s.recv(1<<20)\n"
	"        if not d: raise Exception('EOF from memcached')\n"
	"        s.buf+=d\n"
	"    def line(s):\n"
	"        while b'\\r\\n' not in s.buf: s.fill()\n"
	"        l,s.buf=s.buf.split(b'\\r\\n',1); return l\n"
	"    def exact(s,n):\n"
	"        while len(s.buf)<n: s.fill()\n"
	"        r,s.buf=s.buf[:n],s.buf[n:]; return r\n"
	"    def set_cmd(s,key,flags,v):\n"
	"        return b'set %s %d 0 %d\\r\\n'%(key.encode(),flags,len(v))+v+b'\\r\\n'\n"
	"    def stored(s,key):\n"
	"        l=s.line()\n"
	"        if l!=b'STORED': raise Exception('set %s: %r'%(key,l))\n"
	"    def values(s):\n"
	"        got={}\n"
	"        while True:\n"
	"            l=s.line()\n"
	"            if l==b'END': return got\n"
	"            w=l.split()\n"
	"            if len(w)!=4 or w[0]!=b'VALUE': raise Exception('get: %r'%l)\n"
	"            d=s.exact(int(w[3])+2)\n"
	"            if d[-2:]!=b'\\r\\n': raise Exception('get %s: no CRLF after the data'%w[1])\n"
	"            got[w[1].decode()]=(int(w[2]),d[:-2])\n"
	"def check(got,key,flags,n,what):\n"
	"    if key not in got: raise Exception('%s %s: missing'%(what,key))\n"
	"    f,v=got[key]; want=val(key,n)\n"
	"    if f!=flags:\n"
	"        raise Exception('%s %s: flags %d, expected %d'%(what,key,f,flags))\n"
	"    if v!=want:\n"
	"        m=min(len(v),len(want)); i=next((i for i in range(m) if v[i]!=want[i]),m)\n"
	"        raise Exception('%s %s: %d bytes, expected %d, first difference at %d'"
	"%(what,key,len(v),n,i))\n"
	"    return hashlib.sha256(v).digest()\n"
	"errors=[]; digests={}; lock=threading.Lock()\n"
	"def worker(t):\n"
	"    try:\n"
	"        c=Conn(); h=hashlib.sha256(); nb=0\n"
	"        keys=[('t%d-one-%d'%(t,n),t*100+i,n) for i,n in enumerate(SIZES)]\n"
	"        for key,flags,n in keys:\n"
	"            c.s.sendall(c.set_cmd(key,flags,val(key,n))); c.stored(key)\n"
	"            c.s.sendall(b'get %s\\r\\n'%key.encode())\n"
	"            h.update(check(c.values(),key,flags,n,'get')); nb+=n\n"
	"        c.s.sendall(b'get '+b' '.join(k.encode() for k,_,_ in keys)+b'\\r\\n')\n"
	"        got=c.values()\n"
	"        if len(got)!=len(keys):\n"
	"            raise Exception('multi-get: %d values of %d'%(len(got),len(keys)))\n"
	"        for key,flags,n in keys: check(got,key,flags,n,'multi-get')\n"
	"        keys=[('t%d-pipe-%d'%(t,n),t*100+50+i,n) for i,n in enumerate(SIZES)]\n"
	"        c.s.sendall(b''.join(c.set_cmd(k,f,val(k,n)) for k,f,n in keys))\n"
	"        for key,_,_ in keys: c.stored(key)\n"
	"        c.s.sendall(b''.join(b'get %s\\r\\n'%k.encode() for k,_,_ in keys))\n"
	"        for key,flags,n in keys:\n"
	"            h.update(check(c.values(),key,flags,n,'pipelined get')); nb+=n\n"
	"        c.s.sendall(b'quit\\r\\n'); c.s.settimeout(30)\n"
	"        if c.s.recv(1)!=b'': raise Exception('data after quit')\n"
	"        c.s.close()\n"
	"        with lock: digests[t]=(h.hexdigest(),nb)\n"
	"    except Exception as e:\n"
	"        with lock: errors.append('thread %d: %r'%(t,e))\n"
	"ts=[threading.Thread(target=worker,args=(t,)) for t in range(4)]\n"
	"for t in ts: t.start()\n"
	"for t in ts: t.join(50)\n"
	"if any(t.is_alive() for t in ts): errors.append('a thread still runs after 50 s')\n"
	"if errors: print('MC FAIL', *errors, sep='\\n', flush=True); sys.exit(1)\n"
	"many=[Conn() for i in range(32)]\n"
	"for i,c in enumerate(many):\n"
	"    c.s.sendall(c.set_cmd('many-%d'%i,i,val('many-%d'%i,1000+i)))\n"
	"for i,c in enumerate(many): c.stored('many-%d'%i)\n"
	"for i,c in enumerate(many): c.s.sendall(b'get many-%d\\r\\n'%i)\n"
	"for i,c in enumerate(many): check(c.values(),'many-%d'%i,i,1000+i,'get')\n"
	"for c in many: c.s.close()\n"
	"for t in sorted(digests):\n"
	"    print('thread %d: %d bytes sha256 %s'%(t,digests[t][1],digests[t][0]))\n"
	"print('MC OK threads=4 values=%d many=32'%(4*2*len(SIZES)),flush=True)\n";

/* One memcached of a case. */
struct mc {
	struct t_prog srv;
	unsigned int port;
	char servers[64];
};

static void mc_start(struct t_real *r, struct mc *mc)
{
	const char *bin = t_real_find("memcached");
	char port[16];

	memset(mc, 0, sizeof(*mc));
	mc->port = t_real_free_port();
	snprintf(port, sizeof(port), "%u", mc->port);
	snprintf(mc->servers, sizeof(mc->servers), "--servers=127.0.0.1:%u", mc->port);
	{
		char *const argv[] = { (char *)bin, (char *)"-t", (char *)"4", (char *)"-p", port,
				       (char *)"-U", (char *)"0", (char *)"-l",
				       (char *)"127.0.0.1", (char *)"-I", (char *)"2m",
				       (char *)"-m", (char *)"256", (char *)"-c", (char *)"1024",
				       (char *)"-u", (char *)"root", (char *)"-v", NULL };

		t_prog_startv(&mc->srv, r->t.mon.dir, "memcached", r->preload, argv);
	}
	t_real_wait_listen(r, mc->port, &mc->srv);
	fprintf(stderr, "memcached pid %d on 127.0.0.1:%u\n", (int)mc->srv.pid, mc->port);
}

/* SIGTERM: memcached exits 0. */
static void mc_stop(struct mc *mc)
{
	kill(mc->srv.pid, SIGTERM);
	t_prog_expect(&mc->srv, T_REAL_STOP_MS, 0);
	t_prog_free(&mc->srv);
}

/* ---- python3, text protocol ------------------------------------------------ */

static void test_mc_python(void **state)
{
	struct t_real *r = *state;
	char port[16];
	struct t_prog p;
	const char *out;
	struct mc mc;

	t_real_begin(r);
	mc_start(r, &mc);
	snprintf(port, sizeof(port), "%u", mc.port);
	{
		char *const argv[] = { (char *)t_real_find("python3"), (char *)"-c",
				       (char *)py_client, port, NULL };

		out = t_real_run(r, &p, "py-client", argv, NULL, NULL, T_REAL_LOAD_MS);
	}
	fprintf(stderr, "%s", out);
	if (!t_line(out, "MC OK")) {
		t_prog_dump(&p);
		fail_msg("python3 client: no MC OK line (output above)");
	}
	t_prog_free(&p);
	mc_stop(&mc);
	t_real_finish(r, 4 + 32, "memcached + python3");
}

/* ---- memccp, memccat ----------------------------------------------------------- */

static const size_t sizes[] = { 1, 4096, 65536, 1 << 20 };
#define N_SIZES		(sizeof(sizes) / sizeof(sizes[0]))

static void test_mc_tools(void **state)
{
	struct t_real *r = *state;
	const char *dir = r->t.mon.dir;
	char src[N_SIZES][200], got[200], name[64], opt[240], label[96];
	const char *memccp = t_real_find("memccp"), *memccat = t_real_find("memccat");
	struct t_prog p;
	struct mc mc;

	t_real_begin(r);
	mc_start(r, &mc);
	for (size_t i = 0; i < N_SIZES; i++) {
		snprintf(src[i], sizeof(src[i]), "%s/mc-%zu.bin", dir, sizes[i]);
		t_real_make_file(src[i], sizes[i], 31 + (uint32_t)i);
	}
	{
		/* the key of each is its basename */
		char *const argv[] = { (char *)memccp, mc.servers, src[0], src[1], src[2], src[3],
				       NULL };

		t_real_run(r, &p, "memccp", argv, NULL, NULL, T_REAL_CLIENT_MS);
		t_prog_free(&p);
	}
	for (size_t i = 0; i < N_SIZES; i++) {
		snprintf(name, sizeof(name), "mc-%zu.bin", sizes[i]);
		snprintf(got, sizeof(got), "%s/got-%zu.bin", dir, sizes[i]);
		snprintf(opt, sizeof(opt), "--file=%s", got);
		snprintf(label, sizeof(label), "memccat-%zu", sizes[i]);
		{
			char *const argv[] = { (char *)memccat, mc.servers, opt, name, NULL };

			t_real_run(r, &p, label, argv, NULL, NULL, T_REAL_CLIENT_MS);
			t_prog_free(&p);
		}
		snprintf(label, sizeof(label), "memccp + memccat %s", name);
		t_real_expect_same(src[i], got, label);
		unlink(got);
	}
	mc_stop(&mc);
	t_real_finish(r, 1 + N_SIZES, "memcached + memccp/memccat");
}

/* ---- memcslap --------------------------------------------------------------------- */

/* memcslap exits 0 even when requests fail: its stderr must not report any. */
static void slap(struct t_real *r, struct mc *mc, const char *label, const char *test, bool binary)
{
	char *argv[8];
	struct t_prog p;
	const char *out;
	char *err;
	int n = 0;
	FILE *f;

	argv[n++] = (char *)t_real_find("memcslap");
	argv[n++] = mc->servers;
	argv[n++] = (char *)"--concurrency=16";
	argv[n++] = (char *)"--execute-number=2000";
	argv[n++] = (char *)test;
	if (binary)
		argv[n++] = (char *)"--binary";
	argv[n] = NULL;
	out = t_real_run(r, &p, label, argv, NULL, NULL, T_REAL_LOAD_MS);
	fprintf(stderr, "%s (%s):\n%s", label, r->what, out);
	f = fopen(p.err_path, "re");
	err = calloc(1, 65536);
	if (!err)
		fail_msg("out of memory");
	if (f) {
		size_t len = fread(err, 1, 65535, f);

		err[len] = '\0';
		fclose(f);
	}
	if (strcasestr(err, "error") || strcasestr(err, "timeout") || !strstr(out, "Time to")) {
		t_prog_dump(&p);
		free(err);
		fail_msg("%s: memcslap reported failures (output above)", label);
	}
	free(err);
	t_prog_free(&p);
}

static void test_mc_slap(void **state)
{
	struct t_real *r = *state;
	struct mc mc;

	t_real_begin(r);
	mc_start(r, &mc);
	slap(r, &mc, "memcslap-set", "--test=set", false);
	slap(r, &mc, "memcslap-get", "--test=get", false);
	slap(r, &mc, "memcslap-get-binary", "--test=get", true);
	mc_stop(&mc);
	t_real_finish(r, 3 * SLAP_THREADS, "memcached + memcslap");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T_REAL_BOTH(test_mc_python),
		T_REAL_BOTH(test_mc_tools),
		T_REAL_BOTH(test_mc_slap),
	};

	T_REAL_RUN("it_real_memcached", tests);
}
