/* proto.c: recognition from the first bytes written (whole, byte by byte),
 * the verdict before any exchange, POOLSHIM_PROTOCOLS masks, the byte-level
 * rule for unrecognised protocols, iovec feeding, reason names, and the
 * size and init cost of the embedded state. */
#include "proto_helpers.h"

#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

static struct ps_proto_state st;

static void setup(void)
{
	ps_proto_init(&st, PS_PROTOS_ALL);
}

TestSuite(proto, .init = setup);

static const struct {
	const char *bytes;
	size_t len; /* 0: strlen */
	enum ps_proto want;
} samples[] = {
	{ "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, PS_PROTO_HTTP },
	{ "POST /api HTTP/1.1\r\n", 0, PS_PROTO_HTTP },
	{ "GET http://example.com/ HTTP/1.1\r\n", 0, PS_PROTO_HTTP },
	{ "GET HTTPS://example.com/ HTTP/1.1\r\n", 0, PS_PROTO_HTTP },
	{ "OPTIONS * HTTP/1.1\r\n", 0, PS_PROTO_HTTP },
	{ "CONNECT example.com:443 HTTP/1.1\r\n", 0, PS_PROTO_HTTP },
	{ "M-SEARCH * HTTP/1.1\r\n", 0, PS_PROTO_HTTP },
	{ "MKCALENDAR /cal HTTP/1.1\r\n", 0, PS_PROTO_HTTP },
	{ "GET foo\r\n", 0, PS_PROTO_REDIS },          /* a Redis inline GET of key foo */
	{ "GET hello\r\n", 0, PS_PROTO_REDIS },        /* 'h' but not http:// */
	{ "PING\r\n", 0, PS_PROTO_REDIS },
	{ "ping\r\n", 0, PS_PROTO_REDIS },
	{ "SELECT 1\r\n", 0, PS_PROTO_REDIS },
	{ "select 1\r\n", 0, PS_PROTO_REDIS },
	{ "*1\r\n$4\r\nPING\r\n", 0, PS_PROTO_REDIS },
	{ "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", 0, PS_PROTO_REDIS },
	{ "get foo\r\n", 0, PS_PROTO_MEMCACHED },      /* memcached commands are lower case */
	{ "set k 0 0 1\r\nx\r\n", 0, PS_PROTO_MEMCACHED },
	{ "flush_all\r\n", 0, PS_PROTO_MEMCACHED },
	{ "version\r\n", 0, PS_PROTO_MEMCACHED },
	{ "mg key v\r\n", 0, PS_PROTO_MEMCACHED },
	{ "mn\r\n", 0, PS_PROTO_MEMCACHED },
	{ "\x80\x00\x00\x05", 4, PS_PROTO_MEMCACHED }, /* binary magic: recognised, refused */
	{ "\x16\x03\x01\x02\x00", 5, PS_PROTO_TLS },
	{ "\x16\x02", 2, PS_PROTO_OTHER },
	{ "\x00\x00\x00\x08\x04\xd2\x16\x2f", 8, PS_PROTO_OTHER }, /* PostgreSQL SSLRequest */
	{ "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0, PS_PROTO_OTHER },  /* h2 preface */
	{ "SSH-2.0-OpenSSH_9.2\r\n", 0, PS_PROTO_OTHER },
	{ "{\"jsonrpc\":\"2.0\"}\n", 0, PS_PROTO_OTHER },
	{ "HELLOTHEREAVERYLONGWORD x\r\n", 0, PS_PROTO_OTHER },
	{ "get", 3, PS_PROTO_NONE },                   /* too short to tell */
	{ "*", 1, PS_PROTO_NONE },
	{ "GET ", 4, PS_PROTO_NONE },
	{ "GET http:", 9, PS_PROTO_NONE },
	{ "\x16", 1, PS_PROTO_NONE },
	{ "*x", 2, PS_PROTO_OTHER },
	{ "GETX / HTTP/1.1\r\n", 0, PS_PROTO_OTHER },
	{ "get/ x", 0, PS_PROTO_OTHER },
	{ "\r\n", 0, PS_PROTO_OTHER },
};

static size_t sample_len(size_t i)
{
	return samples[i].len ? samples[i].len : strlen(samples[i].bytes);
}

Test(proto, recognises_from_the_first_write)
{
	for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
		ps_proto_init(&st, PS_PROTOS_ALL);
		t_out_n(&st, samples[i].bytes, sample_len(i));
		cr_assert_eq(ps_proto_kind(&st), samples[i].want, "sample %zu: want %s, got %s", i,
			     ps_proto_name(samples[i].want), ps_proto_name(ps_proto_kind(&st)));
	}
}

Test(proto, recognises_across_one_byte_writes)
{
	for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
		ps_proto_init(&st, PS_PROTOS_ALL);
		for (size_t k = 0; k < sample_len(i); k++)
			t_out_n(&st, samples[i].bytes + k, 1);
		cr_assert_eq(ps_proto_kind(&st), samples[i].want, "sample %zu bytewise: want %s, got %s", i,
			     ps_proto_name(samples[i].want), ps_proto_name(ps_proto_kind(&st)));
	}
}

