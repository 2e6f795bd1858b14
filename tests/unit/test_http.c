/* http.c: HTTP/1.x requests and responses followed to their ends, split
 * at every byte; bodiless responses (HEAD, 1xx, 204, 304), chunked bodies
 * with trailers, pipelining, and everything that makes a connection NEVER:
 * Connection: close either way, HTTP/1.0 without keep-alive, Upgrade/101,
 * CONNECT, NTLM/Negotiate, bodies that end at close, parse errors. */
#include "proto_helpers.h"

#include <stdio.h>

static struct ps_proto_state st;

static void setup(void)
{
	ps_proto_init(&st, PS_PROTOS_ALL);
}

TestSuite(http, .init = setup);

#define GET "GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n"
#define OK_5 "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
#define CHUNKED                                                                          \
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"        \
	"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Sum: 42\r\nKeep-Alive: timeout=0\r\n\r\n"

/* The exchange, fed whole, byte by byte, and split in two at every
 * position of the request and of the response: the verdict is the same. */
static void check_every_split(const char *req, const char *resp, enum ps_proto_verdict v,
			      enum ps_proto_reason r)
{
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, req);
	t_in(&st, resp);
	t_assert_verdict(&st, v, r);

	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out_bytes(&st, req);
	t_in_bytes(&st, resp);
	t_assert_verdict(&st, v, r);

	for (size_t i = 1; i < strlen(req); i++) {
		ps_proto_init(&st, PS_PROTOS_ALL);
		t_out_split(&st, req, i);
		t_in(&st, resp);
		t_assert_verdict(&st, v, r);
	}
	for (size_t i = 1; i < strlen(resp); i++) {
		ps_proto_init(&st, PS_PROTOS_ALL);
		t_out(&st, req);
		t_in_split(&st, resp, i);
		t_assert_verdict(&st, v, r);
	}
}

Test(http, get_with_content_length_is_idle_at_every_split)
{
	check_every_split(GET, OK_5, PS_V_IDLE, PS_R_NONE);
	cr_assert_eq(ps_proto_exchanges(&st), 1);
}

Test(http, states_along_one_exchange)
{
	t_assert_busy(&st, PS_R_NO_EXCHANGE);
	t_out(&st, "GET / HTTP/1.1\r\nHo");
	t_assert_busy(&st, PS_R_REQUEST_PARTIAL);
	t_out(&st, "st: a\r\n\r\n");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_in(&st, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_in(&st, "\r\nhel");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_in(&st, "lo");
	t_assert_idle(&st);
	/* and a second exchange on the same connection */
	t_out(&st, GET);
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_in(&st, OK_5);
	t_assert_idle(&st);
	cr_assert_eq(ps_proto_exchanges(&st), 2);
}

Test(http, response_cut_short_is_busy)
{
	t_out(&st, GET);
	t_in(&st, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	/* a chunked body without its last chunk */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, GET);
	t_in(&st, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	/* the headers only half read */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, GET);
	t_in(&st, "HTTP/1.1 200 OK\r\nContent-Le");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
}

Test(http, post_with_body_split)
{
	const char *post = "POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world";
	check_every_split(post, OK_5, PS_V_IDLE, PS_R_NONE);
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, "POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello");
	t_assert_busy(&st, PS_R_REQUEST_PARTIAL);
}

Test(http, chunked_request_body)
{
	const char *post = "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
			   "3\r\nabc\r\n0\r\n\r\n";
	check_every_split(post, OK_5, PS_V_IDLE, PS_R_NONE);
}

Test(http, chunked_response_with_trailers)
{
	/* the trailer's Keep-Alive is not a header: trailers are ignored */
	check_every_split(GET, CHUNKED, PS_V_IDLE, PS_R_NONE);
	cr_assert_eq(ps_proto_keepalive_ms(&st), 0);
}

Test(http, head_response_has_no_body)
{
	const char *head = "HEAD /big HTTP/1.1\r\nHost: a\r\n\r\n";
	const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n";
	check_every_split(head, resp, PS_V_IDLE, PS_R_NONE);
	/* chunked announced, still no body */
	check_every_split(head, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", PS_V_IDLE,
			  PS_R_NONE);
}

