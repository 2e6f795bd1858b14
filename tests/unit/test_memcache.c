/* memcache.c: memcached text and meta requests and their replies, with
 * data blocks split at any byte, noreply, quiet mode synchronised by mn,
 * and what cannot be framed (quit, unknown commands, the binary protocol,
 * malformed lines) made NEVER. */
#include "proto_helpers.h"

#include <stdio.h>

static struct ps_proto_state st;

static void setup(void)
{
	ps_proto_init(&st, PS_PROTOS_ALL);
}

TestSuite(memcache, .init = setup);

static void check_every_split(const char *reqs, const char *replies, enum ps_proto_verdict v,
			      enum ps_proto_reason r)
{
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, reqs);
	t_in(&st, replies);
	t_assert_verdict(&st, v, r);

	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out_bytes(&st, reqs);
	t_in_bytes(&st, replies);
	t_assert_verdict(&st, v, r);

	for (size_t i = 1; i < strlen(reqs); i++) {
		ps_proto_init(&st, PS_PROTOS_ALL);
		t_out_split(&st, reqs, i);
		t_in(&st, replies);
		t_assert_verdict(&st, v, r);
	}
	for (size_t i = 1; i < strlen(replies); i++) {
		ps_proto_init(&st, PS_PROTOS_ALL);
		t_out(&st, reqs);
		t_in_split(&st, replies, i);
		t_assert_verdict(&st, v, r);
	}
}

/* Every proper prefix of the replies leaves the exchange unfinished. */
static void check_prefixes_busy(const char *reqs, const char *replies)
{
	for (size_t i = 0; i < strlen(replies); i++) {
		ps_proto_init(&st, PS_PROTOS_ALL);
		t_out(&st, reqs);
		t_in_n(&st, replies, i);
		t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	}
}

Test(memcache, get_miss_and_hit)
{
	check_every_split("get k\r\n", "END\r\n", PS_V_IDLE, PS_R_NONE);
	check_every_split("get k\r\n", "VALUE k 0 5\r\nhello\r\nEND\r\n", PS_V_IDLE, PS_R_NONE);
	check_prefixes_busy("get k\r\n", "VALUE k 0 5\r\nhello\r\nEND\r\n");
	/* several keys, gets with a cas unique, and a value that holds "END" */
	check_every_split("get a b c\r\ngets d\r\n",
			  "VALUE a 0 1\r\nx\r\nVALUE c 3 7\r\nEND\r\nEN\r\nEND\r\nVALUE d 0 2 99\r\nyy\r\nEND\r\n",
			  PS_V_IDLE, PS_R_NONE);
	cr_assert_eq(ps_proto_exchanges(&st), 2);
	check_prefixes_busy("get a b c\r\n", "VALUE a 0 1\r\nx\r\nVALUE c 3 7\r\nEND\r\nEN\r\nEND\r\n");
}

Test(memcache, set_with_data_block_split)
{
	check_every_split("set k 0 0 5\r\nhello\r\n", "STORED\r\n", PS_V_IDLE, PS_R_NONE);
	t_out(&st, "set k 0 0 5\r\n");
	t_assert_busy(&st, PS_R_REQUEST_PARTIAL);
	t_out(&st, "hel");
	t_assert_busy(&st, PS_R_REQUEST_PARTIAL);
	t_out(&st, "lo\r");
	t_assert_busy(&st, PS_R_REQUEST_PARTIAL);
	t_out(&st, "\n");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_in(&st, "STORED\r\n");
	t_assert_idle(&st);
	/* a data block that looks like commands is data */
	check_every_split("set k 1 60 13\r\nget x\r\nquit\r\n\r\nget k\r\n",
			  "STORED\r\nVALUE k 1 13\r\nget x\r\nquit\r\n\r\nEND\r\n", PS_V_IDLE, PS_R_NONE);
	/* the other storage commands, cas, an empty value, a negative exptime */
	check_every_split("add a 0 0 1\r\nx\r\nreplace a 0 0 1\r\ny\r\nappend a 0 0 1\r\nz\r\n"
			  "prepend a 0 0 0\r\n\r\ncas a 0 -1 1 12345\r\nq\r\n",
			  "NOT_STORED\r\nSTORED\r\nSTORED\r\nSTORED\r\nEXISTS\r\n", PS_V_IDLE, PS_R_NONE);
}

