/* Engine.IO v4 / Socket.IO v5 packet parsing and JSON escaping: pure functions, no broker state (fuzzed by
 * tests/fuzz/fuzz_socketio.c). */
#ifndef RT_SIO_PACKET_H
#define RT_SIO_PACKET_H

#include <stddef.h>
#include <stdint.h>

/* Socket.IO packet types */
enum { SIO_CONNECT = 0, SIO_DISCONNECT = 1, SIO_EVENT = 2, SIO_ACK = 3, SIO_CONNECT_ERROR = 4, SIO_BINARY_EVENT = 5,
       SIO_BINARY_ACK = 6 };

#define SIO_MAX_ARGS 8
#define SIO_MAX_DEPTH 32

typedef struct sio_slice {
    const char *base;
    size_t len;
} sio_slice_t;

typedef struct sio_packet {
    int type;
    sio_slice_t nsp;   /* "/" when absent */
    int64_t ack_id;    /* -1 when none */
    sio_slice_t data;  /* the raw JSON payload, or empty */
    /* EVENT/ACK: the array's elements (raw JSON), at most SIO_MAX_ARGS */
    sio_slice_t args[SIO_MAX_ARGS];
    char arg_type[SIO_MAX_ARGS]; /* 's' 'n' 'o' 'a' 't' 'f' 'z' */
    size_t nargs;
} sio_packet_t;

/* Parses one Socket.IO packet (what follows an Engine.IO "4"). 0, or -1 with *why set (a static string). Binary
 * packets (5, 6) are refused: rtbroker carries text. */
int sio_parse(const char *p, size_t n, sio_packet_t *out, const char **why);

/* Validates one JSON value at p (strict, nesting bounded); its end, or NULL when invalid. *type as above. */
const char *sio_json_value(const char *p, const char *end, char *type, int depth);

/* Splits a JSON array into at most max elements (raw JSON, with their types); the count or -1 with *why. */
int sio_json_array(const char *base, size_t len, sio_slice_t *args, char *types, size_t max, const char **why);

/* Writes s as a JSON string (with quotes) into out (at least 6 * n + 2 bytes); returns the length. */
size_t sio_json_escape(char *out, const char *s, size_t n);

#endif
