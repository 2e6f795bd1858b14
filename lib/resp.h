/* The Redis part of struct ps_proto_state (see proto.h for the functions;
 * resp.c owns these fields): a command parser for what the program sends
 * and a reply framer for what it reads. */
#ifndef POOLSHIM_RESP_H
#define POOLSHIM_RESP_H

#include <stdbool.h>
#include <stdint.h>

/* Aggregate nesting the reply framer follows; deeper makes the connection
 * NEVER (Redis itself nests a few levels: EXEC of XREAD, COMMAND DOCS). */
#define PS_RESP_DEPTH 8
/* Bytes of an argument kept: the longest name the tracker compares. */
#define PS_RESP_ARG 14

struct ps_resp {
	/* commands the program sends */
	uint8_t cs;            /* parser state */
	uint8_t cmd;           /* the command being sent, once its name is complete */
	uint8_t arg_len;       /* bytes of the current argument in arg[] */
	uint8_t cflags;        /* number sign/digits seen, argument longer than arg[], MULTI open */
	uint32_t argc, argi;   /* arguments announced by *N; index of the current one */
	uint64_t cnum;         /* number being read, then bulk bytes still to come */
	char arg[PS_RESP_ARG]; /* upper-cased start of the current argument */
	/* replies the program reads */
	uint8_t rs;            /* framer state */
	uint8_t rtype;         /* type byte of the element being read */
	uint8_t depth;         /* open aggregates */
	uint8_t rflags;        /* number sign/digits; top level is a push */
	uint8_t attr;          /* bit i: level i is an attribute map (not an element) */
	uint64_t rnum;         /* number being read, then bulk bytes still to come */
	uint32_t left[PS_RESP_DEPTH]; /* elements still due in each open aggregate */
	uint32_t pending;      /* commands sent whose reply is not read in full */
};

#endif
