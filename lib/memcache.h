/* The memcached part of struct ps_proto_state (see proto.h for the
 * functions; memcache.c owns these fields): the command lines and data
 * blocks the program sends, and the replies it reads. */
#ifndef POOLSHIM_MEMCACHE_H
#define POOLSHIM_MEMCACHE_H

#include <stdint.h>

/* Bytes of a token kept: the longest word the tracker compares
 * ("CLIENT_ERROR") and the longest number it reads. */
#define PS_MC_TOKEN 12

struct ps_mc_tok {
	char text[PS_MC_TOKEN]; /* the token's first bytes */
	uint16_t len;           /* its whole length (saturates) */
};

struct ps_mc {
	/* requests */
	uint8_t os;            /* line, data block, its \r, its \n */
	uint8_t okind;         /* the command, from the line's first token */
	uint8_t oflags;        /* in a token, \r seen, last token "noreply", a q flag */
	uint16_t oti;          /* tokens completed on this line */
	struct ps_mc_tok otok;
	uint64_t oleft;        /* data-block length, then bytes still to come */
	/* replies */
	uint8_t is;
	uint8_t iword;         /* the reply, from the line's first token */
	uint8_t iflags;        /* in a token, \r seen, inside a multi-line reply */
	uint16_t iti;
	struct ps_mc_tok itok;
	uint64_t ileft;        /* data-block length, then bytes still to come */
	/* accounting */
	uint8_t quiet;         /* meta quiet mode in use: only mn/MN pairs count */
	uint32_t pending;      /* requests whose reply is not read in full */
	uint32_t mn_pending;   /* quiet mode: mn sent, MN not yet read */
	uint32_t since_mn;     /* quiet mode: requests sent after the last mn */
};

#endif
