/* resp.c: Redis commands (RESP arrays and inline) and their replies.
 * Session-binding commands make a connection NEVER (SELECT to a database
 * other than 0, AUTH, HELLO with options, CLIENT SETNAME/TRACKING/REPLY,
 * WATCH, the SUBSCRIBE family, MONITOR, READONLY, QUIT); MULTI keeps it
 * BUSY until EXEC/DISCARD; replies of every RESP2/RESP3 type are framed,
 * pipelined and split at any byte. */
#include "proto_helpers.h"

#include <stdio.h>

static struct ps_proto_state st;

static void setup(void)
{
	ps_proto_init(&st, PS_PROTOS_ALL);
}

TestSuite(resp, .init = setup);

#define SET_KV "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"
#define GET_K "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"

static void check_every_split(const char *cmds, const char *replies, enum ps_proto_verdict v,
			      enum ps_proto_reason r)
{
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, cmds);
	t_in(&st, replies);
	t_assert_verdict(&st, v, r);

	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out_bytes(&st, cmds);
	t_in_bytes(&st, replies);
	t_assert_verdict(&st, v, r);

	for (size_t i = 1; i < strlen(cmds); i++) {
		ps_proto_init(&st, PS_PROTOS_ALL);
		t_out_split(&st, cmds, i);
		t_in(&st, replies);
		t_assert_verdict(&st, v, r);
	}
	for (size_t i = 1; i < strlen(replies); i++) {
		ps_proto_init(&st, PS_PROTOS_ALL);
		t_out(&st, cmds);
		t_in_split(&st, replies, i);
		t_assert_verdict(&st, v, r);
	}
}

/* A command that must make the connection NEVER, sent whole and byte by byte. */
static void check_never(const char *cmd, enum ps_proto_reason r)
{
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, cmd);
	t_assert_never(&st, r);
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out_bytes(&st, cmd);
	t_assert_never(&st, r);
	/* after a harmless command too */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, "*1\r\n$4\r\nPING\r\n");
	t_in(&st, "+PONG\r\n");
	t_assert_idle(&st);
	t_out(&st, cmd);
	t_assert_never(&st, r);
}

Test(resp, ping_inline_and_array)
{
	check_every_split("PING\r\n", "+PONG\r\n", PS_V_IDLE, PS_R_NONE);
	check_every_split("*1\r\n$4\r\nPING\r\n", "+PONG\r\n", PS_V_IDLE, PS_R_NONE);
	check_every_split("ping\n", "+PONG\r\n", PS_V_IDLE, PS_R_NONE);
}

Test(resp, states_along_one_command)
{
	t_out(&st, "*3\r\n$3\r\nSET\r\n$3\r\nke");
	t_assert_busy(&st, PS_R_REQUEST_PARTIAL);
	t_out(&st, "y\r\n$5\r\nvalue\r\n");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_in(&st, "+O");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_in(&st, "K\r\n");
	t_assert_idle(&st);
	cr_assert_eq(ps_proto_exchanges(&st), 1);
}

Test(resp, pipelined_set_get_with_replies_split_across_reads)
{
	check_every_split(SET_KV GET_K SET_KV GET_K, "+OK\r\n$5\r\nvalue\r\n+OK\r\n$5\r\nvalue\r\n",
			  PS_V_IDLE, PS_R_NONE);
	cr_assert_eq(ps_proto_exchanges(&st), 4);
	/* one reply short */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, SET_KV GET_K);
	t_in(&st, "+OK\r\n");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_in(&st, "$5\r\nval");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_in(&st, "ue\r");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_in(&st, "\n");
	t_assert_idle(&st);
}

Test(resp, bulk_values_are_binary_safe)
{
	/* CRLF and type bytes inside a bulk string are data */
	check_every_split("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$8\r\n*1\r\n+x\r\n\r\n" GET_K,
			  "+OK\r\n$8\r\n*1\r\n+x\r\n\r\n", PS_V_IDLE, PS_R_NONE);
	/* empty and null bulk strings */
	check_every_split(GET_K GET_K, "$0\r\n\r\n$-1\r\n", PS_V_IDLE, PS_R_NONE);
}

