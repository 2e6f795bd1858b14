/* poolshim-keeper: holds idle TCP connections for the processes of one
 * user and hands them over with SCM_RIGHTS (docs/shared.md).
 *
 *   poolshim-keeper [--detach]   serve (the shim starts it with --detach)
 *   poolshim-keeper --status     print what the running keeper holds
 *
 * Owns start-up: the environment (never with the shim preloaded), the
 * configuration (the POOLSHIM_* variables it was started with), detaching,
 * the lock that makes it the only keeper of its directory, and the socket,
 * replacing one a dead keeper left behind. */
#include "keeper.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef POOLSHIM_VERSION
#define POOLSHIM_VERSION "?"
#endif

static const char *env(const char *name) { return getenv(name); }

/* The shim in the keeper would track and pool the keeper's own sockets.
 * The shim strips itself from our environment; a keeper started some
 * other way with it preloaded starts again without it. */
static void without_shim(char **argv)
{
	const char *pre = getenv("LD_PRELOAD");
	if (!pre || !strstr(pre, "libpoolshim"))
		return;
	char kept[4096];
	size_t o = 0;
	for (const char *p = pre; *p;) {
		size_t n = strcspn(p, " :");
		const char *slash = memrchr(p, '/', n);
		const char *base = slash ? slash + 1 : p;
		if (n && !(p + n - base >= 11 && memcmp(base, "libpoolshim", 11) == 0) && o + n + 2 < sizeof kept) {
			if (o)
				kept[o++] = ' ';
			memcpy(kept + o, p, n);
			o += n;
		}
		p += n;
		if (*p)
			p++;
	}
	kept[o] = '\0';
	if (o)
		setenv("LD_PRELOAD", kept, 1);
	else
		unsetenv("LD_PRELOAD");
	execv("/proc/self/exe", argv);
	fprintf(stderr, "poolshim-keeper: cannot start again without the shim: %s\n", strerror(errno));
	exit(1);
}

/* The lock file: ours, a regular file, held for the keeper's life.  Another
 * keeper holding it means this one is not needed.  A shim probing it holds
 * a shared lock for microseconds: a few tries tell that from a keeper. */
static int take_lock(const struct ps_rundir *rd)
{
	struct stat st;
	int fd = open(rd->lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != rd->uid) {
		PS_LOG_WARN("cannot use the lock file %s", rd->lock);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	for (int tries = 0; tries < 10; tries++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
		if (errno != EWOULDBLOCK)
			break;
		nanosleep(&(struct timespec){ 0, 2000000 }, NULL);
	}
	close(fd);
	return -1;
}

/* Binds the socket, replacing a file a dead keeper left (connect refused:
 * nobody listens), after the same checks the shim makes.  Returns the
 * listening socket with *ino the socket file's inode, or -1. */
static int listen_socket(const struct ps_rundir *rd, ino_t *ino)
{
	struct sockaddr_un sa;
	socklen_t len = ps_rundir_addr(rd, &sa);
	char why[160];
	struct stat st;
	if (ps_rundir_check_socket(rd, why, sizeof why) == 0) {
		int probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		int r = probe < 0 ? -1 : connect(probe, (struct sockaddr *)&sa, len);
		int err = errno;
		if (probe >= 0)
			close(probe);
		if (r == 0 || err != ECONNREFUSED) {
			PS_LOG_INFO("another keeper answers on %s", rd->sock);
			return -1;
		}
		if (unlink(rd->sock) < 0 && errno != ENOENT)
			return -1;
		PS_LOG_INFO("replaced the socket of a keeper that is gone");
	} else if (errno != ENOENT) {
		PS_LOG_WARN("not serving: %s", why[0] ? why : strerror(errno));
		return -1;
	}
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&sa, len) < 0 || listen(s, 128) < 0 ||
	    lstat(rd->sock, &st) < 0) {
		PS_LOG_WARN("cannot listen on %s: %s", rd->sock, strerror(errno));
		if (s >= 0)
			close(s);
		return -1;
	}
	*ino = st.st_ino;
	return s;
}

/* Away from the starter: not its child, no terminal, 0-2 on /dev/null. */
static void detach(void)
{
	/* a session of its own (the shim's spawn made one already), and then
	 * not its leader: a keeper can never acquire a controlling terminal */
	setsid();
	pid_t pid = fork();
	if (pid < 0)
		exit(1);
	if (pid > 0)
		_exit(0); /* the starter reaps this one at once (lib/shared_spawn.c) */
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		if (null > 2)
			close(null);
	}
}

static void more_descriptors(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int usage(FILE *f, int status)
{
	fprintf(f, "Usage: poolshim-keeper [--detach]\n"
		   "       poolshim-keeper --status\n"
		   "Holds idle TCP connections for the processes of one user (POOLSHIM_SHARED=1)\n"
		   "and hands them over on a Unix socket in a private directory.  The library\n"
		   "starts it when needed; --status prints what the running keeper holds.\n"
		   "See poolshim(7).\n");
	return status;
}

int main(int argc, char **argv)
{
	bool want_detach = false, want_status = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--detach") == 0)
			want_detach = true;
		else if (strcmp(argv[i], "--status") == 0)
			want_status = true;
		else if (strcmp(argv[i], "--help") == 0)
			return usage(stdout, 0);
		else if (strcmp(argv[i], "--version") == 0)
			return printf("poolshim-keeper %s\n", POOLSHIM_VERSION) < 0;
		else
			return usage(stderr, 2);
	}
	without_shim(argv);
	/* nothing of the starter's but 0-2, before anything of ours is open */
	close_range(3, ~0u, 0);
	ps_config_parse(&ps_config, env);
	struct k_keeper kp;
	memset(&kp, 0, sizeof kp);
	kp.uid = getuid();
	if (ps_rundir_init(&kp.rd, ps_config.runtime_dir, kp.uid) < 0) {
		fprintf(stderr, "poolshim-keeper: the socket's path is too long\n");
		return 1;
	}
	if (want_status)
		return k_status(&kp.rd);
	umask(077);
	if (want_detach)
		detach();
	if (ps_config.log_file[0])
		ps_log_open_file(ps_config.log_file, 3);
	more_descriptors();
	char why[160];
	if (ps_rundir_check(&kp.rd, true, why, sizeof why) < 0) {
		PS_LOG_WARN("not serving: %s", why[0] ? why : strerror(errno));
		return 1;
	}
	int lock = take_lock(&kp.rd);
	if (lock < 0)
		return 0; /* another keeper has it */
	ino_t ino = 0;
	int ls = listen_socket(&kp.rd, &ino);
	if (ls < 0)
		return 1;
	struct k_caps caps = {
		.max_per_key = ps_config.max_idle_per_host,
		.max_total = ps_config.max_idle,
		.idle_timeout_ns = ps_config.idle_timeout_ns,
		.max_lifetime_ns = ps_config.max_lifetime_ns,
		.max_reuse = ps_config.max_reuse,
	};
	k_store_init(&kp.store, &caps);
	kp.pid = getpid();
	kp.started_ns = kp.last_request_ns = ps_now_ns();
	kp.linger_ns = ps_config.shared_linger_ns;
	PS_LOG_INFO("serving uid %lu on %s", (unsigned long)kp.uid, kp.rd.sock);
	k_serve(&kp, ls);
	/* a newer keeper may have replaced the file meanwhile: not ours to remove */
	struct stat st;
	if (lstat(kp.rd.sock, &st) == 0 && st.st_ino == ino)
		unlink(kp.rd.sock);
	close(ls);
	close(lock);
	return 0;
}
