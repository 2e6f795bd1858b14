/* HTTP/1.x framing for the protocol tracker: follows each request the
 * program sends and each response it reads with http_parser (Debian's
 * libhttp-parser, linked in with its symbols hidden), and decides whether
 * the connection sits at a clean boundary with both sides willing to keep
 * it open.
 *
 * Bodies (Content-Length, chunked with trailers) are the parser's business.
 * This file adds what a response parser cannot know alone (the response to
 * HEAD has no body: the methods of outstanding requests are queued), what
 * ends an exchange (1xx interim responses do not), and the headers that
 * bind a connection: Connection: close / HTTP/1.0 without keep-alive,
 * Upgrade / 101 / CONNECT, NTLM/Negotiate authorization, Keep-Alive timeout. */
#include "proto.h"

#include <limits.h>
#include <stddef.h>

enum { PH_NONE, PH_FIELD, PH_VALUE, PH_DONE };

/* Header names, lower case, and which side looks for them. */
enum { HDR_AUTH, HDR_PROXY_AUTH, HDR_KEEPALIVE, HDR_COUNT, HDR_NONE = 0xff };
static const char *const hdr_name[HDR_COUNT] = {
	"authorization", "proxy-authorization", "keep-alive",
};
static const uint8_t hdr_len[HDR_COUNT] = { 13, 19, 10 };
#define REQ_NAMES ((1u << HDR_AUTH) | (1u << HDR_PROXY_AUTH))
#define RESP_NAMES (1u << HDR_KEEPALIVE)

/* Authorization schemes that authenticate the TCP connection, not the request. */
static const char *const auth_scheme[2] = { "ntlm", "negotiate" };
static const uint8_t auth_len[2] = { 4, 9 };

/* Keep-Alive parameter scanner ("timeout=5, max=100"). */
enum { KA_START, KA_NAME, KA_EQ, KA_VAL0, KA_NUM, KA_SKIP };

static struct ps_proto_state *state_of(http_parser *p)
{
	size_t off = p->type == HTTP_REQUEST ? offsetof(struct ps_proto_state, u.http.req)
					     : offsetof(struct ps_proto_state, u.http.resp);
	return (struct ps_proto_state *)(void *)((char *)p - off);
}

static struct ps_http_hdr *hdr_of(struct ps_proto_state *st, http_parser *p)
{
	return p->type == HTTP_REQUEST ? &st->u.http.reqh : &st->u.http.resph;
}

static unsigned char lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static bool is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* Marks NEVER; the nonzero return stops the parser (nothing more to learn). */
static int never(struct ps_proto_state *st, enum ps_proto_reason r)
{
	ps_proto_never(st, r);
	return -1;
}

static void ka_commit(struct ps_proto_state *st, struct ps_http_hdr *h)
{
	ps_proto_keepalive(st, h->vnum);
	h->vstate = KA_SKIP;
}

static void ka_byte(struct ps_proto_state *st, struct ps_http_hdr *h, unsigned char c)
{
	static const char timeout[] = "timeout";
	switch (h->vstate) {
	case KA_START:
		if (is_ows(c) || c == ',')
			return;
		h->vstate = KA_NAME;
		h->vpos = 0;
		/* fall through */
	case KA_NAME:
		if (h->vpos < 7 && lower(c) == timeout[h->vpos]) {
			h->vpos++;
			return;
		}
		if (h->vpos == 7 && (is_ows(c) || c == '=')) {
			h->vstate = KA_EQ;
			ka_byte(st, h, c);
			return;
		}
		break;
	case KA_EQ:
		if (is_ows(c))
			return;
		if (c == '=') {
			h->vstate = KA_VAL0;
			return;
		}
		break;
	case KA_VAL0:
		if (is_ows(c))
			return;
		if (c >= '0' && c <= '9') {
			h->vstate = KA_NUM;
			h->vnum = (uint32_t)(c - '0');
			return;
		}
		break;
	case KA_NUM:
		if (c >= '0' && c <= '9') {
			uint32_t d = (uint32_t)(c - '0');
			h->vnum = h->vnum > (UINT32_MAX - d) / 10 ? UINT32_MAX : h->vnum * 10 + d;
			return;
		}
		ka_commit(st, h);
		break;
	}
	/* anything else: skip to the next parameter */
	h->vstate = c == ',' ? KA_START : KA_SKIP;
}

