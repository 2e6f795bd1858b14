/* Redis (RESP) framing for the protocol tracker.
 *
 * Commands: RESP arrays of bulk strings (`*N\r\n$len\r\n...\r\n`) and inline
 * commands (a line of words).  The name and the arguments that matter are
 * read to find commands that bind state to the connection: the next user of
 * a pooled connection would inherit a database, a login, a name, a
 * subscription, a transaction.  Every command gets exactly one reply (the
 * ones that break that rule, SUBSCRIBE, MONITOR, CLIENT REPLY, are NEVER).
 *
 * Replies: every RESP2 and RESP3 type is framed (lines, bulk and verbatim
 * strings, nulls, aggregates nested up to PS_RESP_DEPTH; attributes and
 * pushes are not replies), so "every command has had its whole reply read"
 * is known.
 *
 * MULTI: from MULTI until EXEC/DISCARD is sent the connection is BUSY (reason
 * PS_R_REDIS_MULTI); a close in between therefore ends the connection, as a
 * close during any unfinished exchange does.  It is not made NEVER: after
 * EXEC's reply the connection is as clean as before MULTI. */
#include "proto.h"

#include <string.h>

enum { CS_START, CS_ALEN, CS_ALEN_LF, CS_BULK, CS_BLEN, CS_BLEN_LF, CS_BDATA, CS_BCR, CS_BLF, CS_INLINE };
enum { RS_TYPE, RS_LINE, RS_LEN, RS_LEN_LF, RS_BULK, RS_BCR, RS_BLF };

/* cflags and rflags share the number bits */
#define F_NEG 0x01
#define F_DIG 0x02
#define CF_LONG 0x04   /* the argument is longer than arg[] */
#define CF_MULTI 0x08  /* MULTI sent, EXEC/DISCARD not yet */
#define CF_WORD 0x10   /* inline: inside a word */
#define RF_PUSH 0x04   /* the top-level element is a push, not a reply */

enum {
	C_OTHER, C_SELECT, C_AUTH, C_HELLO, C_CLIENT, C_MULTI, C_EXEC, C_DISCARD, C_WATCH,
	C_SUBSCRIBE, C_MONITOR, C_READONLY, C_QUIT, C_SYNC, C_RESET,
};

static const struct {
	const char *name;
	uint8_t id;
} commands[] = {
	{ "SELECT", C_SELECT },		{ "AUTH", C_AUTH },
	{ "HELLO", C_HELLO },		{ "CLIENT", C_CLIENT },
	{ "MULTI", C_MULTI },		{ "EXEC", C_EXEC },
	{ "DISCARD", C_DISCARD },	{ "WATCH", C_WATCH },
	{ "SUBSCRIBE", C_SUBSCRIBE },	{ "PSUBSCRIBE", C_SUBSCRIBE },
	{ "SSUBSCRIBE", C_SUBSCRIBE },	{ "UNSUBSCRIBE", C_SUBSCRIBE },
	{ "PUNSUBSCRIBE", C_SUBSCRIBE }, { "SUNSUBSCRIBE", C_SUBSCRIBE },
	{ "MONITOR", C_MONITOR },	{ "READONLY", C_READONLY },
	{ "QUIT", C_QUIT },		{ "SYNC", C_SYNC },
	{ "PSYNC", C_SYNC },		{ "RESET", C_RESET },
};

/* CLIENT subcommands that change how this connection behaves. */
static const char *const client_binding[] = {
	"SETNAME", "TRACKING", "REPLY", "CACHING", "NO-EVICT", "NO-TOUCH",
};

static bool arg_is(const struct ps_resp *r, const char *s)
{
	size_t n = strlen(s);
	return !(r->cflags & CF_LONG) && r->arg_len == n && memcmp(r->arg, s, n) == 0;
}

/* A digit, a leading '-', or the '\r' that ends the number: 0 for a byte
 * taken, 1 at '\r', -1 for anything else. */