Test(memcache, noreply_expects_nothing)
{
	/* two noreply stores, then a get: only the get is answered */
	check_every_split("set a 0 0 1 noreply\r\nx\r\ndelete b noreply\r\nget a\r\n",
			  "VALUE a 0 1\r\nx\r\nEND\r\n", PS_V_IDLE, PS_R_NONE);
	/* noreply alone: nothing pending, but no exchange either */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, "set a 0 0 1 noreply\r\nx\r\n");
	t_assert_busy(&st, PS_R_NO_EXCHANGE);
	/* a reply to a noreply request is an answer to nobody */
	t_in(&st, "STORED\r\n");
	t_assert_never(&st, PS_R_UNSOLICITED);
}

Test(memcache, other_text_commands)
{
	check_every_split("incr n 1\r\ndecr n 5\r\nincr m 1\r\n", "2\r\n0\r\nNOT_FOUND\r\n", PS_V_IDLE,
			  PS_R_NONE);
	check_every_split("delete k\r\ntouch k 10\r\ngat 10 k\r\ngats 0 k j\r\n",
			  "DELETED\r\nTOUCHED\r\nVALUE k 0 1\r\nx\r\nEND\r\nEND\r\n", PS_V_IDLE, PS_R_NONE);
	check_every_split("version\r\nflush_all\r\nflush_all 0 noreply\r\nverbosity 1\r\n",
			  "VERSION 1.6.18\r\nOK\r\nOK\r\n", PS_V_IDLE, PS_R_NONE);
	check_every_split("stats\r\n", "STAT pid 1\r\nSTAT uptime 10\r\nEND\r\n", PS_V_IDLE, PS_R_NONE);
	check_prefixes_busy("stats\r\n", "STAT pid 1\r\nSTAT uptime 10\r\nEND\r\n");
	check_every_split("stats reset\r\nstats detail dump\r\n", "RESET\r\nPREFIX a get 1\r\nEND\r\n",
			  PS_V_IDLE, PS_R_NONE);
	/* errors are answers */
	check_every_split("get k\r\nincr k x\r\n",
			  "SERVER_ERROR out of memory\r\nCLIENT_ERROR invalid numeric delta argument\r\n",
			  PS_V_IDLE, PS_R_NONE);
	/* bare \n line ends, which memcached accepts */
	check_every_split("get k\nset k 0 0 1\nx\r\n", "END\r\nSTORED\r\n", PS_V_IDLE, PS_R_NONE);
}

Test(memcache, meta_commands)
{
	check_every_split("mg k v\r\n", "VA 5\r\nhello\r\n", PS_V_IDLE, PS_R_NONE);
	check_prefixes_busy("mg k v\r\n", "VA 5 f0 t-1\r\nhello\r\n");
	check_every_split("mg k v\r\nmg miss v\r\nmg k s t\r\n", "VA 2 f0\r\nhi\r\nEN\r\nHD s2 t-1\r\n",
			  PS_V_IDLE, PS_R_NONE);
	check_every_split("ms k 5 T60 F3\r\nhello\r\nms k 0\r\n\r\n", "HD\r\nNS\r\n", PS_V_IDLE, PS_R_NONE);
	check_every_split("md k\r\nma n\r\nma n v\r\nmn\r\nme k\r\n",
			  "NF\r\nHD\r\nVA 1\r\n2\r\nMN\r\nME k exp=-1 la=1 cas=2 fetch=no cls=1 size=63\r\n",
			  PS_V_IDLE, PS_R_NONE);
	/* ms data block split */
	t_out(&st, "ms k 10 T0\r\n01234");
	t_assert_busy(&st, PS_R_REQUEST_PARTIAL);
	t_out(&st, "56789\r\n");
	t_in(&st, "HD\r\n");
	t_assert_idle(&st);
}

Test(memcache, quiet_mode_waits_for_mn)
{
	/* two quiet gets, one hit one miss, then mn: the miss is silent */
	t_out(&st, "mg a v q\r\nmg b v q\r\nmn\r\n");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_in(&st, "VA 1\r\nx\r\n");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_in(&st, "MN\r\n");
	t_assert_idle(&st);
	/* the same at every split */
	check_every_split("mg a v q\r\nmg b v q\r\nms c 1 q\r\nz\r\nmn\r\n", "VA 1\r\nx\r\nMN\r\n", PS_V_IDLE,
			  PS_R_NONE);
	/* quiet requests after the last mn are still open */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, "mg a v q\r\nmn\r\nmd b q\r\n");
	t_in(&st, "MN\r\n");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_out(&st, "mn\r\n");
	t_in(&st, "MN\r\n");
	t_assert_idle(&st);
	/* no mn at all: never known to be answered */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, "md k q\r\n");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	/* back to counting after the sync */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, "mg a q\r\nmn\r\n");
	t_in(&st, "MN\r\n");
	t_out(&st, "mg a v\r\n");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_in(&st, "EN\r\n");
	t_assert_idle(&st);
	t_in(&st, "EN\r\n");
	t_assert_never(&st, PS_R_UNSOLICITED);
}

