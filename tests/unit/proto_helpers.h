/* Helpers for the protocol tracker's tests (test_proto.c, test_http.c,
 * test_resp.c, test_memcache.c): feed strings whole, byte by byte, or split
 * at every position, and assert verdicts with their reasons by name. */
#ifndef POOLSHIM_UNIT_PROTO_HELPERS_H
#define POOLSHIM_UNIT_PROTO_HELPERS_H

#include "proto.h"

#include <string.h>

#include <criterion/criterion.h>

static inline void t_out(struct ps_proto_state *st, const char *s)
{
	ps_proto_out(st, s, strlen(s));
}

static inline void t_in(struct ps_proto_state *st, const char *s)
{
	ps_proto_in(st, s, strlen(s));
}

static inline void t_out_n(struct ps_proto_state *st, const void *s, size_t n)
{
	ps_proto_out(st, s, n);
}

static inline void t_in_n(struct ps_proto_state *st, const void *s, size_t n)
{
	ps_proto_in(st, s, n);
}

/* One call per byte: every header name and value split at every byte. */
static inline void t_out_bytes(struct ps_proto_state *st, const char *s)
{
	for (size_t i = 0; s[i]; i++)
		ps_proto_out(st, s + i, 1);
}

static inline void t_in_bytes(struct ps_proto_state *st, const char *s)
{
	for (size_t i = 0; s[i]; i++)
		ps_proto_in(st, s + i, 1);
}

/* Two calls, split at `at`. */
static inline void t_in_split(struct ps_proto_state *st, const char *s, size_t at)
{
	ps_proto_in(st, s, at);
	ps_proto_in(st, s + at, strlen(s) - at);
}

static inline void t_out_split(struct ps_proto_state *st, const char *s, size_t at)
{
	ps_proto_out(st, s, at);
	ps_proto_out(st, s + at, strlen(s) - at);
}

static inline const char *t_verdict_name(enum ps_proto_verdict v)
{
	return v == PS_V_IDLE ? "IDLE" : v == PS_V_BUSY ? "BUSY" : "NEVER";
}

#define t_assert_verdict(st, v, r)                                                              \
	do {                                                                                     \
		enum ps_proto_verdict got_v_ = ps_proto_verdict(st);                             \
		enum ps_proto_reason got_r_ = ps_proto_reason(st);                               \
		cr_assert(got_v_ == (v) && got_r_ == (r), "%s:%d: want %s (%s), got %s (%s)",   \
			  __FILE__, __LINE__, t_verdict_name(v), ps_proto_reason_name(r),        \
			  t_verdict_name(got_v_), ps_proto_reason_name(got_r_));                 \
	} while (0)

#define t_assert_idle(st) t_assert_verdict(st, PS_V_IDLE, PS_R_NONE)
#define t_assert_never(st, r) t_assert_verdict(st, PS_V_NEVER, r)
#define t_assert_busy(st, r) t_assert_verdict(st, PS_V_BUSY, r)

#endif