Test(http, head_then_get_pipelined)
{
	/* the response parser must know the first answer is to HEAD, the
	 * second to GET */
	t_out(&st, "HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
	t_in(&st, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_in(&st, OK_5);
	t_assert_idle(&st);
	cr_assert_eq(ps_proto_exchanges(&st), 2);
}

Test(http, no_content_and_not_modified_have_no_body)
{
	check_every_split(GET, "HTTP/1.1 204 No Content\r\n\r\n", PS_V_IDLE, PS_R_NONE);
	check_every_split(GET, "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 1234\r\n\r\n",
			  PS_V_IDLE, PS_R_NONE);
	check_every_split(GET, "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", PS_V_IDLE, PS_R_NONE);
}

Test(http, interim_responses_do_not_end_the_exchange)
{
	t_out(&st, "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
	t_in(&st, "HTTP/1.1 100 Continue\r\n\r\n");
	t_assert_busy(&st, PS_R_REQUEST_PARTIAL); /* the body is still to be sent */
	t_out(&st, "abc");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_in(&st, "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	cr_assert_eq(ps_proto_exchanges(&st), 0);
	t_in(&st, OK_5);
	t_assert_idle(&st);
	cr_assert_eq(ps_proto_exchanges(&st), 1);
	/* the same, byte by byte and at every split */
	check_every_split(GET, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n" OK_5,
			  PS_V_IDLE, PS_R_NONE);
}

Test(http, three_pipelined_requests)
{
	const char *three = GET "GET /b HTTP/1.1\r\nHost: a\r\n\r\n"
				"POST /c HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi";
	const char *answers = OK_5 CHUNKED "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
	t_out(&st, three);
	t_in(&st, OK_5);
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_in(&st, CHUNKED);
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	cr_assert_eq(ps_proto_exchanges(&st), 2);
	t_in(&st, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
	t_assert_idle(&st);
	cr_assert_eq(ps_proto_exchanges(&st), 3);
	check_every_split(three, answers, PS_V_IDLE, PS_R_NONE);
	/* all answers but the last byte */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, three);
	t_in_n(&st, answers, strlen(answers) - 1);
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
}

Test(http, more_pipelined_requests_than_tracked_is_never)
{
	for (int i = 0; i < PS_HTTP_PIPELINE; i++)
		t_out(&st, GET);
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_out(&st, GET);
	t_assert_never(&st, PS_R_HTTP_PIPELINE);
}

Test(http, connection_close_from_the_program)
{
	check_every_split("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", OK_5, PS_V_NEVER,
			  PS_R_HTTP_CLIENT_CLOSE);
	/* NEVER as soon as the request says so */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, "GET / HTTP/1.1\r\nconnection: Close\r\n\r\n");
	t_assert_never(&st, PS_R_HTTP_CLIENT_CLOSE);
	/* a token list */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, "GET / HTTP/1.1\r\nConnection: TE, close\r\n\r\n");
	t_assert_never(&st, PS_R_HTTP_CLIENT_CLOSE);
}

Test(http, connection_close_from_the_server)
{
	check_every_split(GET, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
			  PS_V_NEVER, PS_R_HTTP_SERVER_CLOSE);
	/* on a 404 too, and on a HEAD response */
	check_every_split(GET, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
			  PS_V_NEVER, PS_R_HTTP_SERVER_CLOSE);
	check_every_split("HEAD / HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
			  PS_V_NEVER, PS_R_HTTP_SERVER_CLOSE);
}

Test(http, http10_without_keepalive_is_never)
{
	/* the request */
	check_every_split("GET / HTTP/1.0\r\nHost: a\r\n\r\n", "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello",
			  PS_V_NEVER, PS_R_HTTP_10);
	/* an HTTP/1.1 request answered by an HTTP/1.0 server */
	check_every_split(GET, "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", PS_V_NEVER,
			  PS_R_HTTP_10);
}

Test(http, http10_with_keepalive_is_pooled)
{
	check_every_split("GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
			  "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 5\r\n\r\nhello",
			  PS_V_IDLE, PS_R_NONE);
	/* the server does not keep it */
	check_every_split("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
			  "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", PS_V_NEVER, PS_R_HTTP_10);
}

Test(http, switching_protocols_is_never)
{
	const char *ws = "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
	t_out(&st, ws);
	t_assert_never(&st, PS_R_HTTP_UPGRADE);
	/* a 101 without a preceding upgrade request the tracker saw as one */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, GET);
	t_in(&st, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n");
	t_assert_never(&st, PS_R_HTTP_UPGRADE);
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, GET);
	t_in_bytes(&st, "HTTP/1.1 101 Switching Protocols\r\n\r\n");
	t_assert_never(&st, PS_R_HTTP_UPGRADE);
}

Test(http, upgrade_offer_answered_normally_still_never)
{
	/* "Upgrade: h2c" offered: the request asks to change protocols, which
	 * the tracker does not follow */
	t_out(&st, "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
		   "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n");
	t_assert_never(&st, PS_R_HTTP_UPGRADE);
}

Test(http, connect_is_never)
{
	t_out(&st, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
	t_assert_never(&st, PS_R_HTTP_CONNECT);
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out_bytes(&st, "CONNECT example.com:443 HTTP/1.1\r\n\r\n");
	t_assert_never(&st, PS_R_HTTP_CONNECT);
}

Test(http, keepalive_timeout_is_reported)
{
	check_every_split(GET, "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=5, max=100\r\nContent-Length: 0\r\n\r\n",
			  PS_V_IDLE, PS_R_NONE);
	cr_assert_eq(ps_proto_keepalive_ms(&st), 5000);
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, GET);
	t_in_bytes(&st, "HTTP/1.1 200 OK\r\nkeep-alive: max=100,Timeout = 7\r\nContent-Length: 0\r\n\r\n");
	t_assert_idle(&st);
	cr_assert_eq(ps_proto_keepalive_ms(&st), 7000);
	/* the lowest of several responses */
	t_out(&st, GET);
	t_in(&st, "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=3\r\nContent-Length: 0\r\n\r\n");
	t_out(&st, GET);
	t_in(&st, "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=30\r\nContent-Length: 0\r\n\r\n");
	cr_assert_eq(ps_proto_keepalive_ms(&st), 3000);
	/* none, or a parameter that only looks like it */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, GET);
	t_in(&st, "HTTP/1.1 200 OK\r\nKeep-Alive: timeouts=5, xtimeout=6\r\nX-Keep-Alive: timeout=1\r\n"
		  "Content-Length: 0\r\n\r\n");
	t_assert_idle(&st);
	cr_assert_eq(ps_proto_keepalive_ms(&st), 0);
}

