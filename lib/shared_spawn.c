/* Owns starting poolshim-keeper from inside a program.
 *
 * The keeper must never run with the shim in it (it would track its own
 * sockets and pool the connections it holds): its environment is the
 * program's with every libpoolshim entry taken out of LD_PRELOAD (the
 * keeper checks again, keeper/main.c).  posix_spawn runs no atfork handler
 * and shares nothing with the program once the exec is done; the child gets
 * its own session, no controlling terminal, /dev/null on 0-2 and none of
 * the program's descriptors (sys.c).
 *
 * The keeper started here forks once more and its first process exits
 * (--detach), so the keeper is never the program's child: a program that
 * waits for "any child" does not meet it.  That first process is reaped
 * here, waiting no longer than the bound; one that is slower stays a zombie
 * of the program until it waits or exits.
 *
 * At most one start per process, and none while a keeper holds the lock
 * file (it is starting, or alive with a socket we could not use). */
#include "shared.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "mem.h"
#include "rundir.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

extern char **environ;

static pid_t started_by; /* the pid that tried: a forked child may try again */
static bool no_keeper;   /* POOLSHIM_KEEPER names no program: start none */

void ps_shared_init(void)
{
	struct stat st;
	if (!ps_config.shared)
		return;
	if (!ps_config.keeper_path[0] || ps_sys.lstat(ps_config.keeper_path, &st) < 0 ||
	    (S_ISREG(st.st_mode) && !(st.st_mode & 0111))) {
		no_keeper = true;
		PS_LOG_WARN("POOLSHIM_KEEPER=\"%s\" is not a program; a keeper already running is used, "
			    "none is started", ps_config.keeper_path);
	}
}

/* Whether a keeper holds the lock: a shared lock we cannot get now. */
static bool keeper_alive(const struct ps_rundir *rd)
{
	int fd = ps_sys.open(rd->lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
	if (fd < 0)
		return false;
	bool held = ps_sys.flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	ps_sys.close(fd); /* releases ours, if we got it */
	return held;
}

/* "a.so libpoolshim.so b.so" -> "a.so b.so": LD_PRELOAD separates by
 * spaces or colons; an entry is ours if its file name starts libpoolshim. */
static void strip_preload(char *out, size_t cap, const char *list)
{
	size_t o = 0;
	const char *p = list;
	while (*p) {
		size_t n = strcspn(p, " :");
		if (n) {
			const char *slash = memrchr(p, '/', n);
			const char *base = slash ? slash + 1 : p;
			bool ours = (size_t)(p + n - base) >= 11 && memcmp(base, "libpoolshim", 11) == 0;
			if (!ours && o + n + 2 < cap) {
				if (o)
					out[o++] = ' ';
				memcpy(out + o, p, n);
				o += n;
			}
		}
		p += n;
		if (*p)
			p++;
	}
	out[o] = '\0';
}

/* The program's environment for the keeper, in memory from mmap (no malloc
 * inside a wrapper).  Returns the array, or NULL. */
static char **keeper_env(size_t *bytes)
{
	size_t n = 0, preload = 0;
	for (char **e = environ; e && *e; e++, n++)
		if (strncmp(*e, "LD_PRELOAD=", 11) == 0)
			preload += strlen(*e) + 1;
	*bytes = (n + 1) * sizeof(char *) + preload + 16;
	char **env = ps_mem_alloc(*bytes);
	if (!env)
		return NULL;
	char *text = (char *)(env + n + 1);
	size_t k = 0;
	for (char **e = environ; e && *e; e++) {
		if (strncmp(*e, "LD_PRELOAD=", 11) != 0) {
			env[k++] = *e;
			continue;
		}
		size_t cap = strlen(*e) + 1;
		memcpy(text, "LD_PRELOAD=", 11);
		strip_preload(text + 11, cap - 11, *e + 11);
		if (text[11]) {
			env[k++] = text;
			text += cap;
		}
	}
	env[k] = NULL;
	return env;
}

/* The first process of the keeper forks and exits at once: reap it, but
 * never past the bound. */
static void reap(pid_t pid)
{
	uint64_t until = ps_now_ns() + PS_SHARED_BOUND_NS;
	int status;
	while (ps_sys.wait4(pid, &status, WNOHANG) == 0 && ps_now_ns() < until)
		ps_sys.poll(NULL, 0, 1);
}

void ps_shared_spawn(void)
{
	struct ps_rundir rd;
	pid_t me = ps_sys.getpid();
	int saved = errno;
	if (__atomic_exchange_n(&started_by, me, __ATOMIC_RELAXED) == me)
		return;
	if (no_keeper || !ps_config.keeper_path[0] ||
	    ps_rundir_init(&rd, ps_config.runtime_dir, ps_sys.getuid()) < 0 || keeper_alive(&rd)) {
		errno = saved;
		return;
	}
	size_t bytes;
	char **env = keeper_env(&bytes);
	if (!env) {
		errno = saved;
		return;
	}
	char *argv[] = { ps_config.keeper_path, (char *)"--detach", NULL };
	pid_t pid;
	int r = ps_sys.spawn(&pid, ps_config.keeper_path, argv, env);
	ps_mem_free(env, bytes);
	if (r != 0)
		PS_LOG_WARN("cannot start the keeper %s (%s); this process connects by itself",
			    ps_config.keeper_path, strerror(r));
	else
		reap(pid);
	errno = saved;
}