static int num_byte(uint8_t c, uint64_t *num, uint8_t *flags)
{
	if (c == '-' && !(*flags & (F_NEG | F_DIG))) {
		*flags |= F_NEG;
		return 0;
	}
	if (c >= '0' && c <= '9') {
		if (*num > (UINT64_MAX - 9) / 10)
			return -1;
		*num = *num * 10 + (uint64_t)(c - '0');
		*flags |= F_DIG;
		return 0;
	}
	return c == '\r' ? 1 : -1;
}

static void arg_start(struct ps_resp *r)
{
	r->arg_len = 0;
	r->cflags &= (uint8_t)~CF_LONG;
}

static void arg_byte(struct ps_resp *r, uint8_t c)
{
	if (r->arg_len == PS_RESP_ARG) {
		r->cflags |= CF_LONG;
		return;
	}
	r->arg[r->arg_len++] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
}

/* Argument argi of the command is complete in arg[]. */
static void arg_done(struct ps_proto_state *st)
{
	struct ps_resp *r = &st->u.resp;
	if (r->argi == 0) {
		r->cmd = C_OTHER;
		for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
			if (arg_is(r, commands[i].name))
				r->cmd = commands[i].id;
		switch (r->cmd) {
		case C_AUTH:
			ps_proto_never(st, PS_R_REDIS_AUTH);
			break;
		case C_WATCH:
			ps_proto_never(st, PS_R_REDIS_WATCH);
			break;
		case C_SUBSCRIBE:
			/* pushes instead of one reply per command, and a
			 * subscription that would outlive this user */
			ps_proto_never(st, PS_R_REDIS_SUBSCRIBE);
			break;
		case C_MONITOR:
			ps_proto_never(st, PS_R_REDIS_MONITOR);
			break;
		case C_READONLY:
			ps_proto_never(st, PS_R_REDIS_READONLY);
			break;
		case C_QUIT:
			ps_proto_never(st, PS_R_REDIS_QUIT);
			break;
		case C_SYNC:
			ps_proto_never(st, PS_R_REDIS_REPLICATION);
			break;
		}
		return;
	}
	switch (r->cmd) {
	case C_SELECT:
		if (r->argi == 1 && !arg_is(r, "0"))
			ps_proto_never(st, PS_R_REDIS_SELECT);
		break;
	case C_HELLO:
		/* HELLO [protover [AUTH user pass] [SETNAME name]]: anything past
		 * the version binds the connection, and so does RESP3 */
		if (r->argi > 1 || !arg_is(r, "2"))
			ps_proto_never(st, PS_R_REDIS_HELLO);
		break;
	case C_CLIENT:
		if (r->argi == 1)
			for (size_t i = 0; i < sizeof client_binding / sizeof client_binding[0]; i++)
				if (arg_is(r, client_binding[i]))
					ps_proto_never(st, PS_R_REDIS_CLIENT);
		break;
	}
}

static void command_done(struct ps_proto_state *st)
{
	struct ps_resp *r = &st->u.resp;
	switch (r->cmd) {
	case C_MULTI:
		r->cflags |= CF_MULTI;
		break;
	case C_EXEC:
	case C_DISCARD:
	case C_RESET:
		r->cflags &= (uint8_t)~CF_MULTI;
		break;
	}
	if (r->pending != UINT32_MAX)
		r->pending++;
	r->cs = CS_START;
}

static void cmd_never(struct ps_proto_state *st)
{
	ps_proto_never(st, PS_R_REDIS_PARSE);
}