Test(http, keepalive_timeout_zero_is_never)
{
	t_out(&st, GET);
	t_in(&st, "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=0\r\nContent-Length: 0\r\n\r\n");
	t_assert_never(&st, PS_R_HTTP_KEEPALIVE_0);
}

Test(http, connection_bound_authentication_is_never)
{
	static const char *const reqs[] = {
		"GET / HTTP/1.1\r\nAuthorization: NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw==\r\n\r\n",
		"GET / HTTP/1.1\r\nauthorization:   negotiate YIIGhgYGKwYBBQUCoIIGejCCBnag\r\n\r\n",
		"GET / HTTP/1.1\r\nProxy-Authorization: Negotiate abc\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nAUTHORIZATION:\tNTLM x\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
		ps_proto_init(&st, PS_PROTOS_ALL);
		t_out(&st, reqs[i]);
		t_assert_never(&st, PS_R_HTTP_AUTH);
		ps_proto_init(&st, PS_PROTOS_ALL);
		t_out_bytes(&st, reqs[i]);
		t_assert_never(&st, PS_R_HTTP_AUTH);
		for (size_t k = 1; k < strlen(reqs[i]); k++) {
			ps_proto_init(&st, PS_PROTOS_ALL);
			t_out_split(&st, reqs[i], k);
			t_assert_never(&st, PS_R_HTTP_AUTH);
		}
	}
}