static void auth_byte(struct ps_proto_state *st, struct ps_http_hdr *h, unsigned char c)
{
	for (unsigned i = 0; i < 2; i++) {
		if (!(h->vstate & (1u << i)))
			continue;
		if (h->vpos >= auth_len[i] || lower(c) != auth_scheme[i][h->vpos])
			h->vstate &= (uint8_t) ~(1u << i);
		else if (h->vpos + 1 == auth_len[i])
			ps_proto_never(st, PS_R_HTTP_AUTH);
	}
	h->vpos++;
}

/* The value of the header being read ended. */
static void end_value(struct ps_proto_state *st, struct ps_http_hdr *h)
{
	if (h->which == HDR_KEEPALIVE && h->vstate == KA_NUM)
		ka_commit(st, h);
	h->which = HDR_NONE;
}

static int on_message_begin(http_parser *p)
{
	struct ps_proto_state *st = state_of(p);
	struct ps_http_hdr *h = hdr_of(st, p);
	h->phase = PH_NONE;
	h->which = HDR_NONE;
	if (p->type == HTTP_REQUEST) {
		st->u.http.req_open = true;
	} else {
		/* a 408 or any other answer while nothing was asked */
		if (st->u.http.count == 0)
			return never(st, PS_R_UNSOLICITED);
		st->u.http.resp_open = true;
	}
	return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct ps_proto_state *st = state_of(p);
	struct ps_http_hdr *h = hdr_of(st, p);
	if (h->phase == PH_DONE)
		return 0; /* trailers: nothing in them binds the connection */
	if (h->phase != PH_FIELD) {
		if (h->phase == PH_VALUE)
			end_value(st, h);
		h->phase = PH_FIELD;
		h->names = p->type == HTTP_REQUEST ? REQ_NAMES : RESP_NAMES;
		h->pos = 0;
	}
	for (size_t i = 0; i < len && h->names; i++) {
		unsigned char c = lower((unsigned char)at[i]);
		for (unsigned n = 0; n < HDR_COUNT; n++)
			if ((h->names & (1u << n)) && (h->pos >= hdr_len[n] || hdr_name[n][h->pos] != c))
				h->names &= (uint8_t) ~(1u << n);
		if (h->pos < UINT8_MAX)
			h->pos++;
	}
	return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct ps_proto_state *st = state_of(p);
	struct ps_http_hdr *h = hdr_of(st, p);
	if (h->phase == PH_DONE)
		return 0;
	if (h->phase == PH_FIELD) {
		h->phase = PH_VALUE;
		h->which = HDR_NONE;
		for (unsigned n = 0; n < HDR_COUNT; n++)
			if ((h->names & (1u << n)) && h->pos == hdr_len[n])
				h->which = (uint8_t)n;
		h->vpos = 0;
		h->vnum = 0;
		h->vstate = h->which == HDR_KEEPALIVE ? KA_START : 3; /* both schemes */
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)at[i];
		if (h->which == HDR_KEEPALIVE)
			ka_byte(st, h, c);
		else if ((h->which == HDR_AUTH || h->which == HDR_PROXY_AUTH) && h->vstate)
			auth_byte(st, h, c);
		else
			break;
	}
	return st->never ? -1 : 0;
}

/* HTTP/1.1 keeps the connection unless Connection: close; HTTP/1.0 closes
 * it unless Connection: keep-alive. */
static enum ps_proto_reason close_reason(const http_parser *p, enum ps_proto_reason close)
{
	if (p->flags & F_CONNECTION_CLOSE)
		return close;
	if (p->http_minor == 0 && !(p->flags & F_CONNECTION_KEEP_ALIVE))
		return PS_R_HTTP_10;
	return PS_R_NONE;
}

static int request_headers_done(struct ps_proto_state *st, http_parser *p)
{
	struct ps_http *h = &st->u.http;
	enum ps_proto_reason r;
	if (p->method == HTTP_CONNECT)
		return never(st, PS_R_HTTP_CONNECT);
	if (p->upgrade)
		return never(st, PS_R_HTTP_UPGRADE);
	if ((r = close_reason(p, PS_R_HTTP_CLIENT_CLOSE)) != PS_R_NONE)
		return never(st, r);
	if (h->count == PS_HTTP_PIPELINE)
		return never(st, PS_R_HTTP_PIPELINE);
	h->methods[(h->head + h->count) % PS_HTTP_PIPELINE] = (uint8_t)p->method;
	h->count++;
	return 0;
}

