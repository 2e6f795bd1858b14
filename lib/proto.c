/* The protocol tracker's front: recognises the protocol from the first
 * bytes the program writes (holding a short prefix while writes are too
 * small to tell), hands every later byte to that protocol's framer
 * (http.c, resp.c, memcache.c), and turns their state into a verdict.
 *
 * Recognition, in this order:
 *   0x16 0x03                          TLS handshake record
 *   0x80                               memcached binary request magic
 *   '*' digit or '-'                   a RESP array: Redis
 *   METHOD SP ('/' | '*' | http(s)://) HTTP/1.x request line (CONNECT: any target)
 *   a lowercase memcached command word memcached (its commands are lowercase)
 *   a Redis command word, any case     a Redis inline command
 *   anything else                      PS_PROTO_OTHER
 * A word must be followed by a space or the end of the line.  The order
 * matters where words overlap: "GET /x" is HTTP, "get k" memcached, "GET k"
 * Redis.  A misrecognition fails closed: the wrong framer rejects the
 * answers and the connection becomes NEVER. */
#include "proto.h"

#include <string.h>

_Static_assert(sizeof(struct ps_proto_state) <= 256, "the tracker is embedded in every record");

static const char *const http_methods[] = {
	"DELETE", "GET", "HEAD", "POST", "PUT", "CONNECT", "OPTIONS", "TRACE", "COPY", "LOCK",
	"MKCOL", "MOVE", "PROPFIND", "PROPPATCH", "SEARCH", "UNLOCK", "BIND", "REBIND", "UNBIND",
	"ACL", "REPORT", "MKACTIVITY", "CHECKOUT", "MERGE", "M-SEARCH", "NOTIFY", "SUBSCRIBE",
	"UNSUBSCRIBE", "PATCH", "PURGE", "MKCALENDAR", "LINK", "UNLINK", "SOURCE",
};

static const char *const memcached_words[] = {
	"get", "gets", "set", "add", "replace", "append", "prepend", "cas", "delete", "incr",
	"decr", "touch", "gat", "gats", "version", "stats", "flush_all", "verbosity", "quit",
	"mg", "ms", "md", "ma", "mn", "me",
};

/* Redis commands recognised when sent inline (clients speak RESP arrays,
 * people and small scripts type these).  Every command that binds state to
 * the connection is here, so that inline use of it is framed and refused
 * rather than pooled byte by byte under `any`. */
static const char *const redis_words[] = {
	"PING", "ECHO", "GET", "SET", "SETEX", "SETNX", "GETSET", "GETDEL", "DEL", "UNLINK",
	"EXISTS", "INCR", "DECR", "INCRBY", "DECRBY", "MGET", "MSET", "APPEND", "STRLEN",
	"EXPIRE", "PEXPIRE", "TTL", "PTTL", "PERSIST", "KEYS", "SCAN", "TYPE", "RENAME",
	"HGET", "HSET", "HMGET", "HMSET", "HGETALL", "HDEL", "HINCRBY", "HKEYS", "HLEN",
	"LPUSH", "RPUSH", "LPOP", "RPOP", "LRANGE", "LLEN", "LINDEX", "SADD", "SREM",
	"SMEMBERS", "SISMEMBER", "SCARD", "ZADD", "ZRANGE", "ZREM", "ZSCORE", "ZCARD",
	"XADD", "XREAD", "XLEN", "PUBLISH", "INFO", "DBSIZE", "TIME", "FLUSHDB", "FLUSHALL",
	"CONFIG", "COMMAND", "SLOWLOG", "MEMORY", "OBJECT", "SCRIPT", "EVAL", "EVALSHA",
	"FUNCTION", "FCALL", "WAIT", "SAVE", "BGSAVE", "LASTSAVE", "DEBUG", "SHUTDOWN",
	"SELECT", "AUTH", "HELLO", "CLIENT", "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH",
	"SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE",
	"MONITOR", "READONLY", "READWRITE", "QUIT", "RESET", "SYNC", "PSYNC", "SWAPDB", "MOVE",
};