void ps_resp_out(struct ps_proto_state *st, const uint8_t *b, size_t n)
{
	struct ps_resp *r = &st->u.resp;
	for (size_t i = 0; i < n && !st->never; i++) {
		uint8_t c = b[i];
		switch (r->cs) {
		case CS_START:
			r->argi = 0;
			r->cmd = C_OTHER;
			if (c == '*') {
				r->cs = CS_ALEN;
				r->cnum = 0;
				r->cflags &= (uint8_t)~(F_NEG | F_DIG);
			} else if (c != '\r' && c != '\n') {
				/* an empty line is no command and gets no reply */
				r->cs = CS_INLINE;
				r->cflags &= (uint8_t)~CF_WORD;
				i--; /* the byte starts the first word */
			}
			break;
		case CS_ALEN:
		case CS_BLEN: {
			int e = num_byte(c, &r->cnum, &r->cflags);
			if (e < 0 || (e == 1 && !(r->cflags & F_DIG)))
				cmd_never(st);
			else if (e == 1)
				r->cs = r->cs == CS_ALEN ? CS_ALEN_LF : CS_BLEN_LF;
			break;
		}
		case CS_ALEN_LF:
			if (c != '\n') {
				cmd_never(st);
			} else if ((r->cflags & F_NEG) || r->cnum == 0) {
				r->cs = CS_START; /* *0, *-1: no command, no reply */
			} else if (r->cnum > UINT32_MAX) {
				cmd_never(st);
			} else {
				r->argc = (uint32_t)r->cnum;
				r->cs = CS_BULK;
			}
			break;
		case CS_BULK:
			if (c != '$') {
				cmd_never(st);
				break;
			}
			r->cs = CS_BLEN;
			r->cnum = 0;
			r->cflags &= (uint8_t)~(F_NEG | F_DIG);
			break;
		case CS_BLEN_LF:
			if (c != '\n' || (r->cflags & F_NEG)) {
				cmd_never(st);
				break;
			}
			arg_start(r);
			r->cs = r->cnum ? CS_BDATA : CS_BCR;
			break;
		case CS_BDATA: {
			size_t take = n - i < r->cnum ? n - i : (size_t)r->cnum;
			for (size_t k = 0; k < take && !(r->cflags & CF_LONG); k++)
				arg_byte(r, b[i + k]);
			r->cnum -= take;
			i += take - 1;
			if (r->cnum == 0)
				r->cs = CS_BCR;
			break;
		}
		case CS_BCR:
			if (c != '\r')
				cmd_never(st);
			else
				r->cs = CS_BLF;
			break;
		case CS_BLF:
			if (c != '\n') {
				cmd_never(st);
				break;
			}
			arg_done(st);
			if (++r->argi == r->argc)
				command_done(st);
			else
				r->cs = CS_BULK;
			break;
		case CS_INLINE:
			if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
				if (r->cflags & CF_WORD) {
					arg_done(st);
					r->argi++;
					r->cflags &= (uint8_t)~CF_WORD;
				}
				if (c == '\n') {
					if (r->argi)
						command_done(st);
					else
						r->cs = CS_START;
				}
			} else {
				if (!(r->cflags & CF_WORD)) {
					arg_start(r);
					r->cflags |= CF_WORD;
				}
				arg_byte(r, c);
			}
			break;
		}
	}
}

static void reply_done(struct ps_proto_state *st)
{
	struct ps_resp *r = &st->u.resp;
	if (r->pending == 0) {
		ps_proto_never(st, PS_R_UNSOLICITED);
		return;
	}
	r->pending--;
	ps_proto_exchange_done(st);
}

/* An element is complete: close the aggregates it completes. */
static void element_done(struct ps_proto_state *st)
{
	struct ps_resp *r = &st->u.resp;
	r->rs = RS_TYPE;
	for (;;) {
		if (r->depth == 0) {
			if (r->rflags & RF_PUSH)
				r->rflags &= (uint8_t)~RF_PUSH;
			else
				reply_done(st);
			return;
		}
		if (--r->left[r->depth - 1] > 0)
			return;
		r->depth--;
		if (r->attr & (1u << r->depth)) {
			/* an attribute describes the element after it, and is not one */
			r->attr &= (uint8_t) ~(1u << r->depth);
			return;
		}
	}
}

static bool is_bulk(uint8_t t)
{
	return t == '$' || t == '!' || t == '=';
}

