/* memcached framing for the protocol tracker: the text protocol (get, set,
 * cas, delete, incr, touch, gat, stats, ...) and the meta protocol (mg, ms,
 * md, ma, mn, me).
 *
 * Requests: each command line is tokenised; storage commands (set, add,
 * replace, append, prepend, cas, ms) carry a data block of the announced
 * length after their line.  `noreply` requests get no reply.  Meta requests
 * with the q flag may or may not be answered (quiet mode hides the common
 * outcome), so once one is sent only the mn/MN pairs count: everything is
 * answered when the MN for the last mn has been read and nothing was sent
 * after that mn.
 *
 * Replies: one line (STORED, DELETED, HD, EN, a number, an error, ...), or a
 * line with a data block (VA), or a multi-line reply (VALUE blocks or STAT
 * lines up to END).  The reply framer recognises each line by its first
 * word and does not need to know which request it answers.
 *
 * Whatever cannot be framed for certain is NEVER: the binary protocol,
 * `quit`, unknown commands, malformed lines, tokens no server accepts. */
#include "proto.h"

#include <string.h>

enum { OS_LINE, OS_DATA, OS_DCR, OS_DLF };
enum { IS_LINE, IS_DATA, IS_DCR, IS_DLF };

#define F_TOK 0x01     /* inside a token */
#define F_CR 0x02      /* '\r' seen: '\n' must follow */
#define OF_NOREPLY 0x04 /* the last token was "noreply" */
#define OF_QUIET 0x08   /* a meta q flag */
#define IF_MULTI 0x04   /* inside VALUE...END or STAT...END */

/* The longest token a server accepts: keys are at most 250 bytes. */
#define MAX_TOKEN 250

enum {
	K_GET = 1, K_STORE, K_CAS, K_DELETE, K_ARITH, K_TOUCH, K_GAT, K_VERSION, K_STATS,
	K_FLUSH, K_VERBOSITY, K_MG, K_MS, K_MD, K_MA, K_MN, K_ME, K_QUIT,
};

#define NOREPLY 0x1 /* the text protocol's trailing noreply applies */
#define META 0x2    /* meta flags (q) from token `flags_from` on */

static const struct command {
	const char *name;
	uint8_t kind;
	uint8_t min, max;   /* tokens on the line, command included; max 0: no limit */
	uint8_t size_at;    /* token holding the data-block length; 0: no data block */
	uint8_t numbers;    /* bit i: token i must be a number */
	uint8_t flags_from; /* META: first flag token */
	uint8_t opts;
} commands[] = {
	{ "get", K_GET, 2, 0, 0, 0, 0, 0 },
	{ "gets", K_GET, 2, 0, 0, 0, 0, 0 },
	{ "gat", K_GAT, 3, 0, 0, 1u << 1, 0, 0 },
	{ "gats", K_GAT, 3, 0, 0, 1u << 1, 0, 0 },
	{ "set", K_STORE, 5, 6, 4, 0x1c, 0, NOREPLY },
	{ "add", K_STORE, 5, 6, 4, 0x1c, 0, NOREPLY },
	{ "replace", K_STORE, 5, 6, 4, 0x1c, 0, NOREPLY },
	{ "append", K_STORE, 5, 6, 4, 0x1c, 0, NOREPLY },
	{ "prepend", K_STORE, 5, 6, 4, 0x1c, 0, NOREPLY },
	{ "cas", K_CAS, 6, 7, 4, 0x3c, 0, NOREPLY },
	{ "delete", K_DELETE, 2, 4, 0, 0, 0, NOREPLY },
	{ "incr", K_ARITH, 3, 4, 0, 0, 0, NOREPLY },
	{ "decr", K_ARITH, 3, 4, 0, 0, 0, NOREPLY },
	{ "touch", K_TOUCH, 3, 4, 0, 0, 0, NOREPLY },
	{ "version", K_VERSION, 1, 1, 0, 0, 0, 0 },
	{ "stats", K_STATS, 1, 4, 0, 0, 0, 0 },
	{ "flush_all", K_FLUSH, 1, 3, 0, 0, 0, NOREPLY },
	{ "verbosity", K_VERBOSITY, 2, 3, 0, 0, 0, NOREPLY },
	{ "mg", K_MG, 2, 0, 0, 0, 2, META },
	{ "ms", K_MS, 3, 0, 2, 1u << 2, 3, META },
	{ "md", K_MD, 2, 0, 0, 0, 2, META },
	{ "ma", K_MA, 2, 0, 0, 0, 2, META },
	{ "mn", K_MN, 1, 1, 0, 0, 0, 0 },
	{ "me", K_ME, 2, 2, 0, 0, 0, 0 },
	{ "quit", K_QUIT, 1, 0, 0, 0, 0, 0 },
};

