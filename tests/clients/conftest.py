"""The clients suite: real, unmodified clients against real servers, each run
without and with libpoolshim.so preloaded (into the CLIENT only: servers are
started with LD_PRELOAD removed from their environment).

One fixture per server.  Each fixture is a factory: calling it starts a new
instance on a free loopback port, in a temporary directory of its own, and
the fixture stops every instance it started when the test ends (by PID only,
every wait bounded).  Each server can say how many connections it accepted:

  nginx       the access log with `$connection` as its only field (requests,
              and the distinct connections that carried them), and
              stub_status's `accepts` (every accepted connection)
  redis       INFO stats total_connections_received
  memcached   stats total_connections
  postgres    log_connections and log_statement lines in its log
  servers.py  (python http.server and the small custom servers) their own
              counters in stats.json

In all of them the fixture's own connections (readiness probes, the queries
that read the counters) are left out of the counts.

Environment (set by tests/clients/meson.build):
  POOLSHIM_LIB             the library to preload (default: build/shim/)
  POOLSHIM_PRELOAD_PREFIX  put in front of it in LD_PRELOAD: libasan.so in an
                           ASan build
  CLIENTS_BUDGET           seconds after which no further client is started
                           (default 480; meson's timeout is 600)
"""
import contextlib
import ctypes
import http.client
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
PROGRAMS = HERE / "programs"
# the client programs' RESP helpers serve the fixtures too
sys.path.insert(0, str(PROGRAMS))
from resp_wire import RespReader, resp_encode  # noqa: E402
SERVERS_PY = HERE / "servers.py"
LIB = os.environ.get("POOLSHIM_LIB") or str(HERE.parent.parent / "build" / "shim" / "libpoolshim.so")
PREFIX = os.environ.get("POOLSHIM_PRELOAD_PREFIX", "").strip()
# The interpreter running pytest runs the Python clients too: meson starts
# Debian's /usr/bin/python3, which has python3-requests.
PY = sys.executable
CLIENT_TIMEOUT = 30  # seconds, per client process
BUDGET = float(os.environ.get("CLIENTS_BUDGET", "480"))
START_TIMEOUT = 15   # seconds for a server to come up
T0 = time.monotonic()


# --- the marker for the protocol cases ------------------------------------------

def pytest_configure(config):
    config.addinivalue_line(
        "markers", "needs_protocols: a case of the protocol tracker (issue 10): "
        "select or leave them out with -m")
    # meson ends a test that runs out of time with SIGTERM: stop the servers
    # then, as at the end of each test
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)


# --- processes ----------------------------------------------------------------

def _stat_fields(pid):
    """/proc/PID/stat's fields after the command name, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def children(pid):
    """(pid, start time) of every child of pid, from /proc."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat_fields(name)
            if st and int(st[1]) == pid:
                out.append((int(name), st[19]))
    return out


def descendants(pid):
    out = []
    for child in children(pid):
        out.append(child)
        out.extend(descendants(child[0]))
    return out


def kill_exact(pids, sig=signal.SIGKILL):
    """Signals each (pid, start time) that is still that same process."""
    for pid, start in pids:
        st = _stat_fields(pid)
        if st and st[19] == start:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)


def wait_until(pred, timeout, interval=0.05):
    """Calls pred until it returns something true or timeout seconds pass;
    returns its last value."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(interval)


_PR_SET_PDEATHSIG = 1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover
    _libc = None


def _die_with_pytest():
    # best effort: a server whose parent (this pytest) is killed outright
    # goes too; a change of user (setpriv, for postgres) clears it
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env():
    """The environment for servers and clients: no preload, no POOLSHIM_*
    variable of the caller's."""
    env = {k: v for k, v in os.environ.items()
           if k != "LD_PRELOAD" and not k.startswith("POOLSHIM_")}
    env["LC_ALL"] = "C"
    if PREFIX:
        # Uninstrumented clients (python, psql, ...) leak at exit by design;
        # only crashes and memory errors in the shim are of interest here.
        env.setdefault("ASAN_OPTIONS", "detect_leaks=0")
    return env


