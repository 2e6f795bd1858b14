/* Protocol recognition and the per-connection protocol tracker.
 *
 * A connection is recognised from the first bytes the program writes
 * (HTTP/1.x, Redis RESP, memcached text/meta, TLS, or something else), then
 * every byte the program sends and every byte it consumes is fed to that
 * protocol's framer.  The tracker answers one question at close: may this
 * connection be handed to the next user (IDLE), is an exchange half done
 * (BUSY), or must it never be pooled (NEVER, sticky, with a reason)?
 *
 * Plain computation: no allocation, no syscalls, no locks, no libc names
 * the shim interposes.  The state is a fixed-size struct meant to be
 * embedded in the connection record; one thread feeds it at a time (the
 * caller serialises, as it does for the record's other per-use fields).
 *
 * Use: ps_proto_init() when the connection is connected, and again at each
 * checkout (a pooled connection is at a message boundary, so nothing is
 * lost but ps_proto_keepalive_ms(), which the caller keeps with the
 * destination).  Then ps_proto_out() after every write with exactly the
 * bytes the kernel accepted, ps_proto_in() after every read with exactly the
 * bytes returned (never for MSG_PEEK), and ps_proto_verdict() at close. */
#ifndef POOLSHIM_PROTO_H
#define POOLSHIM_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum ps_proto {
	PS_PROTO_NONE = 0,  /* nothing written yet, or too little to tell */
	PS_PROTO_HTTP,      /* HTTP/1.x */
	PS_PROTO_REDIS,     /* RESP arrays or inline commands */
	PS_PROTO_MEMCACHED, /* text and meta protocol (binary: recognised, never pooled) */
	PS_PROTO_OTHER,     /* client-first bytes that are none of the above */
	PS_PROTO_TLS,       /* a TLS handshake record: never pooled */
	PS_PROTO_COUNT
};

/* Bits of ps_config.protocols (POOLSHIM_PROTOCOLS).  `any` is PS_PROTO_OTHER. */
#define PS_PROTO_BIT(p) (1u << (p))
#define PS_PROTOS_DEFAULT \
	(PS_PROTO_BIT(PS_PROTO_HTTP) | PS_PROTO_BIT(PS_PROTO_REDIS) | PS_PROTO_BIT(PS_PROTO_MEMCACHED))
#define PS_PROTOS_ALL (PS_PROTOS_DEFAULT | PS_PROTO_BIT(PS_PROTO_OTHER))

enum ps_proto_verdict {
	PS_V_IDLE,  /* every request sent has had its whole answer read, nothing partial
		     * either way, at least one complete exchange: may be pooled */
	PS_V_BUSY,  /* an exchange is under way (or none happened yet): pooling now
		     * would hand over bytes in flight; close ends this connection only */
	PS_V_NEVER, /* sticky: this connection must never be pooled */
};

/* Why a connection is BUSY or NEVER.  Names in ps_proto_reason_name(). */
enum ps_proto_reason {
	PS_R_NONE = 0,
	/* BUSY */
	PS_R_NO_EXCHANGE,       /* no complete request and answer yet */
	PS_R_REQUEST_PARTIAL,   /* a request is only partly sent */
	PS_R_RESPONSE_PENDING,  /* an answer is not read to its end */
	PS_R_LAST_WRITE,        /* unrecognised protocol: the last I/O was a write */
	PS_R_REDIS_MULTI,       /* MULTI sent, EXEC/DISCARD not yet */
	/* NEVER */
	PS_R_SERVER_FIRST,      /* bytes arrived before the program's first word */
	PS_R_UNSOLICITED,       /* the server sent an answer nobody asked for */
	PS_R_UNSEEN,            /* bytes moved that the tracker could not read (sendfile, splice) */
	PS_R_TLS,
	PS_R_UNRECOGNISED,      /* PS_PROTO_OTHER while `any` is not enabled */
	PS_R_DISABLED,          /* a recognised protocol left out of POOLSHIM_PROTOCOLS */
	PS_R_HTTP_SERVER_CLOSE, /* response: Connection: close */
	PS_R_HTTP_CLIENT_CLOSE, /* request: Connection: close */
	PS_R_HTTP_10,           /* HTTP/1.0 without keep-alive, either direction */
	PS_R_HTTP_UPGRADE,      /* Upgrade request, 101 Switching Protocols */
	PS_R_HTTP_CONNECT,
	PS_R_HTTP_AUTH,         /* NTLM / Negotiate authenticate the connection */
	PS_R_HTTP_EOF_BODY,     /* a response that ends only when the connection closes */
	PS_R_HTTP_PIPELINE,     /* more requests outstanding than the tracker holds */
	PS_R_HTTP_KEEPALIVE_0,  /* Keep-Alive: timeout=0 */
	PS_R_HTTP_PARSE,
	PS_R_REDIS_SELECT,      /* SELECT of a database other than 0 */
	PS_R_REDIS_AUTH,
	PS_R_REDIS_HELLO,       /* HELLO with AUTH, SETNAME, or a protocol other than 2 */
	PS_R_REDIS_CLIENT,      /* CLIENT SETNAME / TRACKING / REPLY / CACHING / NO-EVICT / NO-TOUCH */
	PS_R_REDIS_WATCH,
	PS_R_REDIS_SUBSCRIBE,   /* the SUBSCRIBE family, UNSUBSCRIBE included */
	PS_R_REDIS_MONITOR,
	PS_R_REDIS_READONLY,
	PS_R_REDIS_QUIT,
	PS_R_REDIS_REPLICATION, /* SYNC / PSYNC: a replication stream follows */
	PS_R_REDIS_DEPTH,       /* a reply nested deeper than the tracker follows */
	PS_R_REDIS_PARSE,
	PS_R_MC_BINARY,         /* memcached binary protocol */
	PS_R_MC_QUIT,
	PS_R_MC_UNKNOWN,        /* a memcached command whose answer cannot be framed */
	PS_R_MC_PARSE,
	PS_R_COUNT
};

