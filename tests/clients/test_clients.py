"""Real clients from Debian's packages, each run once without and once with
the shim (the `shim` parameter), against a server of its own:

  redis-benchmark -k 0 (a new connection per request)   vs redis-server
  python3 requests.get loop (a new Session per request)  vs nginx; also against
      nginx closing after 10 requests, or after 1 s idle
  httperf --num-calls 1                                 vs nginx
  curl with several URLs in one process                 vs nginx; also with
      'Connection: close' and --http1.0 (the server closes every connection)
  psql (authentication, session state, \\connect)        vs postgres

Each asserts that the client succeeded with the right results and, where
pooling applies, how many connections the server accepted."""
import filecmp
import re
import time

import pytest

from conftest import PY, PROGRAMS, Checks, need, need_python_module, record

SHIM = [pytest.param(False, id="plain"), pytest.param(True, id="shim")]


def label(shim):
    return "shim=yes" if shim else "shim=no"


# --- redis-benchmark ----------------------------------------------------------

@pytest.mark.parametrize("shim", SHIM)
@pytest.mark.parametrize("c", [pytest.param(1, id="c1"), pytest.param(4, id="c4")])
def test_redis_benchmark(request, redis, clients, c, shim):
    """redis-benchmark -k 0 -c C -n 2000 -t set,get: a new connection per request."""
    need("redis-server", "redis-benchmark", probe=["redis-benchmark", "--version"])
    n = 2000
    srv = redis()
    res = clients.run(["redis-benchmark", "-h", "127.0.0.1", "-p", srv.port, "-k", "0",
                       "-c", c, "-n", n, "-t", "set,get", "-q"], shim)
    conns, cmds = srv.accepted(), srv.commands()
    out = res.out.replace("\r", "\n")
    lines = re.findall(r"^(?:SET|GET): [0-9.]+ requests per second.*$", out, re.M)
    record(request, f"redis-benchmark -k 0 -c {c} -t set,get", res, cmds, conns)
    check = Checks()
    check.eq(res.rc, 0, "exit status")
    check.eq(len(lines), 2, "SET and GET 'requests per second' lines")
    check(not re.search(r"error|refused|reset", out, re.I), "error output: " + out[-300:])
    # the server saw all 2 x n commands (plus redis-benchmark's CONFIG GETs)
    check.ge(cmds, 2 * n, "commands the server processed")
    check.eq(srv.cmd("DBSIZE"), 1, "DBSIZE")
    val = srv.cmd("GET", "key:__rand_int__")
    check(isinstance(val, str) and len(val) == 3, f"GET key:__rand_int__ = {val!r}, a 3-byte value")
    if shim:
        check.le(conns, 10, "connections accepted")
        check.loaded(res)
    else:
        check.ge(conns, 2 * n, "connections accepted")
    check.add_context(res.describe())
    check.done()


# --- python3 requests ---------------------------------------------------------

@pytest.mark.parametrize("shim", SHIM)
@pytest.mark.parametrize("case,n,pause,nginx_opts,max_with_shim", [
    pytest.param("python3 requests.get x500", 500, 0, {}, 2, id="x500"),
    # nginx closes each connection after its 10th response (Connection: close):
    # the shim must see the close and never hand such a connection out
    pytest.param("python3 requests x100, keepalive_requests 10", 100, 0,
                 {"keepalive_requests": 10}, 10, id="keepalive_requests_10"),
    # idle longer than nginx's keepalive_timeout (1 s): every pooled connection
    # is closed by nginx while idle, so it must be dropped at checkout
    pytest.param("python3 requests x4, 1.3 s apart, ka 1s", 4, 1.3,
                 {"keepalive_timeout": "1s"}, 4, id="idle_past_keepalive_timeout"),
])
def test_python_requests(request, nginx, clients, case, n, pause, nginx_opts, max_with_shim, shim):
    """requests.get() in a loop, a new Session (so a new connection) each time."""
    need_python_module("requests")
    srv = nginx(**nginx_opts)
    mark = srv.mark()
    res = clients.run([PY, PROGRAMS / "get_loop.py", f"http://127.0.0.1:{srv.port}", n,
                       srv.html, pause], shim)
    reqs, conns = srv.count(mark, n)
    record(request, case, res, reqs, conns)
    check = Checks()
    check.eq(res.rc, 0, "exit status")
    check.eq(res.out.strip(), f"ok {n}", "correct responses")
    check.eq(reqs, n, "requests nginx logged")
    if shim:
        check.le(conns, max_with_shim, "connections")
        check.loaded(res)
    else:
        check.eq(conns, n, "connections")
    check.add_context(res.describe())
    check.done()


