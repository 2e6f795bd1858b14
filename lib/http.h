/* The HTTP/1.x part of struct ps_proto_state (see proto.h for the
 * functions; http.c owns these fields).  Two http_parser instances follow the
 * requests the program sends and the responses it reads. */
#ifndef POOLSHIM_HTTP_H
#define POOLSHIM_HTTP_H

#include <stdbool.h>
#include <stdint.h>

/* The parser's functions are declared hidden: the references in http.c then
 * bind to the copy linked into this object at link time, and the linker
 * makes that copy hidden too (the most constraining visibility wins), so
 * the shim neither exports the parser nor calls a program's own
 * http_parser_* through the PLT.  lib/meson.build hides the rest of the
 * archive's symbols. */
#pragma GCC visibility push(hidden)
#include <http_parser.h>
#pragma GCC visibility pop

/* Requests sent and not yet answered that the tracker follows (pipelining);
 * one more makes the connection NEVER. */
#define PS_HTTP_PIPELINE 8

/* Header names of interest, matched incrementally: a name or value may be
 * split across writes (or reads) at any byte. */
struct ps_http_hdr {
	uint8_t phase;  /* none, in a field name, in a value, past the headers */
	uint8_t names;  /* bit per candidate name still matching */
	uint8_t pos;    /* bytes of the field name seen (saturates) */
	uint8_t which;  /* the header whose value is being read */
	uint8_t vstate; /* value scanner state */
	uint8_t vpos;
	uint32_t vnum;  /* Keep-Alive: the timeout being read */
};

struct ps_http {
	http_parser req;  /* HTTP_REQUEST: what the program sends */
	http_parser resp; /* HTTP_RESPONSE: what the program reads */
	struct ps_http_hdr reqh, resph;
	uint8_t methods[PS_HTTP_PIPELINE]; /* of requests awaiting a response, ring */
	uint8_t head, count;
	bool req_open;    /* a request is partly through its parser */
	bool resp_open;   /* a response likewise */
};

#endif