def tail(path, n=15):
    try:
        lines = pathlib.Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    | " + line for line in lines[-n:])


def mkworkdir(name):
    d = pathlib.Path(tempfile.mkdtemp(prefix=f"poolshim-{name}-"))
    d.chmod(0o755)  # nginx workers and postgres read below it
    return d


# --- servers ------------------------------------------------------------------

_live = []           # every server running,
_live_clients = []   # every client process running,
_live_dirs = set()   # and the clients' work dirs, for the signal handler


def _on_signal(signum, frame):
    for p in list(_live_clients):
        if p.poll() is None:
            kill_exact(descendants(p.pid))
            with contextlib.suppress(OSError):
                p.kill()
    for srv in list(_live):
        srv.stop(timeout=3)
    for d in list(_live_dirs):
        shutil.rmtree(d, ignore_errors=True)
    os._exit(128 + signum)


class Server:
    """A server process in a directory of its own; stop() ends it by PID."""
    name = "server"
    stop_signal = signal.SIGTERM

    def __init__(self):
        self.dir = mkworkdir(self.name)
        self.proc = None
        self.port = None
        self.log = self.dir / "stdout.log"
        self.extra_pids = []  # (pid, start) of children to kill if they outlive it

    def spawn(self, argv, cwd=None):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(argv, cwd=cwd or self.dir, env=clean_env(),
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT,
                                         preexec_fn=_die_with_pytest)
        _live.append(self)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, probe, what):
        def ready():
            if not self.running():
                return "exited"
            try:
                return probe()
            except OSError:
                return False
        r = wait_until(ready, START_TIMEOUT, 0.1)
        if r is True or (r and r != "exited"):
            return
        msg = f"{what} did not start ({'it exited' if r == 'exited' else 'timed out'}):\n"
        self.stop()
        raise RuntimeError(msg + self.logs())

    def logs(self):
        return tail(self.log)

    def stop(self, timeout=10):
        if self.proc is not None:
            pids = self.extra_pids + descendants(self.proc.pid)
            if self.proc.poll() is None:
                with contextlib.suppress(OSError):
                    self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(5)
            kill_exact(pids)
            self.proc = None
        if self in _live:
            _live.remove(self)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def _servers():
    started = []
    yield started
    for srv in reversed(started):
        srv.stop()


def _factory(started, cls):
    def start(*args, **kwargs):
        srv = cls(*args, **kwargs)
        started.append(srv)
        srv.start()
        return srv
    return start