Test(http, other_authorization_is_pooled)
{
	check_every_split("GET / HTTP/1.1\r\nAuthorization: Basic dXNlcjpwYXNz\r\n\r\n", OK_5, PS_V_IDLE,
			  PS_R_NONE);
	check_every_split("GET / HTTP/1.1\r\nAuthorization: Bearer ntlm\r\nX-Authorization: NTLM\r\n\r\n",
			  OK_5, PS_V_IDLE, PS_R_NONE);
	/* an empty value, then a header name that starts like one we look for */
	check_every_split("GET / HTTP/1.1\r\nX-Empty:\r\nAuthorizationx: NTLM\r\n\r\n", OK_5, PS_V_IDLE,
			  PS_R_NONE);
}

Test(http, body_until_close_is_never)
{
	check_every_split(GET, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome bytes", PS_V_NEVER,
			  PS_R_HTTP_EOF_BODY);
	/* a transfer coding other than chunked last */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, GET);
	t_in(&st, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
	t_assert_never(&st, PS_R_HTTP_EOF_BODY);
}

Test(http, garbage_is_never)
{
	t_out(&st, GET);
	t_in(&st, "SSH-2.0-OpenSSH\r\n");
	t_assert_never(&st, PS_R_HTTP_PARSE);

	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, GET);
	t_in(&st, "HTTP/1.1 abc OK\r\n\r\n");
	t_assert_never(&st, PS_R_HTTP_PARSE);

	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, "GET / HTTP/1.1\r\nno colon here\r\n\r\n");
	t_assert_never(&st, PS_R_HTTP_PARSE);

	/* a Redis inline command that looked like HTTP: a request line
	 * without a version reads as HTTP/0.9 and waits for headers; the
	 * Redis reply is then an answer to no complete request */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, "GET /key\r\n");
	t_assert_busy(&st, PS_R_REQUEST_PARTIAL);
	t_in(&st, "$5\r\nvalue\r\n");
	t_assert_never(&st, PS_R_UNSOLICITED);

	/* HTTP/0.9 */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, "GET /\r\n\r\n");
	t_assert_never(&st, PS_R_HTTP_PARSE);

	/* request smuggling shape: both lengths */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, GET);
	t_in(&st, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
	t_assert_never(&st, PS_R_HTTP_PARSE);

	/* a bad chunk size */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, GET);
	t_in(&st, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
	t_assert_never(&st, PS_R_HTTP_PARSE);

	/* a version other than 1.x */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, "GET / HTTP/2.0\r\n\r\n");
	t_assert_never(&st, PS_R_HTTP_PARSE);
}

Test(http, answer_to_nobody_is_never)
{
	/* a 408 the server sends on an idle connection before closing it */
	t_out(&st, GET);
	t_in(&st, OK_5);
	t_assert_idle(&st);
	t_in(&st, "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n");
	t_assert_never(&st, PS_R_UNSOLICITED);
	/* one byte is enough */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, GET);
	t_in(&st, OK_5);
	t_in(&st, "\r");
	t_assert_never(&st, PS_R_UNSOLICITED);
	/* an answer before the request's headers were complete */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, "GET / HTTP/1.1\r\n");
	t_in(&st, "HTTP/1.1 400 Bad Request\r\n");
	t_assert_never(&st, PS_R_UNSOLICITED);
}

Test(http, large_body_in_pieces)
{
	static char body[70000];
	char head[128];
	memset(body, 'x', sizeof body);
	snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", sizeof body);
	t_out(&st, GET);
	t_in(&st, head);
	for (size_t off = 0; off < sizeof body; off += 4096) {
		t_assert_busy(&st, PS_R_RESPONSE_PENDING);
		t_in_n(&st, body + off, sizeof body - off < 4096 ? sizeof body - off : 4096);
	}
	t_assert_idle(&st);
}
