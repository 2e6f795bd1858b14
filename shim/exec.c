/* The calls that run another program.  A parked number (lib/park.h) is a
 * descriptor the program believes closed: it must not reach the new
 * program, and setting FD_CLOEXEC at every park would cost each cycle a
 * syscall.  So it is set here, once per exec, on every parked number.
 * glibc's execl family, system and popen reach execve and posix_spawn
 * through internal calls no preload sees, so each is wrapped itself.
 * vfork is fork here (process.c), and its child's exec comes through these. */
#include "real.h"
#include "park.h"

#include <errno.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int execve(const char *path, char *const argv[], char *const envp[])
{
	ps_park_before_exec();
	return real()->execve(path, argv, envp);
}

int execv(const char *path, char *const argv[])
{
	ps_park_before_exec();
	return real()->execv(path, argv);
}

int execvp(const char *file, char *const argv[])
{
	ps_park_before_exec();
	return real()->execvp(file, argv);
}

int execvpe(const char *file, char *const argv[], char *const envp[])
{
	ps_park_before_exec();
	return real()->execvpe(file, argv, envp);
}

int fexecve(int fd, char *const argv[], char *const envp[])
{
	ps_park_before_exec();
	return real()->fexecve(fd, argv, envp);
}

/* More arguments than fit in any exec's argument space (ARG_MAX is far
 * below this many pointers). */
#define MAX_EXECL_ARGS 65536

/* The arguments of an execl call, arg0 included, up to its NULL;
 * MAX_EXECL_ARGS past the limit. */
static size_t count_args(va_list ap)
{
	size_t n = 1;
	while (va_arg(ap, char *) && n < MAX_EXECL_ARGS)
		n++;
	return n;
}

static void collect_args(char **argv, size_t n, const char *arg0, va_list ap)
{
	argv[0] = (char *)arg0;
	for (size_t i = 1; i < n; i++)
		argv[i] = va_arg(ap, char *);
	argv[n] = NULL;
}

int execl(const char *path, const char *arg0, ...)
{
	va_list ap, again;
	va_start(ap, arg0);
	va_copy(again, ap);
	size_t n = count_args(ap);
	va_end(ap);
	if (n >= MAX_EXECL_ARGS) {
		va_end(again);
		errno = E2BIG;
		return -1;
	}
	char *argv[n + 1];
	collect_args(argv, n, arg0, again);
	va_end(again);
	return execv(path, argv);
}

int execlp(const char *file, const char *arg0, ...)
{
	va_list ap, again;
	va_start(ap, arg0);
	va_copy(again, ap);
	size_t n = count_args(ap);
	va_end(ap);
	if (n >= MAX_EXECL_ARGS) {
		va_end(again);
		errno = E2BIG;
		return -1;
	}
	char *argv[n + 1];
	collect_args(argv, n, arg0, again);
	va_end(again);
	return execvp(file, argv);
}

int execle(const char *path, const char *arg0, ...)
{
	va_list ap, again;
	va_start(ap, arg0);
	va_copy(again, ap);
	size_t n = count_args(ap);
	char *const *envp = va_arg(ap, char *const *); /* after the NULL */
	va_end(ap);
	if (n >= MAX_EXECL_ARGS) {
		va_end(again);
		errno = E2BIG;
		return -1;
	}
	char *argv[n + 1];
	collect_args(argv, n, arg0, again);
	va_end(again);
	return execve(path, argv, envp);
}

int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
		const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	ps_park_before_exec();
	return real()->posix_spawn(pid, path, actions, attr, argv, envp);
}

int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
		 const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	ps_park_before_exec();
	return real()->posix_spawnp(pid, file, actions, attr, argv, envp);
}

int system(const char *command)
{
	ps_park_before_exec();
	return real()->system(command);
}

FILE *popen(const char *command, const char *mode)
{
	ps_park_before_exec();
	return real()->popen(command, mode);
}