Test(memcache, quit_is_never)
{
	t_out(&st, "quit\r\n");
	cr_assert_eq(ps_proto_kind(&st), PS_PROTO_MEMCACHED);
	t_assert_never(&st, PS_R_MC_QUIT);
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, "get k\r\n");
	t_in(&st, "END\r\n");
	t_out_bytes(&st, "quit\r\n");
	t_assert_never(&st, PS_R_MC_QUIT);
}

Test(memcache, unknown_commands_are_never)
{
	static const char *const unknown[] = { "bogus k\r\n", "GET k\r\n", "watch\r\n", "lru_crawler metadump all\r\n",
					       "\r\n", "slabs reassign 1 2\r\n",
					       /* a bare \n right after the unknown word (found by fuzzing:
						* the line end was processed after the NEVER) */
					       "bogus\n", "\n" };
	for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
		ps_proto_init(&st, PS_PROTOS_ALL);
		t_out(&st, "get k\r\n");
		t_in(&st, "END\r\n");
		t_out(&st, unknown[i]);
		t_assert_never(&st, PS_R_MC_UNKNOWN);
	}
}

Test(memcache, binary_protocol_is_never)
{
	static const unsigned char get_req[] = { 0x80, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
						 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
						 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 'k' };
	t_out_n(&st, get_req, sizeof get_req);
	cr_assert_eq(ps_proto_kind(&st), PS_PROTO_MEMCACHED);
	t_assert_never(&st, PS_R_MC_BINARY);
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out_n(&st, get_req, 1);
	t_assert_never(&st, PS_R_MC_BINARY);
}

Test(memcache, malformed_is_never)
{
	static const char *const bad_reqs[] = {
		"set k 0 0 abc\r\n", "set k 0 0\r\n", "set k 0 0 5 noreply extra\r\n", "set k x 0 1\r\nx\r\n",
		"set k 0 0 -1\r\n", "cas k 0 0 1\r\nx\r\n", "get\r\n", "ms k\r\n", "ms k x\r\n", "incr k\r\n",
		"set k 0 0 1\r\nxy\r\n", "get k\rX",
	};
	for (size_t i = 0; i < sizeof bad_reqs / sizeof bad_reqs[0]; i++) {
		ps_proto_init(&st, PS_PROTOS_ALL);
		t_out(&st, bad_reqs[i]);
		t_assert_never(&st, PS_R_MC_PARSE);
	}
	/* a key longer than any server accepts */
	char line[400] = "get ";
	memset(line + 4, 'k', 251);
	strcpy(line + 255, "\r\n");
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, line);
	t_assert_never(&st, PS_R_MC_PARSE);

	static const char *const bad_replies[] = {
		"$5\r\n", "VALUE k 0\r\n", "VALUE k 0 x\r\n", "VALUE k 0 1\r\nxy\r\n", "HELLO\r\n",
		"\r\n", "VA\r\n", "END\rX", "BOGUS\n", "\n",
	};
	for (size_t i = 0; i < sizeof bad_replies / sizeof bad_replies[0]; i++) {
		ps_proto_init(&st, PS_PROTOS_ALL);
		t_out(&st, "get k\r\n");
		t_in(&st, bad_replies[i]);
		t_assert_never(&st, PS_R_MC_PARSE);
	}
}

Test(memcache, answer_to_nobody_is_never)
{
	t_out(&st, "get k\r\n");
	t_in(&st, "END\r\nEND\r\n");
	t_assert_never(&st, PS_R_UNSOLICITED);
}

Test(memcache, big_value_in_pieces)
{
	static char value[200000];
	char head[64];
	memset(value, 'v', sizeof value);
	snprintf(head, sizeof head, "VALUE k 0 %zu\r\n", sizeof value);
	t_out(&st, "get k\r\n");
	t_in(&st, head);
	for (size_t off = 0; off < sizeof value; off += 4096) {
		t_assert_busy(&st, PS_R_RESPONSE_PENDING);
		t_in_n(&st, value + off, sizeof value - off < 4096 ? sizeof value - off : 4096);
	}
	t_in(&st, "\r\nEND\r\n");
	t_assert_idle(&st);
}