/* ---- per-protocol state: only the structs, owned by http.c, resp.c, memcache.c ---- */

#include "http.h"
#include "memcache.h"
#include "resp.h"

/* Bytes kept while the first writes are too short to recognise. */
#define PS_PROTO_PREFIX 24

struct ps_proto_state {
	uint8_t proto;         /* enum ps_proto */
	uint8_t never;         /* enum ps_proto_reason; PS_R_NONE until NEVER (sticky) */
	uint8_t pre_len;       /* bytes in u.prefix, before recognition */
	uint8_t other_read;    /* PS_PROTO_OTHER: the last I/O was a read */
	uint32_t enabled;      /* PS_PROTO_BIT mask this connection may be pooled under */
	uint32_t exchanges;    /* complete request/answer pairs since init */
	uint32_t keepalive_ms; /* lowest Keep-Alive timeout announced, 0: none */
	union {                /* initialised when the protocol is recognised */
		uint8_t prefix[PS_PROTO_PREFIX];
		struct ps_http http;
		struct ps_resp resp;
		struct ps_mc mc;
	} u;
};

/* Cost: four stores to the 16-byte header; the union is set up only when
 * the protocol is recognised (HTTP: two http_parser_init, 64 bytes).
 * enabled: the PS_PROTO_BIT mask allowed to pool (ps_config.protocols). */
void ps_proto_init(struct ps_proto_state *st, unsigned enabled);

/* Bytes the program sent: exactly what the kernel accepted, once per
 * successful write (len 0 is ignored). */
void ps_proto_out(struct ps_proto_state *st, const void *buf, size_t len);
/* The same for writev/sendmsg: the first `bytes` bytes of iov[0..cnt). */
void ps_proto_out_iov(struct ps_proto_state *st, const struct iovec *iov, size_t cnt, size_t bytes);

/* The program moved len bytes on the socket that the shim cannot read
 * (sendfile, splice, copy_file_range): nothing can frame them, so the
 * connection is NEVER.  len 0 is ignored, as for the others. */
void ps_proto_unseen(struct ps_proto_state *st, size_t len);

/* Bytes the program consumed by a read (not a peek). */
void ps_proto_in(struct ps_proto_state *st, const void *buf, size_t len);
void ps_proto_in_iov(struct ps_proto_state *st, const struct iovec *iov, size_t cnt, size_t bytes);

enum ps_proto_verdict ps_proto_verdict(const struct ps_proto_state *st);

/* Why the verdict is NEVER or BUSY; PS_R_NONE when IDLE. */
enum ps_proto_reason ps_proto_reason(const struct ps_proto_state *st);

/* Plain words for the exit summary and the debug log. */
const char *ps_proto_reason_name(enum ps_proto_reason r);

/* A response's `Keep-Alive: timeout=N` in milliseconds (the lowest seen);
 * 0: none.  The server closes after N idle seconds: keep the idle time
 * strictly below it. */
uint32_t ps_proto_keepalive_ms(const struct ps_proto_state *st);

/* Which protocol the connection speaks (PS_PROTO_NONE until recognised). */
enum ps_proto ps_proto_kind(const struct ps_proto_state *st);

/* "http", "redis", "memcached", "other", "tls", "none". */
const char *ps_proto_name(enum ps_proto p);

/* Whether mask (ps_config.protocols) lets protocol p be pooled. */
static inline bool ps_proto_enabled(unsigned mask, enum ps_proto p)
{
	return p < PS_PROTO_COUNT && (mask & PS_PROTO_BIT(p)) != 0;
}

/* Complete request/answer exchanges since ps_proto_init. */
uint32_t ps_proto_exchanges(const struct ps_proto_state *st);

/* ---- for the protocol modules (http.c, resp.c, memcache.c) ---- */

/* Sticky: the first reason wins. */
static inline void ps_proto_never(struct ps_proto_state *st, enum ps_proto_reason r)
{
	if (st->never == PS_R_NONE)
		st->never = (uint8_t)r;
}

static inline void ps_proto_exchange_done(struct ps_proto_state *st)
{
	if (st->exchanges != UINT32_MAX)
		st->exchanges++;
}

/* A Keep-Alive timeout of `seconds` was announced. */
void ps_proto_keepalive(struct ps_proto_state *st, uint32_t seconds);

/* Each module: start (set up its part of the union), out/in (bytes, len > 0,
 * only while not NEVER), busy (PS_R_NONE at a boundary with nothing
 * outstanding, else why not). */
void ps_http_start(struct ps_proto_state *st);
void ps_http_out(struct ps_proto_state *st, const uint8_t *b, size_t n);
void ps_http_in(struct ps_proto_state *st, const uint8_t *b, size_t n);
enum ps_proto_reason ps_http_busy(const struct ps_proto_state *st);

void ps_resp_start(struct ps_proto_state *st);
void ps_resp_out(struct ps_proto_state *st, const uint8_t *b, size_t n);
void ps_resp_in(struct ps_proto_state *st, const uint8_t *b, size_t n);
enum ps_proto_reason ps_resp_busy(const struct ps_proto_state *st);

void ps_mc_start(struct ps_proto_state *st);
void ps_mc_out(struct ps_proto_state *st, const uint8_t *b, size_t n);
void ps_mc_in(struct ps_proto_state *st, const uint8_t *b, size_t n);
enum ps_proto_reason ps_mc_busy(const struct ps_proto_state *st);

#endif
