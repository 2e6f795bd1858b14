#include "harness.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_CHILDREN 64

static pid_t live[MAX_CHILDREN];
static char tmpdir[128];
static char stats_path[192];
static int child_timeout_ms = IT_CHILD_TIMEOUT_MS;

/* ---- bookkeeping ---------------------------------------------------- */

static void track_child(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (live[i] == 0) {
			live[i] = pid;
			return;
		}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	cr_assert_fail("harness: too many live children");
}

static void untrack_child(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (live[i] == pid)
			live[i] = 0;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void it_setup(void)
{
	memset(live, 0, sizeof live);
	child_timeout_ms = IT_CHILD_TIMEOUT_MS;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/poolshim-it-XXXXXX");
	if (!mkdtemp(tmpdir))
		cr_assert_fail("mkdtemp: %s", strerror(errno));
	snprintf(stats_path, sizeof stats_path, "%s/stats", tmpdir);
}

void it_teardown(void)
{
	for (int i = 0; i < MAX_CHILDREN; i++) {
		if (live[i] > 0) {
			kill(live[i], SIGKILL);
			waitpid(live[i], NULL, 0);
			live[i] = 0;
		}
	}
	if (tmpdir[0]) {
		unlink(stats_path);
		rmdir(tmpdir);
		tmpdir[0] = '\0';
	}
}

void it_set_child_timeout(int ms) { child_timeout_ms = ms; }

const char *it_tmpdir(void) { return tmpdir; }
const char *it_stats_path(void) { return stats_path; }

const char *it_env_path(const char *name)
{
	const char *v = getenv(name);
	cr_assert(v && *v, "environment variable %s is not set (run through meson test)", name);
	cr_assert(access(v, R_OK) == 0, "%s=%s: %s", name, v, strerror(errno));
	return v;
}

/* ---- child environment ---------------------------------------------- */

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/*
 * Build envp: the runner's environment minus LD_PRELOAD / POOLSHIM_STATS,
 * plus POOLSHIM_STATS, LD_PRELOAD (if shim) and extra.  Done before fork
 * (malloc is not async-signal-safe after fork in a threaded runner).
 */
static char **build_env(bool shim, bool stats, const char *const *extra)
{
	size_t n = 0, n_extra = 0;
	while (environ[n])
		n++;
	while (extra && extra[n_extra])
		n_extra++;
	char **env = calloc(n + n_extra + 4, sizeof *env);
	cr_assert(env);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (starts_with(environ[i], "LD_PRELOAD=") || starts_with(environ[i], "POOLSHIM_STATS="))
			continue;
		env[k++] = environ[i];
	}
	if (stats) {
		char *s = malloc(strlen(stats_path) + 32);
		cr_assert(s);
		sprintf(s, "POOLSHIM_STATS=%s", stats_path);
		env[k++] = s;
	}
	if (shim) {
		const char *lib = it_env_path("POOLSHIM_LIB");
		const char *prefix = getenv("POOLSHIM_PRELOAD_PREFIX");
		char *s = malloc(strlen(lib) + (prefix ? strlen(prefix) : 0) + 32);
		cr_assert(s);
		if (prefix && *prefix)
			sprintf(s, "LD_PRELOAD=%s %s", prefix, lib);
		else
			sprintf(s, "LD_PRELOAD=%s", lib);
		env[k++] = s;
	}
	bool protocols = getenv("POOLSHIM_PROTOCOLS") != NULL;
	for (size_t i = 0; i < n_extra; i++) {
		protocols = protocols || starts_with(extra[i], "POOLSHIM_PROTOCOLS=");
		env[k++] = (char *)extra[i];
	}
	/* the test servers speak a line protocol of their own, which the shim
	 * pools only when told to (a test that says otherwise wins) */
	if (!protocols)
		env[k++] = (char *)"POOLSHIM_PROTOCOLS=http,redis,memcached,any";
	env[k] = NULL;
	return env;
}

/*
 * fork + exec.  out_w / err_w become the child's stdout / stderr (-1:
 * inherit).  Never returns in the child.
 */
static pid_t spawn(const char *const *argv, char **envp, int out_w, int err_w)
{
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0) {
			dup2(devnull, 0);
			close(devnull);
		}
		if (out_w >= 0)
			dup2(out_w, 1);
		if (err_w >= 0)
			dup2(err_w, 2);
		/* restore default signal state for the child */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		execve(argv[0], (char *const *)argv, envp);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	track_child(pid);
	return pid;
}