# --- httperf --------------------------------------------------------------------

@pytest.mark.parametrize("shim", SHIM)
def test_httperf(request, nginx, clients, shim):
    """httperf --num-conns 500 --num-calls 1: a new connection per request."""
    need("httperf", probe=["httperf", "--version"])
    n = 500
    srv = nginx()
    mark = srv.mark()
    res = clients.run(["httperf", "--server", "127.0.0.1", "--port", srv.port, "--uri", "/",
                       "--num-conns", n, "--num-calls", 1, "--timeout", 10], shim)
    reqs, conns = srv.count(mark, n)
    record(request, "httperf --num-conns 500 --num-calls 1", res, reqs, conns)
    out = res.out
    check = Checks()
    check.eq(res.rc, 0, "exit status")
    check(re.search(r"^Errors: total 0 ", out, re.M), "httperf errors: " +
          ";".join(re.findall(r"^Errors: total.*$", out, re.M)))
    check(re.search(rf"^Total: connections {n} requests {n} replies {n} ", out, re.M),
          "httperf totals: " + ";".join(re.findall(r"^Total:.*$", out, re.M)))
    check(re.search(rf"^Reply status: 1xx=0 2xx={n} ", out, re.M),
          "2xx replies: " + ";".join(re.findall(r"^Reply status:.*$", out, re.M)))
    check.eq(reqs, n, "requests nginx logged")
    if shim:
        check.le(conns, 2, "connections")
        check.loaded(res)
    else:
        check.eq(conns, n, "connections")
    check.add_context(res.describe(), out[-600:])
    check.done()


# --- curl, several URLs in one process --------------------------------------------

CURL_PATHS = ["/", "/a.txt", "/big.bin", "/", "/a.txt", "/big.bin", "/index.html", "/a.txt"]
CURL_FILES = ["index.html", "a.txt", "big.bin", "index.html", "a.txt", "big.bin", "index.html",
              "a.txt"]


@pytest.mark.parametrize("shim", SHIM)
@pytest.mark.parametrize("case,n,expect,args", [
    # curl's own keep-alive: one connection for all transfers
    pytest.param("curl 8 URLs (curl reuses itself)", 8, 1, [], id="8_urls"),
    # The server closes after every response, so nothing can be pooled; the
    # shim must not break it.  Many URLs, because the hazard is a race: curl
    # closes and connects again before nginx's FIN has arrived, so the pooled
    # connection still looks healthy at checkout, then gets reset.
    pytest.param("curl 100 URLs -H 'Connection: close'", 100, "n",
                 ["-H", "Connection: close"], id="connection_close"),
    pytest.param("curl 100 URLs --http1.0", 100, "n", ["--http1.0"], id="http1.0"),
    # parallel transfers over up to 3 connections
    pytest.param("curl 8 URLs -Z --parallel-max 3", 8, "any", ["-Z", "--parallel-max", "3"],
                 id="parallel"),
])
def test_curl(request, nginx, clients, case, n, expect, args, shim):
    """One curl process fetching N URLs (small, tiny and 256 KiB files in turn),
    every body compared.  expect: the connections, "n" (one per URL) or "any"
    (at most N).  curl's exit status only reflects the last transfer."""
    need("curl", probe=["curl", "--version"])
    srv = nginx()
    outdir = clients.dir / "curl.o"
    outdir.mkdir()
    urls = []
    for i in range(n):
        urls += ["-o", outdir / str(i), f"http://127.0.0.1:{srv.port}{CURL_PATHS[i % 8]}"]
    mark = srv.mark()
    res = clients.run(["curl", "-sS", "--fail", "--max-time", "20", *args, *urls], shim)
    reqs, conns = srv.count(mark, n)
    record(request, case, res, reqs, conns)
    bad = sum(1 for i in range(n)
              if not (outdir / str(i)).exists()
              or not filecmp.cmp(outdir / str(i), srv.html / CURL_FILES[i % 8], shallow=False))
    check = Checks()
    check.eq(res.rc, 0, "exit status")
    check.eq(bad, 0, f"transfers of {n} failed or wrong")
    check.eq(reqs, n, "requests nginx logged")
    if expect == "any":
        check.le(conns, n, "connections")
    else:
        check.eq(conns, n if expect == "n" else expect, "connections")
    check.loaded(res)
    check.add_context(res.describe())
    check.done()