def http_get(port, path, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


# nginx ------------------------------------------------------------------------

class Nginx(Server):
    """nginx with a docroot (index.html, a.txt, big.bin of 256 KiB random
    bytes), POST /post answered by `return 200`, and stub_status at
    /nginx_status.  keepalive_timeout and keepalive_requests as given."""
    name = "nginx"
    stop_signal = signal.SIGTERM  # fast shutdown

    def __init__(self, keepalive_timeout="15s", keepalive_requests=100000):
        super().__init__()
        self.keepalive_timeout = keepalive_timeout
        self.keepalive_requests = keepalive_requests
        self.html = self.dir / "html"
        self.access_log = self.dir / "access.log"
        self.status_calls = 0
        self.base_accepts = 0

    def start(self):
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.access(binary, os.X_OK):
            pytest.skip("nginx is not installed")
        d = self.dir
        (d / "tmp").mkdir()
        self.html.mkdir()
        self.html.chmod(0o755)
        (self.html / "index.html").write_text("poolshim clients test: small body\n")
        (self.html / "a.txt").write_text("a\n")
        (self.html / "big.bin").write_bytes(os.urandom(262144))  # many segments
        for f in self.html.iterdir():
            f.chmod(0o644)
        self.port = free_port()
        (d / "nginx.conf").write_text(f"""
daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format c '$connection';
    keepalive_timeout {self.keepalive_timeout};
    keepalive_requests {self.keepalive_requests};
    client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp;
    fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{self.port};
        root {self.html};
        access_log {self.access_log} c;
        location = /post {{ client_max_body_size 1m; return 200 "posted\\n"; }}
        location = /nginx_status {{ stub_status; access_log off; }}
    }}
}}
""")
        self.spawn([binary, "-c", str(d / "nginx.conf"), "-e", str(d / "error.log")])
        self.wait_ready(lambda: http_get(self.port, "/")[0] == 200, "nginx")
        # the probe's line is logged just after its answer went out
        wait_until(lambda: self.log_lines() >= 1, 3)
        self.extra_pids = children(self.proc.pid)
        self.base_lines = self.log_lines()
        self.base_accepts = self._accepts()
        self.base_calls = self.status_calls

    def logs(self):
        return tail(self.dir / "error.log") + "\n" + tail(self.log)

    def log_lines(self):
        try:
            with open(self.access_log, "rb") as f:
                return sum(1 for _ in f)
        except OSError:
            return 0

    def mark(self):
        return self.log_lines()

    def count(self, mark, expected):
        """Waits (bounded) until `expected` requests are logged after mark
        (nginx logs once the answer went out); returns (requests, distinct
        connections) among the lines after mark."""
        wait_until(lambda: self.log_lines() - mark >= expected, 3, 0.1)
        time.sleep(0.1)
        with open(self.access_log) as f:
            lines = f.read().splitlines()[mark:]
        return len(lines), len(set(lines))

    def _accepts(self):
        self.status_calls += 1
        status, body = http_get(self.port, "/nginx_status")
        return int(re.search(rb"\n\s*(\d+)\s+\d+\s+\d+", body).group(1))

    def accepted(self):
        """Connections accepted since start, the fixture's own left out."""
        now = self._accepts()
        return now - self.base_accepts - (self.status_calls - self.base_calls)


@pytest.fixture
def nginx(_servers):
    """nginx(keepalive_timeout="15s", keepalive_requests=100000) -> Nginx"""
    return _factory(_servers, Nginx)


# redis ------------------------------------------------------------------------

class Redis(Server):
    name = "redis"

    def __init__(self, password=None):
        super().__init__()
        self.password = password
        self.control = 0  # the fixture's own connections

    def start(self):
        if not shutil.which("redis-server"):
            pytest.skip("redis-server is not installed")
        self.port = free_port()
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")]
        if self.password:
            argv += ["--requirepass", self.password]
        self.spawn(argv)
        self.wait_ready(lambda: self.cmd("PING") == "PONG", "redis-server")
        self.base = self.info()
        self.base_control = self.control

    def logs(self):
        return tail(self.dir / "redis.log") + "\n" + tail(self.log)

    def cmd(self, *args):
        """One command on a connection of its own (with AUTH first when the
        server has a password)."""
        self.control += 1
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            r = RespReader(s)
            if self.password:
                s.sendall(resp_encode("AUTH", self.password))
                r.reply()
            s.sendall(resp_encode(*args))
            return r.reply()

    def info(self):
        text = self.cmd("INFO", "stats")
        return {k: int(v) for k, v in re.findall(r"^(total_\w+):(\d+)", text, re.M)}

    def accepted(self):
        """Connections accepted since start, the fixture's own left out: every
        one after the first INFO, the INFO reading this included (redis counts
        a connection when it accepts it)."""
        now = self.info()["total_connections_received"]
        return now - self.base["total_connections_received"] - (self.control - self.base_control)

    def commands(self):
        """Commands processed since start, the fixture's own left out: the
        first INFO, each control command after it, and the AUTH of each
        control connection (redis counts a command once it has run, so the
        INFO reading this is not counted yet; its AUTH is)."""
        now = self.info()["total_commands_processed"]
        auth = 1 if self.password else 0
        between = self.control - self.base_control - 1
        own = 1 + between * (1 + auth) + auth
        return now - self.base["total_commands_processed"] - own


@pytest.fixture
def redis(_servers):
    """redis(password=None) -> Redis"""
    return _factory(_servers, Redis)


# memcached --------------------------------------------------------------------

class Memcached(Server):
    name = "memcached"

    def __init__(self):
        super().__init__()
        self.control = 0

    def start(self):
        binary = shutil.which("memcached")
        if not binary:
            pytest.skip("memcached is not installed")
        self.port = free_port()
        argv = [binary, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-t", "2", "-c", "1024"]
        if os.getuid() == 0:
            argv += ["-u", "nobody"]  # memcached will not run as root
        self.spawn(argv)
        self.wait_ready(lambda: "total_connections" in self.stats(), "memcached")
        self.base_conns = int(self.stats()["total_connections"])
        self.base_control = self.control

    def stats(self):
        self.control += 1
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"stats\r\n")
            buf = b""
            while not buf.endswith(b"END\r\n"):
                data = s.recv(65536)
                if not data:
                    break
                buf += data
        return {p[1]: p[2] for p in (line.split() for line in buf.decode().splitlines())
                if len(p) == 3 and p[0] == "STAT"}

    def accepted(self):
        """Connections accepted since start, the fixture's own left out: every
        stats connection after the first, this one included (memcached counts
        a connection when it accepts it)."""
        total = int(self.stats()["total_connections"])
        return total - self.base_conns - (self.control - self.base_control)


@pytest.fixture
def memcached(_servers):
    """memcached() -> Memcached"""
    return _factory(_servers, Memcached)


# postgres ---------------------------------------------------------------------

def _pg_bindir():
    if os.environ.get("PG_BINDIR"):
        return pathlib.Path(os.environ["PG_BINDIR"])
    dirs = sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin"),
                  key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)] or [0])
    return dirs[-1] if dirs else None