static void free_env(char **env)
{
	/* only the strings we allocated: they are not in environ */
	for (size_t i = 0; env[i]; i++) {
		bool ours = starts_with(env[i], "POOLSHIM_STATS=") || starts_with(env[i], "LD_PRELOAD=");
		if (ours) {
			bool from_environ = false;
			for (size_t j = 0; environ[j]; j++)
				if (environ[j] == env[i])
					from_environ = true;
			if (!from_environ)
				free(env[i]);
		}
	}
	free(env);
}

/* ---- server ------------------------------------------------------------ */

static void server_read(struct it_server *s, long long deadline, bool until_eof, bool want_port)
{
	for (;;) {
		if (want_port) {
			s->out[s->out_len] = '\0';
			char *p = strstr(s->out, "PORT ");
			if (p && strchr(p, '\n')) {
				s->port = atoi(p + 5);
				return;
			}
		}
		long long left = deadline - now_ms();
		if (left <= 0)
			return;
		struct pollfd pfd = { .fd = s->out_fd, .events = POLLIN };
		int r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		char tmp[512];
		ssize_t n = read(s->out_fd, tmp, sizeof tmp);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* EOF */
		size_t room = sizeof s->out - 1 - s->out_len;
		size_t take = (size_t)n < room ? (size_t)n : room;
		memcpy(s->out + s->out_len, tmp, take);
		s->out_len += take;
		s->out[s->out_len] = '\0';
		(void)until_eof;
	}
}

void it_server_start(struct it_server *s, const char *const *args)
{
	it_server_start_prog(s, it_env_path("ECHO_SERVER"), args);
}

void it_server_start_prog(struct it_server *s, const char *server, const char *const *args)
{
	memset(s, 0, sizeof *s);
	s->pid = -1;
	s->accepted = -1;
	s->requests = -1;
	const char *argv[32];
	int k = 0;
	argv[k++] = server;
	argv[k++] = "--max-seconds";
	argv[k++] = "100"; /* safety net if everything else fails */
	for (int i = 0; args && args[i] && k < 30; i++)
		argv[k++] = args[i];
	argv[k] = NULL;

	int pfd[2];
	cr_assert(pipe2(pfd, O_CLOEXEC) == 0, "pipe2: %s", strerror(errno));
	char **env = build_env(false, false, NULL);
	s->pid = spawn(argv, env, pfd[1], -1);
	free_env(env);
	close(pfd[1]);
	s->out_fd = pfd[0];
	server_read(s, now_ms() + 10000, false, true);
	cr_assert(s->port > 0, "%s did not print PORT within 10 s; output: '%s'", server, s->out);
}

void it_server_stop(struct it_server *s)
{
	cr_assert(s->pid > 0, "server not running");
	kill(s->pid, SIGTERM);
	server_read(s, now_ms() + 10000, true, false);
	int st = 0;
	/* it printed its line (or the deadline passed): reap it, SIGKILL if slow */
	long long deadline = now_ms() + 5000;
	pid_t r;
	while ((r = waitpid(s->pid, &st, WNOHANG)) == 0 && now_ms() < deadline)
		usleep(10000);
	if (r == 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, &st, 0);
	}
	untrack_child(s->pid);
	s->pid = -1;
	close(s->out_fd);
	s->out_fd = -1;
	const char *p = strstr(s->out, "accepted=");
	if (p)
		sscanf(p, "accepted=%ld requests=%ld", &s->accepted, &s->requests);
	cr_assert(p && s->accepted >= 0, "echo_server printed no accepted= line; output: '%s'", s->out);
}

/* ---- clients ------------------------------------------------------------ */

static void append(char *buf, size_t *len, const char *src, size_t n)
{
	size_t room = IT_OUT_MAX - 1 - *len;
	if (n > room)
		n = room;
	memcpy(buf + *len, src, n);
	*len += n;
	buf[*len] = '\0';
}

