/* A stand-in for libpoolshim.so that already calls the protocol tracker:
 * linked from the same poolcore and libhttp_parser.a with the same hiding
 * (lib/meson.build's http_parser_link_args, a `local: *` version script),
 * it exports one function that runs an HTTP exchange through the tracker.
 * Until the shim's I/O path calls the tracker, the shim does not pull the
 * parser in at all; this library shows what it will look like when it does. */
#include "proto.h"

#include <string.h>

/* 0 when the tracker, through our own http_parser, framed the exchange. */
__attribute__((visibility("default"))) int probe_http_exchange(void)
{
	static const char req[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
				   "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n";
	struct ps_proto_state st;
	ps_proto_init(&st, PS_PROTOS_DEFAULT);
	ps_proto_out(&st, req, strlen(req));
	if (ps_proto_verdict(&st) != PS_V_BUSY)
		return -1;
	ps_proto_in(&st, resp, strlen(resp));
	return ps_proto_kind(&st) == PS_PROTO_HTTP && ps_proto_verdict(&st) == PS_V_IDLE &&
			       ps_proto_exchanges(&st) == 2
		       ? 0
		       : -1;
}