#define UNDECIDED PS_PROTO_COUNT
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* A word list with an index by first byte and length, so that a stream's
 * first word (asked at every use of every connection: the fast path's cost)
 * is checked against the few entries that can match, not all of them. */
struct words {
	const char *const *list;
	size_t n;
	uint32_t lengths[128]; /* bit L set: a word of length L starts with this byte; atomic */
	int built;             /* atomic: lengths is complete */
};

#define WORDS(a) { (a), N(a), { 0 }, 0 }
static struct words http_words = WORDS(http_methods);
static struct words memcached_index = WORDS(memcached_words);
static struct words redis_index = WORDS(redis_words);

static void build(struct words *ws)
{
	/* threads that race here write the same bits */
	for (size_t i = 0; i < ws->n; i++)
		__atomic_fetch_or(&ws->lengths[(unsigned char)ws->list[i][0] & 127], 1u << strlen(ws->list[i]),
				  __ATOMIC_RELAXED);
	__atomic_store_n(&ws->built, 1, __ATOMIC_RELEASE);
}

static bool word_in(struct words *ws, const uint8_t *w, size_t len, bool any_case)
{
	if (!__atomic_load_n(&ws->built, __ATOMIC_ACQUIRE))
		build(ws);
	unsigned char first = w[0];
	if (any_case && first >= 'a' && first <= 'z')
		first = (unsigned char)(first - 32);
	if (first >= 128 || len >= 32 ||
	    !(__atomic_load_n(&ws->lengths[first], __ATOMIC_RELAXED) & (1u << len)))
		return false;
	for (size_t i = 0; i < ws->n; i++) {
		const char *word = ws->list[i];
		if ((unsigned char)word[0] != first || strlen(word) != len)
			continue;
		size_t j = 0;
		for (; j < len; j++) {
			unsigned char c = w[j];
			if (any_case && c >= 'a' && c <= 'z')
				c = (unsigned char)(c - 32);
			if (c != (unsigned char)word[j])
				break;
		}
		if (j == len)
			return true;
	}
	return false;
}

static bool word_byte(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == '-';
}

/* Whether an HTTP request target starts at t: origin form, asterisk form,
 * absolute form.  PS_PROTO_NONE if not, UNDECIDED while too few bytes are
 * there to tell. */
static int http_target(const uint8_t *t, size_t len)
{
	static const char *const schemes[2] = { "http://", "https://" };
	bool undecided = false;
	if (len == 0)
		return UNDECIDED;
	if (t[0] == '/' || t[0] == '*')
		return PS_PROTO_HTTP;
	for (size_t s = 0; s < 2; s++) {
		size_t sl = strlen(schemes[s]), i = 0;
		while (i < sl && i < len &&
		       (t[i] >= 'A' && t[i] <= 'Z' ? t[i] + 32 : t[i]) == (unsigned char)schemes[s][i])
			i++;
		if (i == sl)
			return PS_PROTO_HTTP;
		if (i == len)
			undecided = true;
	}
	return undecided ? UNDECIDED : PS_PROTO_NONE;
}

/* The protocol of a stream starting with b[0..len), or UNDECIDED. */
static int classify(const uint8_t *b, size_t len)
{
	if (len == 0)
		return UNDECIDED;
	if (b[0] == 0x16)
		return len < 2 ? UNDECIDED : b[1] == 0x03 ? PS_PROTO_TLS : PS_PROTO_OTHER;
	if (b[0] == 0x80)
		return PS_PROTO_MEMCACHED; /* it refuses the binary protocol itself */
	if (b[0] == '*')
		return len < 2 ? UNDECIDED
		       : (b[1] >= '0' && b[1] <= '9') || b[1] == '-' ? PS_PROTO_REDIS
								     : PS_PROTO_OTHER;
	size_t w = 0;
	while (w < len && w <= 16 && word_byte(b[w]))
		w++;
	if (w == 0 || w > 16)
		return PS_PROTO_OTHER;
	if (w == len)
		return len >= PS_PROTO_PREFIX ? PS_PROTO_OTHER : UNDECIDED;
	uint8_t d = b[w];
	if (d == ' ' && word_in(&http_words, b, w, false)) {
		if (w == 7 && memcmp(b, "CONNECT", 7) == 0)
			return PS_PROTO_HTTP;
		int t = http_target(b + w + 1, len - w - 1);
		if (t != PS_PROTO_NONE)
			return t == UNDECIDED && len >= PS_PROTO_PREFIX ? PS_PROTO_OTHER : t;
	}
	bool line_end = d == ' ' || d == '\r' || d == '\n';
	if (line_end && word_in(&memcached_index, b, w, false))
		return PS_PROTO_MEMCACHED;
	if ((line_end || d == '\t') && word_in(&redis_index, b, w, true))
		return PS_PROTO_REDIS;
	return PS_PROTO_OTHER;
}

void ps_proto_init(struct ps_proto_state *st, unsigned enabled)
{
	st->proto = PS_PROTO_NONE;
	st->never = PS_R_NONE;
	st->pre_len = 0;
	st->other_read = 0;
	st->enabled = enabled;
	st->exchanges = 0;
	st->keepalive_ms = 0;
}

/* Sets up the recognised protocol's framer. */
static void start(struct ps_proto_state *st, int proto)
{
	st->proto = (uint8_t)proto;
	if (proto == PS_PROTO_TLS) {
		ps_proto_never(st, PS_R_TLS);
		return;
	}
	if (!ps_proto_enabled(st->enabled, (enum ps_proto)proto)) {
		ps_proto_never(st, proto == PS_PROTO_OTHER ? PS_R_UNRECOGNISED : PS_R_DISABLED);
		return;
	}
	switch (proto) {
	case PS_PROTO_HTTP:
		ps_http_start(st);
		break;
	case PS_PROTO_REDIS:
		ps_resp_start(st);
		break;
	case PS_PROTO_MEMCACHED:
		ps_mc_start(st);
		break;
	}
}

static void out_bytes(struct ps_proto_state *st, const uint8_t *b, size_t n)
{
	switch (st->proto) {
	case PS_PROTO_HTTP:
		ps_http_out(st, b, n);
		break;
	case PS_PROTO_REDIS:
		ps_resp_out(st, b, n);
		break;
	case PS_PROTO_MEMCACHED:
		ps_mc_out(st, b, n);
		break;
	case PS_PROTO_OTHER:
		st->other_read = 0;
		break;
	}
}

void ps_proto_out(struct ps_proto_state *st, const void *buf, size_t len)
{
	const uint8_t *b = buf;
	if (len == 0 || st->never)
		return;
	if (st->proto == PS_PROTO_NONE) {
		/* Classify the held prefix followed by as much of this write as
		 * fits.  Undecided means all of it fits: hold it. */
		uint8_t held[PS_PROTO_PREFIX];
		size_t have = st->pre_len, take = len < PS_PROTO_PREFIX - have ? len : PS_PROTO_PREFIX - have;
		memcpy(held, st->u.prefix, have);
		memcpy(held + have, b, take);
		int p = classify(held, have + take);
		if (p == UNDECIDED) {
			memcpy(st->u.prefix + have, b, take);
			st->pre_len = (uint8_t)(have + take);
			return;
		}
		/* start() reuses the union the prefix lived in: feed from the copy */
		start(st, p);
		st->pre_len = 0;
		if (st->never)
			return;
		if (have)
			out_bytes(st, held, have);
		if (st->never)
			return;
	}
	out_bytes(st, b, len);
}

void ps_proto_in(struct ps_proto_state *st, const void *buf, size_t len)
{
	const uint8_t *b = buf;
	if (len == 0 || st->never)
		return;
	switch (st->proto) {
	case PS_PROTO_NONE:
		/* before the program's first word (or before it said enough to
		 * be recognised): a greeting, or late bytes on a reused connection */
		ps_proto_never(st, PS_R_SERVER_FIRST);
		break;
	case PS_PROTO_HTTP:
		ps_http_in(st, b, len);
		break;
	case PS_PROTO_REDIS:
		ps_resp_in(st, b, len);
		break;
	case PS_PROTO_MEMCACHED:
		ps_mc_in(st, b, len);
		break;
	case PS_PROTO_OTHER:
		/* byte by byte, as before protocols were known: a read after a
		 * write is taken for an exchange */
		if (!st->other_read)
			ps_proto_exchange_done(st);
		st->other_read = 1;
		break;
	}
}

void ps_proto_unseen(struct ps_proto_state *st, size_t len)
{
	if (len)
		ps_proto_never(st, PS_R_UNSEEN);
}

static void each_iov(struct ps_proto_state *st, const struct iovec *iov, size_t cnt, size_t bytes,
		     void (*fn)(struct ps_proto_state *, const void *, size_t))
{
	for (size_t i = 0; i < cnt && bytes; i++) {
		size_t n = iov[i].iov_len < bytes ? iov[i].iov_len : bytes;
		if (n == 0)
			continue; /* an empty entry may have a NULL base */
		fn(st, iov[i].iov_base, n);
		bytes -= n;
	}
}

void ps_proto_out_iov(struct ps_proto_state *st, const struct iovec *iov, size_t cnt, size_t bytes)
{
	each_iov(st, iov, cnt, bytes, ps_proto_out);
}

void ps_proto_in_iov(struct ps_proto_state *st, const struct iovec *iov, size_t cnt, size_t bytes)
{
	each_iov(st, iov, cnt, bytes, ps_proto_in);
}

enum ps_proto_reason ps_proto_reason(const struct ps_proto_state *st)
{
	enum ps_proto_reason r = PS_R_NONE;
	if (st->never)
		return (enum ps_proto_reason)st->never;
	switch (st->proto) {
	case PS_PROTO_NONE:
		return PS_R_NO_EXCHANGE;
	case PS_PROTO_HTTP:
		r = ps_http_busy(st);
		break;
	case PS_PROTO_REDIS:
		r = ps_resp_busy(st);
		break;
	case PS_PROTO_MEMCACHED:
		r = ps_mc_busy(st);
		break;
	case PS_PROTO_OTHER:
		if (!st->other_read)
			r = PS_R_LAST_WRITE;
		break;
	}
	if (r == PS_R_NONE && st->exchanges == 0)
		r = PS_R_NO_EXCHANGE;
	return r;
}

enum ps_proto_verdict ps_proto_verdict(const struct ps_proto_state *st)
{
	if (st->never)
		return PS_V_NEVER;
	return ps_proto_reason(st) == PS_R_NONE ? PS_V_IDLE : PS_V_BUSY;
}

void ps_proto_keepalive(struct ps_proto_state *st, uint32_t seconds)
{
	if (seconds == 0) {
		ps_proto_never(st, PS_R_HTTP_KEEPALIVE_0);
		return;
	}
	uint32_t ms = seconds > UINT32_MAX / 1000 ? UINT32_MAX / 1000 * 1000 : seconds * 1000;
	if (st->keepalive_ms == 0 || ms < st->keepalive_ms)
		st->keepalive_ms = ms;
}

uint32_t ps_proto_keepalive_ms(const struct ps_proto_state *st)
{
	return st->keepalive_ms;
}

enum ps_proto ps_proto_kind(const struct ps_proto_state *st)
{
	return (enum ps_proto)st->proto;
}

uint32_t ps_proto_exchanges(const struct ps_proto_state *st)
{
	return st->exchanges;
}

const char *ps_proto_name(enum ps_proto p)
{
	static const char *const names[PS_PROTO_COUNT] = {
		[PS_PROTO_NONE] = "none",	[PS_PROTO_HTTP] = "http",   [PS_PROTO_REDIS] = "redis",
		[PS_PROTO_MEMCACHED] = "memcached", [PS_PROTO_OTHER] = "other", [PS_PROTO_TLS] = "tls",
	};
	return p < PS_PROTO_COUNT ? names[p] : "?";
}

const char *ps_proto_reason_name(enum ps_proto_reason r)
{
	static const char *const names[PS_R_COUNT] = {
		[PS_R_NONE] = "poolable",
		[PS_R_NO_EXCHANGE] = "no complete request and answer yet",
		[PS_R_REQUEST_PARTIAL] = "a request was only partly sent",
		[PS_R_RESPONSE_PENDING] = "an answer was not read to its end",
		[PS_R_LAST_WRITE] = "the last I/O was a write",
		[PS_R_REDIS_MULTI] = "Redis MULTI without EXEC",
		[PS_R_SERVER_FIRST] = "the server sent bytes before the request",
		[PS_R_UNSOLICITED] = "the server sent an answer nobody asked for",
		[PS_R_UNSEEN] = "bytes sent the shim could not see (sendfile, splice)",
		[PS_R_TLS] = "TLS",
		[PS_R_UNRECOGNISED] = "unrecognised protocol",
		[PS_R_DISABLED] = "protocol not enabled in POOLSHIM_PROTOCOLS",
		[PS_R_HTTP_SERVER_CLOSE] = "the server asked to close (Connection: close)",
		[PS_R_HTTP_CLIENT_CLOSE] = "the program asked the server to close (Connection: close)",
		[PS_R_HTTP_10] = "HTTP/1.0 without keep-alive",
		[PS_R_HTTP_UPGRADE] = "protocol upgrade",
		[PS_R_HTTP_CONNECT] = "CONNECT tunnel",
		[PS_R_HTTP_AUTH] = "connection-bound authentication (NTLM/Negotiate)",
		[PS_R_HTTP_EOF_BODY] = "a response that ends only when the connection closes",
		[PS_R_HTTP_PIPELINE] = "more than 8 pipelined HTTP requests",
		[PS_R_HTTP_KEEPALIVE_0] = "the server's keep-alive timeout is 0",
		[PS_R_HTTP_PARSE] = "unparseable HTTP",
		[PS_R_REDIS_SELECT] = "Redis SELECT",
		[PS_R_REDIS_AUTH] = "Redis AUTH",
		[PS_R_REDIS_HELLO] = "Redis HELLO with AUTH, SETNAME or RESP3",
		[PS_R_REDIS_CLIENT] = "Redis CLIENT SETNAME, TRACKING or REPLY",
		[PS_R_REDIS_WATCH] = "Redis WATCH",
		[PS_R_REDIS_SUBSCRIBE] = "Redis SUBSCRIBE",
		[PS_R_REDIS_MONITOR] = "Redis MONITOR",
		[PS_R_REDIS_READONLY] = "Redis READONLY",
		[PS_R_REDIS_QUIT] = "Redis QUIT",
		[PS_R_REDIS_REPLICATION] = "Redis replication stream (SYNC/PSYNC)",
		[PS_R_REDIS_DEPTH] = "Redis reply nested too deeply",
		[PS_R_REDIS_PARSE] = "unparseable Redis protocol",
		[PS_R_MC_BINARY] = "memcached binary protocol",
		[PS_R_MC_QUIT] = "memcached quit",
		[PS_R_MC_UNKNOWN] = "unknown memcached command",
		[PS_R_MC_PARSE] = "unparseable memcached protocol",
	};
	return r < PS_R_COUNT && names[r] ? names[r] : "?";
}
