/* Shared helpers for the unit tests: loopback TCP pairs, a fake environment
 * for ps_config_parse, and log capture through a pipe. */
#ifndef POOLSHIM_UNIT_HELPERS_H
#define POOLSHIM_UNIT_HELPERS_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* A listening socket on 127.0.0.1, kernel-chosen port; *addr gets its address. */
int t_listen(struct sockaddr_in *addr);

/* accept() with a timeout in ms; -1 (errno EAGAIN) if nothing arrives. */
int t_accept(int lfd, int timeout_ms);

/* A connected loopback pair: *cli is the connecting side, *srv the accepted one.
 * The listener is closed. */
void t_tcp_pair(int *cli, int *srv);

/* Waits until fd is readable (or has an error/hangup); 1 if so, 0 on timeout. */
int t_wait_readable(int fd, int timeout_ms);

/* Reads exactly n bytes (blocking with a timeout); returns bytes read. */
ssize_t t_read_n(int fd, void *buf, size_t n, int timeout_ms);

/* ---- fake environment ---- */
void t_env_clear(void);
void t_env_set(const char *name, const char *value);
const char *t_env_lookup(const char *name);
const char *t_env_empty(const char *name);

/* ---- log capture ---- */
/* Points ps_log at a fresh pipe. */
void t_log_capture_start(void);
/* Everything logged since start (NUL-terminated, static buffer). */
const char *t_log_captured(void);
/* Newline-terminated lines in the capture that contain needle. */
int t_log_count_lines(const char *needle);
/* All newline-terminated lines in the capture. */
int t_log_total_lines(void);

/* ---- the program's calls ---- */
/* Points ps_libc (lib/libc.h) at libc's own functions, as shim/real.c does
 * in the shim. */
void t_libc_fill(void);

/* A suite's start for tests that drive the entry points: SIGPIPE ignored,
 * default configuration but POOLSHIM_PROTOCOLS with `any` (the tests' line
 * protocol), counters zeroed, the pool ready, ps_libc filled;
 * returns a loopback listener, its address in *dst. */
int t_pool_setup(struct sockaddr_in *dst);

/* ---- fake clock ---- */
extern uint64_t t_fake_now;
uint64_t t_fake_clock(void);

#endif