Test(proto, held_prefix_reaches_the_framer)
{
	/* "GE" "T / HTTP/1.1..." then the answer: the first two bytes must
	 * reach the request parser, or the request line would not parse */
	t_out(&st, "GE");
	cr_assert_eq(ps_proto_kind(&st), PS_PROTO_NONE);
	t_out(&st, "T / HTTP/1.1\r\nHost: a\r\n\r\n");
	cr_assert_eq(ps_proto_kind(&st), PS_PROTO_HTTP);
	t_in(&st, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	t_assert_idle(&st);
	cr_assert_eq(ps_proto_exchanges(&st), 1);
}

Test(proto, long_undecided_prefix_is_other)
{
	/* a word that never ends within the prefix buffer */
	for (int i = 0; i < PS_PROTO_PREFIX - 1; i++)
		t_out(&st, "A");
	cr_assert_eq(ps_proto_kind(&st), PS_PROTO_OTHER);
}

Test(proto, nothing_written_is_not_idle)
{
	t_assert_busy(&st, PS_R_NO_EXCHANGE);
	cr_assert_eq(ps_proto_kind(&st), PS_PROTO_NONE);
	cr_assert_eq(ps_proto_exchanges(&st), 0);
	cr_assert_eq(ps_proto_keepalive_ms(&st), 0);
	/* empty writes change nothing */
	t_out_n(&st, "", 0);
	t_assert_busy(&st, PS_R_NO_EXCHANGE);
}

Test(proto, request_without_answer_is_busy)
{
	t_out(&st, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
}

Test(proto, server_speaks_first_is_never)
{
	t_in(&st, "220 smtp.example.com ESMTP\r\n");
	t_assert_never(&st, PS_R_SERVER_FIRST);
	/* sticky: nothing afterwards makes it poolable */
	t_out(&st, "GET / HTTP/1.1\r\n\r\n");
	t_assert_never(&st, PS_R_SERVER_FIRST);
}

Test(proto, bytes_while_still_undecided_are_never)
{
	t_out(&st, "GE");
	t_in(&st, "x");
	t_assert_never(&st, PS_R_SERVER_FIRST);
}

Test(proto, tls_is_never_whatever_is_enabled)
{
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out_n(&st, "\x16\x03\x01\x00\x10", 5);
	t_assert_never(&st, PS_R_TLS);
	cr_assert_eq(ps_proto_kind(&st), PS_PROTO_TLS);
	/* split after the first byte */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out_n(&st, "\x16", 1);
	t_assert_busy(&st, PS_R_NO_EXCHANGE);
	t_out_n(&st, "\x03\x03", 2);
	t_assert_never(&st, PS_R_TLS);
}

Test(proto, recognised_protocol_not_enabled_is_never)
{
	ps_proto_init(&st, PS_PROTO_BIT(PS_PROTO_REDIS));
	t_out(&st, "GET / HTTP/1.1\r\n\r\n");
	cr_assert_eq(ps_proto_kind(&st), PS_PROTO_HTTP);
	t_assert_never(&st, PS_R_DISABLED);
	cr_assert_not(ps_proto_enabled(PS_PROTO_BIT(PS_PROTO_REDIS), ps_proto_kind(&st)));

	ps_proto_init(&st, 0); /* a bad POOLSHIM_PROTOCOLS */
	t_out(&st, "PING\r\n");
	t_assert_never(&st, PS_R_DISABLED);
}

Test(proto, unrecognised_is_never_without_any)
{
	ps_proto_init(&st, PS_PROTOS_DEFAULT);
	t_out(&st, "HOLA there\n");
	cr_assert_eq(ps_proto_kind(&st), PS_PROTO_OTHER);
	t_assert_never(&st, PS_R_UNRECOGNISED);
	t_in(&st, "hi\n");
	t_assert_never(&st, PS_R_UNRECOGNISED);
}

Test(proto, unrecognised_with_any_is_pooled_byte_by_byte)
{
	ps_proto_init(&st, PS_PROTOS_DEFAULT | PS_PROTO_BIT(PS_PROTO_OTHER));
	t_out(&st, "HOLA there\n");
	t_assert_busy(&st, PS_R_LAST_WRITE);
	t_in(&st, "hi");
	t_assert_idle(&st);
	t_in(&st, "\n");
	t_assert_idle(&st);
	cr_assert_eq(ps_proto_exchanges(&st), 1, "one write then reads: one exchange");
	t_out(&st, "again\n");
	t_assert_busy(&st, PS_R_LAST_WRITE);
	t_in(&st, "ok\n");
	t_assert_idle(&st);
	cr_assert_eq(ps_proto_exchanges(&st), 2);
}

Test(proto, iovec_feeding_respects_byte_count_and_empty_entries)
{
	/* a writev of three entries, one empty with a NULL base, of which the
	 * kernel took only part: only those bytes count */
	const char *head = "GET / HTTP/1.1\r\n";
	const char *rest = "Host: a\r\n\r\n";
	struct iovec iov[3] = {
		{ .iov_base = (void *)head, .iov_len = strlen(head) },
		{ .iov_base = NULL, .iov_len = 0 },
		{ .iov_base = (void *)rest, .iov_len = strlen(rest) },
	};
	ps_proto_out_iov(&st, iov, 3, strlen(head) + 4);
	t_assert_busy(&st, PS_R_REQUEST_PARTIAL);
	t_out(&st, rest + 4);
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);

	const char *a = "HTTP/1.1 200 OK\r\nContent-", *b = "Length: 3\r\n\r\nabc";
	struct iovec rd[2] = {
		{ .iov_base = (void *)a, .iov_len = strlen(a) },
		{ .iov_base = (void *)b, .iov_len = strlen(b) },
	};
	ps_proto_in_iov(&st, rd, 2, strlen(a) + strlen(b) - 1);
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_in(&st, "c");
	t_assert_idle(&st);
}

Test(proto, bytes_the_shim_cannot_see_are_never)
{
	/* headers by write, the body by sendfile */
	t_out(&st, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4096\r\n\r\n");
	ps_proto_unseen(&st, 0);
	t_assert_busy(&st, PS_R_REQUEST_PARTIAL);
	ps_proto_unseen(&st, 4096);
	t_assert_never(&st, PS_R_UNSEEN);
	/* before anything was written, too */
	ps_proto_init(&st, PS_PROTOS_ALL);
	ps_proto_unseen(&st, 1);
	t_assert_never(&st, PS_R_UNSEEN);
}

Test(proto, reinit_for_the_next_user)
{
	t_out(&st, "PING\r\n");
	t_in(&st, "+PONG\r\n");
	t_assert_idle(&st);
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_assert_busy(&st, PS_R_NO_EXCHANGE);
	/* a late byte on the reused connection, before the new request */
	t_in(&st, "-");
	t_assert_never(&st, PS_R_SERVER_FIRST);
}

Test(proto, init_does_not_touch_the_union)
{
	memset(&st, 0xa5, sizeof st);
	ps_proto_init(&st, PS_PROTOS_ALL);
	const unsigned char *u = (const unsigned char *)&st.u;
	for (size_t i = 0; i < sizeof st.u; i++)
		cr_assert_eq(u[i], 0xa5, "ps_proto_init wrote byte %zu of the union", i);
	t_assert_busy(&st, PS_R_NO_EXCHANGE);
}

Test(proto, state_is_small)
{
	cr_assert_leq(sizeof(struct ps_proto_state), 256);
	cr_log_info("sizeof(struct ps_proto_state) = %zu", sizeof(struct ps_proto_state));
}

Test(proto, every_reason_has_plain_words)
{
	for (int r = 0; r < PS_R_COUNT; r++) {
		const char *n = ps_proto_reason_name((enum ps_proto_reason)r);
		cr_assert(n && strcmp(n, "?") != 0 && strlen(n) > 2, "reason %d has no name", r);
	}
	cr_assert_str_eq(ps_proto_reason_name(PS_R_COUNT), "?");
	cr_assert_str_eq(ps_proto_reason_name(PS_R_HTTP_SERVER_CLOSE),
			 "the server asked to close (Connection: close)");
	cr_assert_str_eq(ps_proto_reason_name(PS_R_HTTP_10), "HTTP/1.0 without keep-alive");
	cr_assert_str_eq(ps_proto_reason_name(PS_R_HTTP_UPGRADE), "protocol upgrade");
	cr_assert_str_eq(ps_proto_reason_name(PS_R_HTTP_CONNECT), "CONNECT tunnel");
	cr_assert_str_eq(ps_proto_reason_name(PS_R_HTTP_AUTH),
			 "connection-bound authentication (NTLM/Negotiate)");
	cr_assert_str_eq(ps_proto_reason_name(PS_R_REDIS_SELECT), "Redis SELECT");
	cr_assert_str_eq(ps_proto_reason_name(PS_R_REDIS_AUTH), "Redis AUTH");
	cr_assert_str_eq(ps_proto_reason_name(PS_R_REDIS_MULTI), "Redis MULTI without EXEC");
	cr_assert_str_eq(ps_proto_reason_name(PS_R_REDIS_SUBSCRIBE), "Redis SUBSCRIBE");
	cr_assert_str_eq(ps_proto_reason_name(PS_R_HTTP_PARSE), "unparseable HTTP");
	cr_assert_str_eq(ps_proto_reason_name(PS_R_UNRECOGNISED), "unrecognised protocol");
	cr_assert_str_eq(ps_proto_reason_name(PS_R_TLS), "TLS");
}

Test(proto, protocol_names)
{
	cr_assert_str_eq(ps_proto_name(PS_PROTO_HTTP), "http");
	cr_assert_str_eq(ps_proto_name(PS_PROTO_REDIS), "redis");
	cr_assert_str_eq(ps_proto_name(PS_PROTO_MEMCACHED), "memcached");
	cr_assert_str_eq(ps_proto_name(PS_PROTO_OTHER), "other");
	cr_assert_str_eq(ps_proto_name(PS_PROTO_TLS), "tls");
	cr_assert_str_eq(ps_proto_name(PS_PROTO_NONE), "none");
	cr_assert_str_eq(ps_proto_name(PS_PROTO_COUNT), "?");
}

/* ---- what the shim's old byte scanners caught, now through the tracker ---- */

#define S(lit) (lit), (sizeof(lit) - 1)

static enum ps_proto kind_of(const void *b, size_t n)
{
	ps_proto_init(&st, PS_PROTOS_ALL);
	ps_proto_out(&st, b, n);
	return ps_proto_kind(&st);
}

/* The reason right after the request went out (its answer not read yet). */
static enum ps_proto_reason after_request(const char *req, size_t n)
{
	ps_proto_init(&st, PS_PROTOS_ALL);
	ps_proto_out(&st, req, n);
	return ps_proto_reason(&st);
}

Test(proto, tls_record_start_detected)
{
	static const unsigned char hello[] = { 0x16, 0x03, 0x01, 0x02, 0x00 };
	static const unsigned char ssl2[] = { 0x16, 0x02, 0x01 };
	static const unsigned char one[] = { 0x16 };
	static const unsigned char tls13[] = { 0x16, 0x03, 0x03 };
	cr_assert_eq(kind_of(hello, sizeof hello), PS_PROTO_TLS);
	cr_assert_eq(kind_of(tls13, 2), PS_PROTO_TLS, "two bytes are enough");
	cr_assert_neq(kind_of(ssl2, sizeof ssl2), PS_PROTO_TLS);
	cr_assert_eq(kind_of(one, 1), PS_PROTO_NONE, "one byte cannot tell");
	cr_assert_eq(kind_of(S("GET / HTTP/1.1\r\n")), PS_PROTO_HTTP);
	cr_assert_neq(kind_of(S("\x17\x03\x03")), PS_PROTO_TLS, "application data is not a handshake start");
}

Test(proto, connection_auth_detected)
{
	cr_assert_eq(after_request(S("GET / HTTP/1.1\r\nAuthorization: NTLM abc\r\n\r\n")), PS_R_HTTP_AUTH);
	cr_assert_eq(after_request(S("GET / HTTP/1.1\r\nauthorization:   negotiate x\r\n\r\n")),
		     PS_R_HTTP_AUTH, "case-insensitive, any spaces");
	cr_assert_eq(after_request(S("GET / HTTP/1.1\r\nAUTHORIZATION:\tNTLM x\r\n\r\n")), PS_R_HTTP_AUTH);
	cr_assert_eq(after_request(S("GET / HTTP/1.1\r\nProxy-Authorization: NTLM x\r\n\r\n")), PS_R_HTTP_AUTH);
	cr_assert_eq(after_request(S("GET / HTTP/1.1\r\nAuthorization: Basic x\r\n\r\n")), PS_R_RESPONSE_PENDING);
	cr_assert_eq(after_request(S("GET / HTTP/1.1\r\nAuthorization: Bearer x\r\n\r\n")), PS_R_RESPONSE_PENDING);
	cr_assert_eq(after_request(S("GET / HTTP/1.1\r\nAuthorization: NTL\r\n\r\n")), PS_R_RESPONSE_PENDING,
		     "truncated scheme");
	cr_assert_eq(after_request(S("GET / HTTP/1.1\r\nAuthorization:\r\n\r\n")), PS_R_RESPONSE_PENDING);
	/* only the bytes given: the scheme lies past them */
	const char *s = "GET / HTTP/1.1\r\nAuthorization: NTLM abc\r\n\r\n";
	cr_assert_neq(after_request(s, strlen(s) - 11), PS_R_HTTP_AUTH);
}

Test(proto, auth_header_must_start_a_line)
{
	cr_assert_eq(after_request(S("GET /x?Authorization:%20NTLM HTTP/1.1\r\n\r\n")), PS_R_RESPONSE_PENDING);
}

Test(proto, connection_close_request_is_detected)
{
	cr_assert_eq(after_request(S("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")),
		     PS_R_HTTP_CLIENT_CLOSE);
	enum ps_proto_reason r = after_request(S("GET / HTTP/1.1\r\nconnection:  Upgrade, CLOSE\r\n\r\n"));
	cr_assert(r == PS_R_HTTP_CLIENT_CLOSE || r == PS_R_HTTP_UPGRADE, "reason %d", r);
	cr_assert_eq(after_request(S("GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n")), PS_R_RESPONSE_PENDING);
	cr_assert_eq(after_request(S("GET / HTTP/1.1\r\nHost: a\r\n\r\n")), PS_R_RESPONSE_PENDING);
	/* a header value elsewhere in the text is not a header line */
	cr_assert_eq(after_request(S("GET /?q=x-Connection:%20close HTTP/1.1\r\n\r\n")), PS_R_RESPONSE_PENDING);
}

Test(proto, http10_request_without_keepalive_is_detected)
{
	cr_assert_eq(ps_proto_verdict((after_request(S("GET / HTTP/1.0\r\nHost: a\r\n\r\n")), &st)), PS_V_NEVER);
	cr_assert_eq(ps_proto_verdict((after_request(S("GET / HTTP/1.0\n\n")), &st)), PS_V_NEVER);
	cr_assert_eq(after_request(S("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")), PS_R_RESPONSE_PENDING);
	cr_assert_eq(kind_of(S("REQ token\n")), PS_PROTO_OTHER);
}