/* Returns 1 to tell the parser the response has no body. */
static int response_headers_done(struct ps_proto_state *st, http_parser *p)
{
	struct ps_http *h = &st->u.http;
	unsigned status = p->status_code;
	enum ps_proto_reason r;
	if (status == 101 || p->upgrade)
		return never(st, PS_R_HTTP_UPGRADE);
	if (status / 100 == 1)
		return 1; /* interim: the final response is still to come */
	if ((r = close_reason(p, PS_R_HTTP_SERVER_CLOSE)) != PS_R_NONE)
		return never(st, r);
	/* no body, whatever Content-Length or Transfer-Encoding say */
	if (h->methods[h->head] == HTTP_HEAD || status == 204 || status == 304)
		return 1;
	/* neither a length nor chunked (a Transfer-Encoding that does not end
	 * in chunked counts as none): the body runs to the connection's end */
	if (!(p->flags & F_CHUNKED) && (p->uses_transfer_encoding || !(p->flags & F_CONTENTLENGTH)))
		return never(st, PS_R_HTTP_EOF_BODY);
	return 0;
}

static int on_headers_complete(http_parser *p)
{
	struct ps_proto_state *st = state_of(p);
	struct ps_http_hdr *h = hdr_of(st, p);
	if (h->phase == PH_VALUE)
		end_value(st, h);
	h->phase = PH_DONE;
	if (st->never)
		return -1;
	if (p->http_major != 1)
		return never(st, PS_R_HTTP_PARSE);
	return p->type == HTTP_REQUEST ? request_headers_done(st, p) : response_headers_done(st, p);
}

static int on_message_complete(http_parser *p)
{
	struct ps_proto_state *st = state_of(p);
	struct ps_http *h = &st->u.http;
	if (p->type == HTTP_REQUEST) {
		h->req_open = false;
		return 0;
	}
	h->resp_open = false;
	if (p->status_code / 100 == 1)
		return 0; /* 100 Continue and friends answer nothing yet */
	h->head = (uint8_t)((h->head + 1) % PS_HTTP_PIPELINE);
	h->count--;
	ps_proto_exchange_done(st);
	return 0;
}

static const http_parser_settings settings = {
	.on_message_begin = on_message_begin,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_message_complete = on_message_complete,
};

void ps_http_start(struct ps_proto_state *st)
{
	struct ps_http *h = &st->u.http;
	http_parser_init(&h->req, HTTP_REQUEST);
	http_parser_init(&h->resp, HTTP_RESPONSE);
	h->req.data = h->resp.data = NULL; /* state_of() finds the tracker by offset */
	h->reqh.phase = h->resph.phase = PH_NONE;
	h->head = h->count = 0;
	h->req_open = h->resp_open = false;
}

/* n > 0: a zero length would tell the parser the stream ended. */
static void feed(struct ps_proto_state *st, http_parser *p, const uint8_t *b, size_t n)
{
	size_t done = http_parser_execute(p, &settings, (const char *)b, n);
	if (st->never)
		return;
	/* An upgrade stops the parser early, but that is NEVER already. */
	if (HTTP_PARSER_ERRNO(p) != HPE_OK || done != n)
		ps_proto_never(st, PS_R_HTTP_PARSE);
}

void ps_http_out(struct ps_proto_state *st, const uint8_t *b, size_t n)
{
	feed(st, &st->u.http.req, b, n);
}

void ps_http_in(struct ps_proto_state *st, const uint8_t *b, size_t n)
{
	/* CR/LF before a response would be skipped by the parser; bytes when
	 * nothing is outstanding are an answer to nobody. */
	if (st->u.http.count == 0 && !st->u.http.resp_open) {
		ps_proto_never(st, PS_R_UNSOLICITED);
		return;
	}
	feed(st, &st->u.http.resp, b, n);
}

enum ps_proto_reason ps_http_busy(const struct ps_proto_state *st)
{
	const struct ps_http *h = &st->u.http;
	if (h->req_open)
		return PS_R_REQUEST_PARTIAL;
	if (h->count || h->resp_open)
		return PS_R_RESPONSE_PENDING;
	return PS_R_NONE;
}