enum {
	W_VALUE = 1, W_VA, W_END, W_CONTINUE, W_MN, W_ONE_LINE,
};

static const struct {
	const char *word;
	uint8_t kind;
} replies[] = {
	{ "VALUE", W_VALUE },	    { "VA", W_VA },		{ "END", W_END },
	{ "STAT", W_CONTINUE },	    { "ITEM", W_CONTINUE },	{ "PREFIX", W_CONTINUE },
	{ "MN", W_MN },		    { "STORED", W_ONE_LINE },	{ "NOT_STORED", W_ONE_LINE },
	{ "EXISTS", W_ONE_LINE },   { "NOT_FOUND", W_ONE_LINE }, { "DELETED", W_ONE_LINE },
	{ "TOUCHED", W_ONE_LINE },  { "OK", W_ONE_LINE },	{ "RESET", W_ONE_LINE },
	{ "VERSION", W_ONE_LINE },  { "ERROR", W_ONE_LINE },	{ "CLIENT_ERROR", W_ONE_LINE },
	{ "SERVER_ERROR", W_ONE_LINE }, { "HD", W_ONE_LINE },	{ "EN", W_ONE_LINE },
	{ "NF", W_ONE_LINE },	    { "NS", W_ONE_LINE },	{ "EX", W_ONE_LINE },
	{ "ME", W_ONE_LINE },
};

static bool tok_is(const struct ps_mc_tok *t, const char *s)
{
	size_t n = strlen(s);
	return t->len == n && memcmp(t->text, s, n) == 0;
}

static void tok_byte(struct ps_mc_tok *t, uint8_t c)
{
	if (t->len < PS_MC_TOKEN)
		t->text[t->len] = (char)c;
	if (t->len < UINT16_MAX)
		t->len++;
}