# --- psql ------------------------------------------------------------------------

def psql(srv):
    return ["psql", "-X", "-q", "-At", "-h", "127.0.0.1", "-p", srv.port, "-U", "postgres",
            "-d", "postgres", "-v", "ON_ERROR_STOP=1"]


@pytest.mark.parametrize("shim", SHIM)
def test_psql_processes(request, postgres, clients, shim):
    """20 psql processes, one `select` each (nothing is shared between processes)."""
    need("psql", probe=["psql", "--version"])
    n = 20
    srv = postgres()
    check = Checks()
    bad, total_ms, lines, stats = 0, 0, 0, {}
    for i in range(n):
        res = clients.run(psql(srv) + ["-c", f"select {i} + 1000"], shim)
        total_ms += res.ms
        lines += res.stats_lines
        for k, v in res.stats.items():
            stats[k] = stats.get(k, 0) + v
        if res.rc != 0 or res.out.strip() != str(i + 1000):
            bad += 1
            if bad == 1:
                check.add_context(f"psql {i}: out={res.out.strip()!r}", res.describe())
            if res.rc is None or res.rc < 0 or res.rc >= 124:
                bad += n - i - 1  # a hang would repeat 20 times: stop after the first
                break
    res.ms, res.stats = total_ms, stats  # for the table: all 20 processes
    time.sleep(0.2)
    conns, stmts = srv.counts()
    record(request, f"psql -c 'select N' x{n} ({n} processes)", res, stmts, conns)
    check.eq(bad, 0, f"psql runs of {n} wrong")
    check.eq(conns, n, "connections")
    check.eq(stmts, n, "statements")
    if shim:
        check.eq(lines, n, "POOLSHIM_STATS lines (one per process)")
    check.done()


@pytest.mark.parametrize("shim", SHIM)
def test_psql_session(request, postgres, clients, shim):
    """One psql session: many statements, session state, and \\connect (a new
    connection in the same process: the old one must not come back with its
    SET state or its temp table)."""
    need("psql", probe=["psql", "--version"])
    srv = postgres()
    sql = ["create temp table t (i int);"]
    sql += [f"insert into t values ({i});" for i in range(1, 41)]
    sql += ["select count(*), sum(i) from t;",
            "set application_name = 'poolshim_a';",
            "show application_name;",
            "\\connect",
            "show application_name;",
            "select to_regclass('pg_temp.t') is null;",
            "set application_name = 'poolshim_b';",
            "\\connect",
            "show application_name;",
            "select pg_backend_pid() > 0;"]
    script = clients.dir / "session.sql"
    script.write_text("\n".join(sql) + "\n")
    statements = sum(1 for s in sql if not s.startswith("\\"))
    expected = ["40|820", "poolshim_a", "psql", "t", "psql", "t"]
    res = clients.run(psql(srv) + ["-f", script], shim)
    time.sleep(0.2)
    conns, stmts = srv.counts()
    record(request, f"psql -f: {statements} statements, 2x \\connect", res, stmts, conns)
    out = [line for line in res.out.splitlines() if not line.startswith("You are now connected")]
    check = Checks()
    check.eq(res.rc, 0, "exit status")
    check.eq(out, expected, "output")
    check.eq(conns, 3, "connections")
    check.eq(stmts, statements, "statements")
    check.loaded(res)
    check.add_context(res.describe())
    check.done()