void it_run(struct it_proc *p, const char *const *argv, bool shim, const char *const *extra_env)
{
	memset(p, 0, sizeof *p);
	int o[2], e[2];
	cr_assert(pipe2(o, O_CLOEXEC) == 0 && pipe2(e, O_CLOEXEC) == 0, "pipe2: %s", strerror(errno));
	char **env = build_env(shim, true, extra_env);
	p->pid = spawn(argv, env, o[1], e[1]);
	free_env(env);
	close(o[1]);
	close(e[1]);

	long long deadline = now_ms() + child_timeout_ms;
	struct pollfd pfd[2] = { { .fd = o[0], .events = POLLIN }, { .fd = e[0], .events = POLLIN } };
	int open_fds = 2;
	while (open_fds > 0) {
		long long left = deadline - now_ms();
		if (left <= 0) {
			p->timed_out = true;
			break;
		}
		int r = poll(pfd, 2, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			break;
		for (int i = 0; i < 2; i++) {
			if (pfd[i].fd < 0 || !pfd[i].revents)
				continue;
			char tmp[4096];
			ssize_t n = read(pfd[i].fd, tmp, sizeof tmp);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(pfd[i].fd);
				pfd[i].fd = -1;
				open_fds--;
				continue;
			}
			if (i == 0)
				append(p->out, &p->out_len, tmp, (size_t)n);
			else
				append(p->err, &p->err_len, tmp, (size_t)n);
		}
	}
	for (int i = 0; i < 2; i++)
		if (pfd[i].fd >= 0)
			close(pfd[i].fd);

	int st = 0;
	if (p->timed_out) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, &st, 0);
	} else {
		/* both pipes hit EOF; the child exits right after */
		long long wdl = now_ms() + 10000;
		pid_t r;
		while ((r = waitpid(p->pid, &st, WNOHANG)) == 0) {
			if (now_ms() > wdl) {
				p->timed_out = true;
				kill(p->pid, SIGKILL);
				waitpid(p->pid, &st, 0);
				break;
			}
			usleep(1000);
		}
	}
	untrack_child(p->pid);
	if (WIFEXITED(st)) {
		p->exited = true;
		p->code = WEXITSTATUS(st);
	} else if (WIFSIGNALED(st)) {
		p->code = -WTERMSIG(st);
	}
	cr_assert(!p->timed_out, "%s timed out after %d ms and was killed\nstdout: %s\nstderr: %s",
		  argv[0], child_timeout_ms, p->out, p->err);
	cr_assert(p->exited, "%s was killed by signal %d\nstdout: %s\nstderr: %s", argv[0], -p->code,
		  p->out, p->err);
	/* sanitizer builds: UBSan reports do not change the exit status */
	static const char *const reports[] = { "runtime error:", "AddressSanitizer", "LeakSanitizer" };
	for (size_t i = 0; i < sizeof reports / sizeof reports[0]; i++)
		cr_assert(!strstr(p->err, reports[i]), "%s: sanitizer report on stderr:\n%s", argv[0], p->err);
	/* the shim never writes to the program's stdout */
	cr_assert(!strstr(p->out, "poolshim"), "%s: the shim wrote to stdout:\n%s", argv[0], p->out);
}

void it_run_client(struct it_proc *p, int port, const char *const *args, bool shim,
		   const char *const *extra_env)
{
	char portbuf[16];
	snprintf(portbuf, sizeof portbuf, "%d", port);
	const char *argv[40];
	int k = 0;
	argv[k++] = it_env_path("ECHO_CLIENT");
	argv[k++] = "--port";
	argv[k++] = portbuf;
	argv[k++] = "--quiet";
	for (int i = 0; args && args[i] && k < 38; i++)
		argv[k++] = args[i];
	argv[k] = NULL;
	it_run(p, argv, shim, extra_env);
}

bool it_parse_client(const struct it_proc *p, struct it_client_summary *sum)
{
	memset(sum, 0, sizeof *sum);
	const char *line = strstr(p->out, "requests=");
	if (!line)
		return false;
	return sscanf(line, "requests=%ld ok=%ld mismatches=%ld errors=%ld elapsed_ms=%ld",
		      &sum->requests, &sum->ok, &sum->mismatches, &sum->errors, &sum->elapsed_ms) == 5;
}

/* ---- stats file ---------------------------------------------------------- */

const char *it_stats_text(void)
{
	static char buf[16384];
	buf[0] = '\0';
	int fd = open(stats_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(buf, sizeof buf, "(no stats file %s: %s)", stats_path, strerror(errno));
		return buf;
	}
	size_t len = 0;
	ssize_t n;
	while (len < sizeof buf - 1 && (n = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(fd);
	return buf;
}

bool it_stats_value(pid_t pid, const char *key, unsigned long long *value, int *lines)
{
	const char *text = it_stats_text();
	char want[32];
	snprintf(want, sizeof want, "pid=%d ", (int)pid);
	size_t keylen = strlen(key);
	bool found = false;
	int count = 0;
	for (const char *line = text; *line;) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		if (starts_with(line, want)) {
			count++;
			/* tokens separated by spaces: key=value */
			for (const char *t = line; t < line + len;) {
				if (strncmp(t, key, keylen) == 0 && t[keylen] == '=') {
					*value = strtoull(t + keylen + 1, NULL, 10);
					found = true;
				}
				const char *sp = memchr(t, ' ', (size_t)(line + len - t));
				if (!sp)
					break;
				t = sp + 1;
			}
		}
		if (!end)
			break;
		line = end + 1;
	}
	if (lines)
		*lines = count;
	return found;
}