Test(resp, nested_arrays)
{
	const char *reply = "*3\r\n*2\r\n:1\r\n:2\r\n*1\r\n*2\r\n$3\r\nfoo\r\n*0\r\n*-1\r\n";
	check_every_split("*2\r\n$4\r\nSCAN\r\n$1\r\n0\r\n", reply, PS_V_IDLE, PS_R_NONE);
	/* every proper prefix is unfinished */
	for (size_t i = 1; i < strlen(reply); i++) {
		ps_proto_init(&st, PS_PROTOS_ALL);
		t_out(&st, "*2\r\n$4\r\nSCAN\r\n$1\r\n0\r\n");
		t_in_n(&st, reply, i);
		t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	}
}

Test(resp, error_and_integer_replies_count)
{
	check_every_split("*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n*1\r\n$3\r\nFOO\r\n",
			  ":1\r\n-ERR unknown command 'FOO'\r\n", PS_V_IDLE, PS_R_NONE);
}

Test(resp, resp3_types_are_framed)
{
	/* map, set, null, boolean, double, big number, blob error, verbatim,
	 * and an attribute before a reply (not a reply itself) */
	const char *replies = "%2\r\n+a\r\n:1\r\n+b\r\n~2\r\n:1\r\n:2\r\n"
			      "~1\r\n_\r\n"
			      "#t\r\n"
			      ",3.14\r\n"
			      "(3492890328409238509324850943850943825024385\r\n"
			      "!21\r\nSYNTAX invalid syntax\r\n"
			      "=15\r\ntxt:Some string\r\n"
			      "|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2039123\r\n:9543892\r\n";
	const char *cmds = "PING\r\nPING\r\nPING\r\nPING\r\nPING\r\nPING\r\nPING\r\nPING\r\n";
	check_every_split(cmds, replies, PS_V_IDLE, PS_R_NONE);
	cr_assert_eq(ps_proto_exchanges(&st), 8);
	/* the attribute alone is not the reply */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, "PING\r\n");
	t_in(&st, "|1\r\n+k\r\n+v\r\n");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_in(&st, "+PONG\r\n");
	t_assert_idle(&st);
}

Test(resp, a_push_is_not_a_reply)
{
	t_out(&st, "PING\r\n");
	t_in(&st, ">2\r\n+invalidate\r\n*1\r\n$1\r\nk\r\n");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_in(&st, "+PONG\r\n");
	t_assert_idle(&st);
}

Test(resp, deep_nesting_is_never)
{
	char reply[128] = "";
	for (int i = 0; i <= PS_RESP_DEPTH; i++)
		strcat(reply, "*1\r\n");
	strcat(reply, ":1\r\n");
	t_out(&st, "PING\r\n");
	t_in(&st, reply);
	t_assert_never(&st, PS_R_REDIS_DEPTH);
	/* PS_RESP_DEPTH levels are followed */
	ps_proto_init(&st, PS_PROTOS_ALL);
	t_out(&st, "PING\r\n");
	t_in(&st, reply + 4);
	t_assert_idle(&st);
}

Test(resp, select_zero_is_pooled_other_databases_are_not)
{
	check_every_split("*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n", "+OK\r\n", PS_V_IDLE, PS_R_NONE);
	check_every_split("SELECT 0\r\n", "+OK\r\n", PS_V_IDLE, PS_R_NONE);
	check_never("*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n", PS_R_REDIS_SELECT);
	check_never("*2\r\n$6\r\nselect\r\n$2\r\n15\r\n", PS_R_REDIS_SELECT);
	check_never("*2\r\n$6\r\nSelect\r\n$2\r\n00\r\n", PS_R_REDIS_SELECT); /* not literally 0 */
	check_never("SELECT 1\r\n", PS_R_REDIS_SELECT);
	check_never("select   2\r\n", PS_R_REDIS_SELECT);
	/* sticky: SELECT 0 afterwards does not undo it */
	t_out(&st, "SELECT 0\r\n");
	t_in(&st, "+OK\r\n+OK\r\n");
	t_assert_never(&st, PS_R_REDIS_SELECT);
}

