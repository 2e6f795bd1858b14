/* Owns the private directory's paths and the owner/mode checks.  Every
 * call goes through ps_sys: the shim makes them inside a program, where
 * libc's names are our own hooks, and the tests fake them. */
#include "rundir.h"
#include "sys.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* snprintf that fails (ENAMETOOLONG) instead of cutting a path short */
static int fits(int n, size_t cap)
{
	if (n < 0 || (size_t)n >= cap) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

uint64_t ps_rundir_netns(void)
{
	static pid_t pid;
	static uint64_t cookie;
	pid_t me = ps_sys.getpid();
	if (__atomic_load_n(&pid, __ATOMIC_ACQUIRE) == me)
		return __atomic_load_n(&cookie, __ATOMIC_RELAXED);
	uint64_t c = 0;
	socklen_t len = sizeof c;
	int saved = errno;
	int s = ps_sys.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s >= 0) {
		if (ps_sys.getsockopt(s, SOL_SOCKET, SO_NETNS_COOKIE, &c, &len) < 0 || len != sizeof c)
			c = 0;
		ps_sys.close(s);
	}
	errno = saved;
	__atomic_store_n(&cookie, c, __ATOMIC_RELAXED);
	__atomic_store_n(&pid, me, __ATOMIC_RELEASE);
	return c;
}

int ps_rundir_init(struct ps_rundir *r, const char *xdg, uid_t uid)
{
	struct stat st;
	memset(r, 0, sizeof *r);
	r->uid = uid;
	r->netns = ps_rundir_netns();
	/* a runtime directory inherited from another user (su and sudo may
	 * keep the environment) is not ours: fall back rather than fail */
	bool own_xdg = xdg && xdg[0] == '/' && ps_sys.lstat(xdg, &st) == 0 && S_ISDIR(st.st_mode) &&
		       st.st_uid == uid;
	if (!own_xdg || fits(snprintf(r->dir, sizeof r->dir, "%s/poolshim", xdg), sizeof r->dir) < 0 ||
	    strlen(r->dir) + sizeof "/keeper-ns18446744073709551615.sock" > sizeof r->sock) {
		if (fits(snprintf(r->dir, sizeof r->dir, "/tmp/poolshim-%lu", (unsigned long)uid),
			 sizeof r->dir) < 0)
			return -1;
	}
	unsigned long long ns = (unsigned long long)r->netns;
	if (fits(snprintf(r->sock, sizeof r->sock, "%s/keeper-ns%llu.sock", r->dir, ns), sizeof r->sock) < 0 ||
	    fits(snprintf(r->lock, sizeof r->lock, "%s/keeper-ns%llu.lock", r->dir, ns), sizeof r->lock) < 0)
		return -1;
	return 0;
}

/* a file that exists but is not ours to use: says why */
static int refuse(char *why, size_t len, const char *path, const char *what, unsigned long a,
		  unsigned long b)
{
	if (why && len) {
		if (what[0] == 'u')
			snprintf(why, len, "%s belongs to uid %lu, not %lu", path, a, b);
		else if (what[0] == 'm')
			snprintf(why, len, "%s has mode %lo, not %lo", path, a, b);
		else
			snprintf(why, len, "%s is not a %s", path, what);
	}
	errno = EPERM;
	return -1;
}

int ps_rundir_check(const struct ps_rundir *r, bool create, char *why, size_t len)
{
	struct stat st;
	if (why && len)
		why[0] = '\0';
	if (ps_sys.lstat(r->dir, &st) < 0) {
		if (errno != ENOENT || !create)
			return -1;
		/* mkdir's mode is cut by the umask: 0700 or less, checked below */
		if (ps_sys.mkdir(r->dir, 0700) < 0 && errno != EEXIST)
			return -1;
		if (ps_sys.lstat(r->dir, &st) < 0)
			return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return refuse(why, len, r->dir, "directory", 0, 0);
	if (st.st_uid != r->uid)
		return refuse(why, len, r->dir, "uid", st.st_uid, r->uid);
	if ((st.st_mode & 07777) != 0700)
		return refuse(why, len, r->dir, "mode", st.st_mode & 07777, 0700);
	return 0;
}

int ps_rundir_check_socket(const struct ps_rundir *r, char *why, size_t len)
{
	struct stat st;
	if (why && len)
		why[0] = '\0';
	if (ps_sys.lstat(r->sock, &st) < 0)
		return -1;
	if (!S_ISSOCK(st.st_mode))
		return refuse(why, len, r->sock, "socket", 0, 0);
	if (st.st_uid != r->uid)
		return refuse(why, len, r->sock, "uid", st.st_uid, r->uid);
	/* the keeper binds under umask 077: any group or other bit is not its doing */
	if (st.st_mode & 077)
		return refuse(why, len, r->sock, "mode", st.st_mode & 07777, st.st_mode & 0700);
	return 0;
}

socklen_t ps_rundir_addr(const struct ps_rundir *r, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, r->sock, strlen(r->sock));
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(r->sock) + 1);
}
