/* permessage-deflate (RFC 7692): offer parsing, and raw-deflate compress / bounded inflate with zlib. */
#ifndef RT_WS_DEFLATE_H
#define RT_WS_DEFLATE_H

#include <stddef.h>

/* Picks an acceptable offer from a Sec-WebSocket-Extensions header: 1 when one was accepted (we then answer
 * "permessage-deflate; server_no_context_takeover; client_no_context_takeover"), 0 when none. */
int ws_deflate_accept(const char *header, size_t len);
/* Compresses one whole message with no context (the same input always gives the same bytes). Returns malloc'd
 * bytes with `reserve` free bytes in front (for the frame header) and the trailing 00 00 ff ff removed. */
unsigned char *ws_deflate_message(const unsigned char *in, size_t len, size_t reserve, size_t *outlen);
/* Inflates one message; -1 on corrupt data, -2 when it would exceed max bytes. *out is malloc'd on success. */
int ws_inflate_message(const unsigned char *in, size_t len, size_t max, unsigned char **out, size_t *outlen);

#endif