Test(resp, auth_is_never)
{
	check_never("*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n", PS_R_REDIS_AUTH);
	check_never("*3\r\n$4\r\nauth\r\n$4\r\nuser\r\n$6\r\nsecret\r\n", PS_R_REDIS_AUTH);
	check_never("AUTH secret\r\n", PS_R_REDIS_AUTH);
}

Test(resp, hello_with_options_is_never)
{
	check_every_split("*1\r\n$5\r\nHELLO\r\n", "*0\r\n", PS_V_IDLE, PS_R_NONE);
	check_every_split("*2\r\n$5\r\nHELLO\r\n$1\r\n2\r\n", "*0\r\n", PS_V_IDLE, PS_R_NONE);
	check_never("*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n", PS_R_REDIS_HELLO);
	check_never("*5\r\n$5\r\nHELLO\r\n$1\r\n2\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$1\r\np\r\n", PS_R_REDIS_HELLO);
	check_never("*4\r\n$5\r\nhello\r\n$1\r\n2\r\n$7\r\nSETNAME\r\n$3\r\nabc\r\n", PS_R_REDIS_HELLO);
	check_never("HELLO 3\r\n", PS_R_REDIS_HELLO);
}

Test(resp, client_subcommands_that_bind)
{
	check_never("*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$3\r\nabc\r\n", PS_R_REDIS_CLIENT);
	check_never("*3\r\n$6\r\nclient\r\n$8\r\ntracking\r\n$2\r\non\r\n", PS_R_REDIS_CLIENT);
	check_never("*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$3\r\nOFF\r\n", PS_R_REDIS_CLIENT);
	check_never("CLIENT NO-EVICT on\r\n", PS_R_REDIS_CLIENT);
	check_every_split("*2\r\n$6\r\nCLIENT\r\n$2\r\nID\r\n", ":42\r\n", PS_V_IDLE, PS_R_NONE);
	check_every_split("*2\r\n$6\r\nCLIENT\r\n$7\r\nGETNAME\r\n", "$-1\r\n", PS_V_IDLE, PS_R_NONE);
}

Test(resp, subscribe_family_monitor_readonly_watch_quit)
{
	check_never("*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nnews\r\n", PS_R_REDIS_SUBSCRIBE);
	check_never("*2\r\n$10\r\nPSUBSCRIBE\r\n$2\r\nn*\r\n", PS_R_REDIS_SUBSCRIBE);
	check_never("*2\r\n$10\r\nssubscribe\r\n$1\r\ns\r\n", PS_R_REDIS_SUBSCRIBE);
	check_never("*1\r\n$11\r\nUNSUBSCRIBE\r\n", PS_R_REDIS_SUBSCRIBE);
	check_never("SUBSCRIBE news\r\n", PS_R_REDIS_SUBSCRIBE);
	check_never("*1\r\n$7\r\nMONITOR\r\n", PS_R_REDIS_MONITOR);
	check_never("*1\r\n$8\r\nREADONLY\r\n", PS_R_REDIS_READONLY);
	check_never("*2\r\n$5\r\nWATCH\r\n$1\r\nk\r\n", PS_R_REDIS_WATCH);
	check_never("*1\r\n$4\r\nQUIT\r\n", PS_R_REDIS_QUIT);
	check_never("*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n", PS_R_REDIS_REPLICATION);
}

Test(resp, names_only_match_whole)
{
	/* AUTHX, SELECTED and long names that start like a binding command */
	check_every_split("*2\r\n$5\r\nAUTHX\r\n$1\r\na\r\n*2\r\n$8\r\nSELECTED\r\n$1\r\n1\r\n"
			  "*1\r\n$20\r\nSUBSCRIBEXXXXXXXXXXX\r\n",
			  "-ERR\r\n-ERR\r\n-ERR\r\n", PS_V_IDLE, PS_R_NONE);
	/* a key named AUTH is an argument, not a command */
	check_every_split("*2\r\n$3\r\nGET\r\n$4\r\nAUTH\r\n", "$-1\r\n", PS_V_IDLE, PS_R_NONE);
}