/* The length line of a bulk string or an aggregate ended. */
static void length_done(struct ps_proto_state *st)
{
	struct ps_resp *r = &st->u.resp;
	uint8_t t = r->rtype;
	if (r->rflags & F_NEG) {
		/* RESP2 nulls: $-1 and *-1 */
		if (r->rnum == 1 && (t == '$' || t == '*'))
			element_done(st);
		else
			ps_proto_never(st, PS_R_REDIS_PARSE);
		return;
	}
	if (is_bulk(t)) {
		r->rs = r->rnum ? RS_BULK : RS_BCR;
		return;
	}
	uint64_t count = (t == '%' || t == '|') ? r->rnum * 2 : r->rnum;
	if (count > UINT32_MAX) {
		ps_proto_never(st, PS_R_REDIS_PARSE);
		return;
	}
	if (t == '>' && r->depth == 0)
		r->rflags |= RF_PUSH;
	if (count == 0) {
		if (t == '|')
			r->rs = RS_TYPE;
		else
			element_done(st);
		return;
	}
	if (r->depth == PS_RESP_DEPTH) {
		ps_proto_never(st, PS_R_REDIS_DEPTH);
		return;
	}
	r->left[r->depth] = (uint32_t)count;
	if (t == '|')
		r->attr |= (uint8_t)(1u << r->depth);
	r->depth++;
	r->rs = RS_TYPE;
}

void ps_resp_in(struct ps_proto_state *st, const uint8_t *b, size_t n)
{
	struct ps_resp *r = &st->u.resp;
	for (size_t i = 0; i < n && !st->never; i++) {
		uint8_t c = b[i];
		switch (r->rs) {
		case RS_TYPE:
			if (r->depth == 0 && r->pending == 0) {
				ps_proto_never(st, PS_R_UNSOLICITED);
				break;
			}
			r->rtype = c;
			r->rnum = 0;
			r->rflags &= (uint8_t)~(F_NEG | F_DIG);
			switch (c) {
			case '+': case '-': case ':': case ',': case '#': case '_': case '(':
				r->rs = RS_LINE;
				break;
			case '$': case '!': case '=': case '*': case '~': case '>': case '%': case '|':
				r->rs = RS_LEN;
				break;
			default:
				ps_proto_never(st, PS_R_REDIS_PARSE);
			}
			break;
		case RS_LINE: {
			const uint8_t *nl = memchr(b + i, '\n', n - i);
			if (!nl) {
				i = n - 1;
				break;
			}
			i = (size_t)(nl - b);
			element_done(st);
			break;
		}
		case RS_LEN: {
			/* '?': a streamed string or aggregate, which this framer does not follow */
			int e = num_byte(c, &r->rnum, &r->rflags);
			if (e < 0 || (e == 1 && !(r->rflags & F_DIG)))
				ps_proto_never(st, PS_R_REDIS_PARSE);
			else if (e == 1)
				r->rs = RS_LEN_LF;
			break;
		}
		case RS_LEN_LF:
			if (c != '\n')
				ps_proto_never(st, PS_R_REDIS_PARSE);
			else
				length_done(st);
			break;
		case RS_BULK: {
			size_t take = n - i < r->rnum ? n - i : (size_t)r->rnum;
			r->rnum -= take;
			i += take - 1;
			if (r->rnum == 0)
				r->rs = RS_BCR;
			break;
		}
		case RS_BCR:
			if (c != '\r')
				ps_proto_never(st, PS_R_REDIS_PARSE);
			else
				r->rs = RS_BLF;
			break;
		case RS_BLF:
			if (c != '\n')
				ps_proto_never(st, PS_R_REDIS_PARSE);
			else
				element_done(st);
			break;
		}
	}
}

void ps_resp_start(struct ps_proto_state *st)
{
	struct ps_resp *r = &st->u.resp;
	r->cs = CS_START;
	r->cflags = 0;
	r->rs = RS_TYPE;
	r->rflags = 0;
	r->depth = 0;
	r->attr = 0;
	r->pending = 0;
}

enum ps_proto_reason ps_resp_busy(const struct ps_proto_state *st)
{
	const struct ps_resp *r = &st->u.resp;
	if (r->cs != CS_START)
		return PS_R_REQUEST_PARTIAL;
	if (r->cflags & CF_MULTI)
		return PS_R_REDIS_MULTI;
	if (r->pending || r->rs != RS_TYPE || r->depth)
		return PS_R_RESPONSE_PENDING;
	return PS_R_NONE;
}
