/* The keeper's private directory and the files in it, and the checks both
 * sides make before trusting them (docs/shared.md, "Security"):
 *
 *   $XDG_RUNTIME_DIR/poolshim/   when XDG_RUNTIME_DIR is a directory of ours,
 *   /tmp/poolshim-$UID/          otherwise;
 *     keeper-ns<N>.sock          the keeper's SOCK_SEQPACKET socket
 *     keeper-ns<N>.lock          flock()ed by the running keeper
 * where N is the network namespace's cookie (SO_NETNS_COOKIE): a path is
 * the same in every network namespace, a destination is not (127.0.0.1:80
 * in a container is another server), so each namespace has its keeper.
 *
 * The directory must be a real directory (not a symlink) owned by the
 * user, mode 0700; the socket a socket owned by the user with no group or
 * other permission.  Anything else is refused: another user could have made
 * it.  In /tmp (sticky) nobody else can rename or remove a directory that
 * passed, so a check made once holds. */
#ifndef POOLSHIM_RUNDIR_H
#define POOLSHIM_RUNDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

struct ps_rundir {
	uid_t uid;
	uint64_t netns; /* SO_NETNS_COOKIE of the caller's network namespace; 0: unknown */
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char lock[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* The calling process's network namespace cookie, or 0 if the kernel
 * cannot tell (before 5.14): one socket and one getsockopt, remembered
 * per process. */
uint64_t ps_rundir_netns(void);

/* Fills the paths for uid in the caller's network namespace (xdg: XDG_RUNTIME_DIR or ""; it is used only if
 * it is a directory owned by uid).  Returns 0, or -1 (ENAMETOOLONG) when
 * the socket's path would not fit a sockaddr_un. */
int ps_rundir_init(struct ps_rundir *r, const char *xdg, uid_t uid);

/* Checks the directory; create: make it (0700) first if it is missing.
 * Returns 0, or -1 with errno (ENOENT: missing, not created) and, for a
 * directory that exists but must not be used, a sentence in why. */
int ps_rundir_check(const struct ps_rundir *r, bool create, char *why, size_t len);

/* Checks the socket file.  Returns 0, or -1 with errno (ENOENT: there is
 * none) and, for one that must not be used, a sentence in why. */
int ps_rundir_check_socket(const struct ps_rundir *r, char *why, size_t len);

/* Fills a sockaddr_un for the socket; returns its length. */
socklen_t ps_rundir_addr(const struct ps_rundir *r, struct sockaddr_un *sa);

#endif