Test(resp, multi_exec_is_busy_until_the_exec_reply)
{
	t_out(&st, "*1\r\n$5\r\nMULTI\r\n");
	t_assert_busy(&st, PS_R_REDIS_MULTI);
	t_in(&st, "+OK\r\n");
	t_assert_busy(&st, PS_R_REDIS_MULTI);
	t_out(&st, SET_KV);
	t_in(&st, "+QUEUED\r\n");
	t_assert_busy(&st, PS_R_REDIS_MULTI);
	t_out(&st, "*1\r\n$4\r\nEXEC\r\n");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_in(&st, "*1\r\n+O");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_in(&st, "K\r\n");
	t_assert_idle(&st);
	/* all at once, and at every split */
	check_every_split("*1\r\n$5\r\nMULTI\r\n" SET_KV GET_K "*1\r\n$4\r\nEXEC\r\n",
			  "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n$5\r\nvalue\r\n", PS_V_IDLE, PS_R_NONE);
	check_every_split("MULTI\r\nINCR k\r\nDISCARD\r\n", "+OK\r\n+QUEUED\r\n+OK\r\n", PS_V_IDLE,
			  PS_R_NONE);
	/* an aborted transaction ends it too */
	check_every_split("MULTI\r\nFOO\r\nEXEC\r\n",
			  "+OK\r\n-ERR unknown command\r\n-EXECABORT Transaction discarded\r\n", PS_V_IDLE,
			  PS_R_NONE);
}

Test(resp, multi_without_exec_is_busy_at_close)
{
	t_out(&st, "MULTI\r\nSET k v\r\n");
	t_in(&st, "+OK\r\n+QUEUED\r\n");
	t_assert_busy(&st, PS_R_REDIS_MULTI);
}

Test(resp, empty_commands_get_no_reply)
{
	/* an empty inline line and *0 are not commands */
	check_every_split("\r\n*0\r\n*-1\r\nPING\r\n", "+PONG\r\n", PS_V_IDLE, PS_R_NONE);
	cr_assert_eq(ps_proto_exchanges(&st), 1);
}

Test(resp, reply_nobody_asked_for_is_never)
{
	t_out(&st, "PING\r\n");
	t_in(&st, "+PONG\r\n");
	t_in(&st, "+PONG\r\n");
	t_assert_never(&st, PS_R_UNSOLICITED);
}

Test(resp, malformed_is_never)
{
	static const char *const bad_replies[] = {
		"?abc\r\n", "$x\r\n", "$3\r\nabcd\r\n", "*-2\r\n", "$-2\r\n", "$?\r\n", "*1\n", "$\r\n",
	};
	for (size_t i = 0; i < sizeof bad_replies / sizeof bad_replies[0]; i++) {
		ps_proto_init(&st, PS_PROTOS_ALL);
		t_out(&st, "PING\r\n");
		t_in(&st, bad_replies[i]);
		t_assert_never(&st, PS_R_REDIS_PARSE);
	}
	static const char *const bad_cmds[] = {
		"*1\r\n+PING\r\n", "*1\r\n$4\r\nPINGX\r\n", "*1x\r\n", "*1\r\n$-1\r\n", "*1\r\n$4\nPING\r\n",
	};
	for (size_t i = 0; i < sizeof bad_cmds / sizeof bad_cmds[0]; i++) {
		ps_proto_init(&st, PS_PROTOS_ALL);
		t_out(&st, bad_cmds[i]);
		t_assert_never(&st, PS_R_REDIS_PARSE);
	}
}

Test(resp, big_value_in_pieces)
{
	static char value[100000];
	char head[64];
	memset(value, 'v', sizeof value);
	snprintf(head, sizeof head, "$%zu\r\n", sizeof value);
	t_out(&st, GET_K);
	t_in(&st, head);
	for (size_t off = 0; off < sizeof value; off += 1000) {
		t_in_n(&st, value + off, 1000);
		t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	}
	t_in(&st, "\r\n");
	t_assert_idle(&st);
	/* and a big argument sent in pieces */
	snprintf(head, sizeof head, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%zu\r\n", sizeof value);
	t_out(&st, head);
	t_out_n(&st, value, sizeof value / 2);
	t_assert_busy(&st, PS_R_REQUEST_PARTIAL);
	t_out_n(&st, value, sizeof value / 2);
	t_out(&st, "\r\n");
	t_assert_busy(&st, PS_R_RESPONSE_PENDING);
	t_in(&st, "+OK\r\n");
	t_assert_idle(&st);
}