def _pg_as():
    """postgres refuses to run as root: run it as postgres (or nobody)."""
    if os.getuid() != 0:
        return [], None
    import pwd
    for user in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            continue
        return (["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", "--"],
                (pw.pw_uid, pw.pw_gid))
    return [], None


def _chown_tree(path, ids):
    if ids is None:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, *ids)
        for f in files:
            os.chown(os.path.join(root, f), *ids)


class _PgTemplate:
    """One initdb per session, made when the first postgres starts (not at
    all when every psql case is skipped); each instance copies its data dir."""

    def __init__(self):
        self.dir = None

    def get(self):
        if self.dir is None:
            bindir = _pg_bindir()
            if not bindir or not (bindir / "initdb").exists() or not (bindir / "postgres").exists():
                pytest.skip("postgresql is not installed "
                            "(no initdb/postgres under /usr/lib/postgresql/*/bin)")
            d = mkworkdir("pg-template")
            as_user, ids = _pg_as()
            _chown_tree(d, ids)
            r = subprocess.run(as_user + [str(bindir / "initdb"), "-D", str(d / "data"),
                                          "-A", "trust", "-U", "postgres", "--no-sync"],
                               env=clean_env(), capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                shutil.rmtree(d, ignore_errors=True)
                pytest.fail(f"initdb failed: {r.stdout[-500:]}{r.stderr[-500:]}")
            self.dir, self.bindir = d, bindir
        return self.bindir, self.dir / "data"


@pytest.fixture(scope="session")
def _pg_template():
    t = _PgTemplate()
    yield t
    if t.dir is not None:
        shutil.rmtree(t.dir, ignore_errors=True)


class Postgres(Server):
    name = "postgres"
    stop_signal = signal.SIGINT  # fast shutdown; the backends follow the postmaster

    def __init__(self, template):
        self.bindir, self.template = template.get()
        super().__init__()

    def start(self):
        as_user, ids = _pg_as()
        data, sock = self.dir / "data", self.dir / "sock"
        shutil.copytree(self.template, data, symlinks=True)
        sock.mkdir()
        _chown_tree(self.dir, ids)
        self.port = free_port()
        self.spawn(as_user + [str(self.bindir / "postgres"), "-D", str(data), "-k", str(sock),
                              "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
                              "-c", "fsync=off", "-c", "log_connections=on",
                              "-c", "log_statement=all", "-c", "logging_collector=off"])
        isready = str(self.bindir / "pg_isready")

        def probe():
            return subprocess.run([isready, "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                                  env=clean_env(), timeout=5).returncode == 0
        self.wait_ready(probe, "postgres")
        time.sleep(0.1)
        self.base = self.counts()

    def counts(self):
        """(connections, statements) logged since start."""
        text = self.log.read_text(errors="replace")
        conns = text.count("connection received:")
        stmts = text.count("LOG:  statement:")
        if hasattr(self, "base"):
            return conns - self.base[0], stmts - self.base[1]
        return conns, stmts


@pytest.fixture
def postgres(_servers, _pg_template):
    """postgres() -> Postgres (trust authentication, user postgres)"""
    return _factory(_servers, lambda: Postgres(_pg_template))


# servers.py: python http.server and the small custom servers ------------------

class PyServer(Server):
    """servers.py MODE, counting in its own stats.json."""

    def __init__(self, mode, *args):
        self.name = f"py-{mode}"
        super().__init__()
        self.mode, self.args = mode, list(args)

    def start(self):
        self.spawn([PY, str(SERVERS_PY), self.mode, str(self.dir)] + self.args)
        port_file = self.dir / "port"

        def probe():
            if not port_file.exists():
                return False
            self.port = int(port_file.read_text())
            return True
        self.wait_ready(probe, f"servers.py {self.mode}")

    def stats(self):
        return json.loads((self.dir / "stats.json").read_text())

    def accepted(self):
        return self.stats()["accepted"]

    def wait_stats(self, pred, timeout=3):
        """Waits (bounded) until pred(stats) holds; returns the stats."""
        wait_until(lambda: pred(self.stats()), timeout, 0.05)
        return self.stats()


@pytest.fixture
def python_http_server(_servers):
    """Python's http.server with BaseHTTPRequestHandler's defaults (HTTP/1.0)."""
    return _factory(_servers, lambda: PyServer("http10"))


@pytest.fixture
def keepalive_server(_servers):
    """An HTTP/1.1 keep-alive server answering "id X" to /id/X."""
    return _factory(_servers, lambda: PyServer("http11"))


@pytest.fixture
def chunked_server(_servers):
    """The keep-alive server, answering with Transfer-Encoding: chunked."""
    return _factory(_servers, lambda: PyServer("http11", "--chunked"))


@pytest.fixture
def http408_server(_servers):
    """http408_server(idle_ms): the keep-alive server that answers a kept
    connection idle for idle_ms with 408 Request Timeout, then closes it."""
    return _factory(_servers, lambda idle_ms: PyServer("http11", "--idle-408", str(idle_ms)))


@pytest.fixture
def sink_server(_servers):
    """Reads each connection to its EOF; counts connections and EOFs."""
    return _factory(_servers, lambda: PyServer("sink"))


# --- clients ------------------------------------------------------------------

class Result:
    def __init__(self, argv, shim):
        self.argv, self.shim = argv, shim
        self.rc, self.out, self.err, self.ms = None, "", "", 0
        self.stats, self.stats_lines = {}, 0

    def describe(self):
        s = f"  {'with' if self.shim else 'without'} the shim: rc={self.rc}, {self.ms} ms: " \
            f"{' '.join(self.argv)[:200]}\n"
        if self.err.strip():
            s += "\n".join("    stderr| " + line for line in self.err.splitlines()[-10:]) + "\n"
        if self.stats:
            s += "    stats: " + " ".join(f"{k}={v}" for k, v in self.stats.items() if v) + "\n"
        return s


def sum_stats(text):
    sums, lines = {}, 0
    for line in text.splitlines():
        if not line.strip():
            continue
        lines += 1
        for field in line.split():
            k, _, v = field.partition("=")
            if k != "pid" and v.isdigit():
                sums[k] = sums.get(k, 0) + int(v)
    return sums, lines


class Clients:
    """Runs client processes without and with the shim, each bounded."""

    def __init__(self, workdir):
        self.dir = workdir
        self.n = 0

    def env(self, shim, stats_path, extra=None):
        env = clean_env()
        if shim:
            env["LD_PRELOAD"] = f"{PREFIX} {LIB}".strip()
            env["POOLSHIM_STATS"] = str(stats_path)  # an absolute path: it has a '/'
        env.update(extra or {})
        return env

    def left_running(self):
        """Clients started by popen() still running (the test failed before
        it waited for them); forgotten once they have exited."""
        running = [p for p in _live_clients if p.poll() is None and getattr(p, "cwd", None) == self.dir]
        _live_clients[:] = [p for p in _live_clients if p.poll() is None]
        return running

    def popen(self, argv, shim, extra_env=None, **kw):
        """A client left running (the caller waits for it, bounded)."""
        self.n += 1
        stats = self.dir / f"stats.{self.n}"
        stats.write_text("")
        p = subprocess.Popen([str(a) for a in argv], cwd=self.dir,
                             env=self.env(shim, stats, extra_env), **kw)
        p.stats_path, p.cwd = stats, self.dir
        _live_clients.append(p)
        return p

    def run(self, argv, shim, extra_env=None, timeout=CLIENT_TIMEOUT, input=None):
        argv = [str(a) for a in argv]
        res = Result(argv, shim)
        if time.monotonic() - T0 > BUDGET:
            # a client that hangs every time must not run into meson's timeout
            pytest.fail(f"time budget of {BUDGET:.0f}s used up: not run: {' '.join(argv)[:160]}")
        self.n += 1
        stats = self.dir / f"stats.{self.n}"
        stats.write_text("")
        t0 = time.monotonic()
        p = subprocess.Popen(argv, cwd=self.dir, env=self.env(shim, stats, extra_env),
                             stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _live_clients.append(p)
        try:
            out, err = p.communicate(input=input.encode() if input is not None else None,
                                     timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_exact(descendants(p.pid))
            p.kill()
            out, err = p.communicate(timeout=5)
            err += f"\n(timed out after {timeout}s)".encode()
        finally:
            _live_clients.remove(p)
        res.ms = int((time.monotonic() - t0) * 1000)
        res.rc = p.returncode
        res.out = out.decode(errors="replace")
        res.err = err.decode(errors="replace")
        res.stats, res.stats_lines = sum_stats(stats.read_text())
        return res


@pytest.fixture
def clients():
    d = mkworkdir("clients")
    _live_dirs.add(d)
    c = Clients(d)
    yield c
    for p in c.left_running():
        kill_exact(descendants(p.pid))
        p.kill()
        p.wait(5)
    shutil.rmtree(d, ignore_errors=True)
    _live_dirs.discard(d)


_probed = {}


def need(*programs, probe=None):
    """Skips the test unless every program is installed and, in a sanitizer
    build, probe (a command) works with only the sanitizer runtime preloaded
    (no shim).  Some clients do not: with libasan.so preloaded, curl and psql
    hang at exit in libp11-kit's destructor (freelocale waits on glibc's
    setlocale lock), which says nothing about the shim.  Those are skipped."""
    for prog in programs:
        if not (shutil.which(prog) or os.access(prog, os.X_OK)):
            pytest.skip(f"{prog} is not installed")
    if not PREFIX or not probe:
        return
    key = tuple(probe)
    if key not in _probed:
        env = clean_env()
        env["LD_PRELOAD"] = PREFIX
        try:
            _probed[key] = subprocess.run(list(probe), env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL,
                                          timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            _probed[key] = False
    if not _probed[key]:
        pytest.skip(f"'{' '.join(probe)}' fails or hangs with only {PREFIX} preloaded "
                    "(no shim): not testable in this build")


def need_python_module(name):
    if subprocess.run([PY, "-c", f"import {name}"], capture_output=True).returncode != 0:
        pytest.skip(f"{PY} has no module {name}")
    need(PY, probe=[PY, "-c", f"import {name}"])


# --- checks: every failed assertion of a case at once --------------------------

class Checks:
    def __init__(self):
        self.failed = []
        self.context = []

    def __call__(self, ok, what):
        if not ok:
            self.failed.append(what)
        return ok

    def eq(self, got, want, what):
        return self(got == want, f"{what}: {got!r}, expected {want!r}")

    def le(self, got, limit, what):
        return self(got <= limit, f"{what}: {got}, expected <= {limit}")

    def ge(self, got, limit, what):
        return self(got >= limit, f"{what}: {got}, expected >= {limit}")

    def loaded(self, res):
        """With the shim: its POOLSHIM_STATS line proves it was loaded."""
        if res.shim:
            self(res.stats_lines > 0, "the shim wrote no POOLSHIM_STATS line (not loaded?)")

    def add_context(self, *items):
        self.context.extend(str(i) for i in items)

    def done(self):
        if self.failed:
            raise AssertionError("\n".join(["", *("FAIL: " + f for f in self.failed),
                                            *self.context]))


# --- the table at the end -------------------------------------------------------

_rows = []
_outcomes = {}


def record(request, case, res, requests, conns):
    """A row of the table printed at the end of the run."""
    _rows.append((request.node.nodeid, case, res, requests, conns))


def pytest_runtest_logreport(report):
    if report.when == "call" or report.outcome != "passed":
        _outcomes.setdefault(report.nodeid, report.outcome)
        if report.outcome != "passed":
            _outcomes[report.nodeid] = report.outcome


def pytest_terminal_summary(terminalreporter):
    if not _rows:
        return
    w = terminalreporter.write_line
    w("")
    w(f"clients: shim {LIB}" + (f" (preload prefix {PREFIX})" if PREFIX else ""))
    w("requests and connections as the server counted them; hits, refused, stale, retry: the "
      "shim's reuse_hits, refused, stale_at_checkout and stale_retries, summed over the client's "
      "processes")
    w(f"{'case':<46} {'shim':<4} {'requests':>8} {'conns':>6} {'hits':>6} {'refused':>7} "
      f"{'stale':>6} {'retry':>6} {'ms':>7}  result")
    plain_ms = {case: res.ms for _, case, res, _, _ in _rows if not res.shim}
    notes = []
    for nodeid, case, res, reqs, conns in _rows:
        st = res.stats
        col = (lambda k: str(st.get(k, 0))) if res.shim else (lambda k: "-")
        w(f"{case[:46]:<46} {'yes' if res.shim else 'no':<4} {reqs:>8} {conns:>6} "
          f"{col('reuse_hits'):>6} {col('refused'):>7} {col('stale_at_checkout'):>6} "
          f"{col('stale_retries'):>6} {res.ms:>7}  {_outcomes.get(nodeid, '?')}")
        slow = res.ms > 1000 and res.ms > 2 * plain_ms.get(case, res.ms)
        if res.shim and not PREFIX and slow:
            # not in a sanitizer build: only the shim run has the runtime there
            notes.append(f"note: {case}: slower with the shim: {res.ms} ms vs "
                         f"{plain_ms[case]} ms without")
    for n in notes:
        w(n)