/* The token as a number: digits only (a leading '-' if `sign`), whole token kept. */
static int tok_number(const struct ps_mc_tok *t, bool sign, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;
	if (t->len == 0 || t->len > PS_MC_TOKEN)
		return -1;
	if (sign && t->text[0] == '-')
		i = 1;
	if (i == t->len)
		return -1;
	for (; i < t->len; i++) {
		if (t->text[i] < '0' || t->text[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(t->text[i] - '0'); /* at most 12 digits: no overflow */
	}
	*out = v;
	return 0;
}

static const struct command *command_of(uint8_t kind)
{
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (commands[i].kind == kind)
			return &commands[i];
	return NULL;
}

/* ---- requests ---- */

static void out_token_done(struct ps_proto_state *st)
{
	struct ps_mc *m = &st->u.mc;
	struct ps_mc_tok *t = &m->otok;
	m->oflags &= (uint8_t)~F_TOK;
	if (t->len > MAX_TOKEN) {
		ps_proto_never(st, PS_R_MC_PARSE);
		return;
	}
	if (m->oti == 0) {
		m->okind = 0;
		for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
			if (tok_is(t, commands[i].name))
				m->okind = commands[i].kind;
		if (m->okind == 0)
			ps_proto_never(st, PS_R_MC_UNKNOWN);
		else if (m->okind == K_QUIT)
			ps_proto_never(st, PS_R_MC_QUIT); /* the server closes: nothing to pool */
		m->oflags &= (uint8_t)~(OF_NOREPLY | OF_QUIET);
	} else {
		const struct command *c = command_of(m->okind);
		uint64_t v;
		if (!c)
			return; /* NEVER already */
		if (m->oti < 8 && (c->numbers & (1u << m->oti)) &&
		    tok_number(t, m->oti != c->size_at, &v) < 0)
			ps_proto_never(st, PS_R_MC_PARSE); /* the server's answer is unknown */
		if (m->oti == c->size_at && tok_number(t, false, &v) == 0)
			m->oleft = v;
		if ((c->opts & META) && m->oti >= c->flags_from && tok_is(t, "q"))
			m->oflags |= OF_QUIET;
		if (tok_is(t, "noreply"))
			m->oflags |= OF_NOREPLY;
		else
			m->oflags &= (uint8_t)~OF_NOREPLY;
	}
	if (m->oti < UINT16_MAX)
		m->oti++;
}

static void expect_reply(struct ps_mc *m, bool quiet, bool is_mn)
{
	if (quiet)
		m->quiet = 1;
	if (!m->quiet) {
		if (m->pending != UINT32_MAX)
			m->pending++;
	} else if (is_mn) {
		if (m->mn_pending != UINT32_MAX)
			m->mn_pending++;
		m->since_mn = 0;
	} else if (m->since_mn != UINT32_MAX) {
		m->since_mn++;
	}
}

static void out_line_done(struct ps_proto_state *st)
{
	struct ps_mc *m = &st->u.mc;
	m->oflags &= (uint8_t)~F_CR;
	if (m->oti == 0) {
		ps_proto_never(st, PS_R_MC_UNKNOWN); /* an empty line gets an ERROR */
		return;
	}
	const struct command *c = command_of(m->okind);
	if (!c) {
		ps_proto_never(st, PS_R_MC_UNKNOWN);
		return;
	}
	if (m->oti < c->min || (c->max && m->oti > c->max)) {
		ps_proto_never(st, PS_R_MC_PARSE);
		return;
	}
	bool noreply = (c->opts & NOREPLY) && (m->oflags & OF_NOREPLY);
	bool quiet = (c->opts & META) && (m->oflags & OF_QUIET);
	if (!noreply)
		expect_reply(m, quiet, c->kind == K_MN);
	m->oti = 0;
	m->os = c->size_at ? (m->oleft ? OS_DATA : OS_DCR) : OS_LINE;
}

void ps_mc_out(struct ps_proto_state *st, const uint8_t *b, size_t n)
{
	struct ps_mc *m = &st->u.mc;
	for (size_t i = 0; i < n && !st->never; i++) {
		uint8_t c = b[i];
		switch (m->os) {
		case OS_LINE:
			if (m->oflags & F_CR) {
				if (c == '\n')
					out_line_done(st);
				else
					ps_proto_never(st, PS_R_MC_PARSE);
				break;
			}
			if (c == 0x80 && m->oti == 0 && !(m->oflags & F_TOK)) {
				ps_proto_never(st, PS_R_MC_BINARY); /* request magic */
				break;
			}
			if (c == ' ' || c == '\r' || c == '\n') {
				if (m->oflags & F_TOK)
					out_token_done(st);
				if (st->never)
					break; /* e.g. an unknown command: nothing to end */
				if (c == '\r')
					m->oflags |= F_CR;
				else if (c == '\n')
					out_line_done(st);
				break;
			}
			if (!(m->oflags & F_TOK)) {
				m->oflags |= F_TOK;
				m->otok.len = 0;
			}
			tok_byte(&m->otok, c);
			break;
		case OS_DATA: {
			size_t take = n - i < m->oleft ? n - i : (size_t)m->oleft;
			m->oleft -= take;
			i += take - 1;
			if (m->oleft == 0)
				m->os = OS_DCR;
			break;
		}
		case OS_DCR:
			if (c != '\r')
				ps_proto_never(st, PS_R_MC_PARSE);
			else
				m->os = OS_DLF;
			break;
		case OS_DLF:
			if (c != '\n')
				ps_proto_never(st, PS_R_MC_PARSE);
			else
				m->os = OS_LINE;
			break;
		}
	}
}

/* ---- replies ---- */

static void reply_done(struct ps_proto_state *st, bool is_mn)
{
	struct ps_mc *m = &st->u.mc;
	m->iflags &= (uint8_t)~IF_MULTI;
	if (!m->quiet) {
		if (m->pending == 0) {
			ps_proto_never(st, PS_R_UNSOLICITED);
			return;
		}
		m->pending--;
		ps_proto_exchange_done(st);
		return;
	}
	if (!is_mn)
		return; /* answers a quiet request, or one before the next MN */
	if (m->mn_pending == 0) {
		ps_proto_never(st, PS_R_UNSOLICITED);
		return;
	}
	if (--m->mn_pending == 0 && m->since_mn == 0) {
		/* everything sent so far is answered: count one by one again */
		m->quiet = 0;
		m->pending = 0;
		ps_proto_exchange_done(st);
	}
}

static void in_token_done(struct ps_proto_state *st)
{
	struct ps_mc *m = &st->u.mc;
	struct ps_mc_tok *t = &m->itok;
	m->iflags &= (uint8_t)~F_TOK;
	if (m->iti == 0) {
		m->iword = 0;
		for (size_t i = 0; i < sizeof replies / sizeof replies[0]; i++)
			if (tok_is(t, replies[i].word))
				m->iword = replies[i].kind;
		uint64_t v;
		if (m->iword == 0 && tok_number(t, false, &v) == 0)
			m->iword = W_ONE_LINE; /* incr/decr */
		if (m->iword == 0)
			ps_proto_never(st, PS_R_MC_PARSE);
	} else if ((m->iword == W_VALUE && m->iti == 3) || (m->iword == W_VA && m->iti == 1)) {
		if (tok_number(t, false, &m->ileft) < 0)
			ps_proto_never(st, PS_R_MC_PARSE);
	}
	if (m->iti < UINT16_MAX)
		m->iti++;
}

static void in_line_done(struct ps_proto_state *st)
{
	struct ps_mc *m = &st->u.mc;
	uint16_t tokens = m->iti;
	m->iflags &= (uint8_t)~F_CR;
	m->iti = 0;
	if (tokens == 0 || (m->iword == W_VALUE && tokens < 4) || (m->iword == W_VA && tokens < 2)) {
		ps_proto_never(st, PS_R_MC_PARSE);
		return;
	}
	switch (m->iword) {
	case W_VALUE:
		m->iflags |= IF_MULTI;
		/* fall through */
	case W_VA:
		m->is = m->ileft ? IS_DATA : IS_DCR;
		break;
	case W_CONTINUE:
		m->iflags |= IF_MULTI;
		break;
	default:
		reply_done(st, m->iword == W_MN);
		break;
	}
}

void ps_mc_in(struct ps_proto_state *st, const uint8_t *b, size_t n)
{
	struct ps_mc *m = &st->u.mc;
	for (size_t i = 0; i < n && !st->never; i++) {
		uint8_t c = b[i];
		switch (m->is) {
		case IS_LINE:
			if (m->iflags & F_CR) {
				if (c == '\n')
					in_line_done(st);
				else
					ps_proto_never(st, PS_R_MC_PARSE);
				break;
			}
			if (m->iti == 0 && !(m->iflags & (F_TOK | IF_MULTI)) && !m->quiet && m->pending == 0) {
				ps_proto_never(st, PS_R_UNSOLICITED);
				break;
			}
			if (c == ' ' || c == '\r' || c == '\n') {
				if (m->iflags & F_TOK)
					in_token_done(st);
				if (st->never)
					break;
				if (c == '\r')
					m->iflags |= F_CR;
				else if (c == '\n')
					in_line_done(st);
				break;
			}
			if (!(m->iflags & F_TOK)) {
				m->iflags |= F_TOK;
				m->itok.len = 0;
			}
			tok_byte(&m->itok, c);
			break;
		case IS_DATA: {
			size_t take = n - i < m->ileft ? n - i : (size_t)m->ileft;
			m->ileft -= take;
			i += take - 1;
			if (m->ileft == 0)
				m->is = IS_DCR;
			break;
		}
		case IS_DCR:
			if (c != '\r')
				ps_proto_never(st, PS_R_MC_PARSE);
			else
				m->is = IS_DLF;
			break;
		case IS_DLF:
			if (c != '\n') {
				ps_proto_never(st, PS_R_MC_PARSE);
				break;
			}
			m->is = IS_LINE;
			if (m->iword == W_VA)
				reply_done(st, false); /* a VALUE block is followed by more, up to END */
			break;
		}
	}
}

void ps_mc_start(struct ps_proto_state *st)
{
	struct ps_mc *m = &st->u.mc;
	m->os = OS_LINE;
	m->oflags = 0;
	m->oti = 0;
	m->is = IS_LINE;
	m->iflags = 0;
	m->iti = 0;
	m->quiet = 0;
	m->pending = m->mn_pending = m->since_mn = 0;
}

enum ps_proto_reason ps_mc_busy(const struct ps_proto_state *st)
{
	const struct ps_mc *m = &st->u.mc;
	if (m->os != OS_LINE || m->oti || (m->oflags & (F_TOK | F_CR)))
		return PS_R_REQUEST_PARTIAL;
	if (m->quiet || m->pending || m->is != IS_LINE || m->iti || (m->iflags & (F_TOK | F_CR | IF_MULTI)))
		return PS_R_RESPONSE_PENDING;
	return PS_R_NONE;
}
