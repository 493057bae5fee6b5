/* The Socket.IO plugin's packet parser (plugins/socketio/sio_packet.c): any bytes as a Socket.IO packet (what
 * follows an Engine.IO "4"), and the same bytes split at 0x1e as a polling payload. A parsed packet's slices lie
 * inside the input, its payload is one valid JSON value, an EVENT's first argument is its name; every JSON string
 * the plugin writes back (sio_json_escape) scans as one JSON string. Built from the plugin's source file, so that
 * the Makefile's fuzz library stays the broker's and the WebSocket plugin's. */
#include "../../plugins/socketio/sio_packet.c"
#include "fuzz.h"

static int inside(sio_slice_t s, const char *p, size_t n) { return s.len == 0 || (s.base >= p && s.base + s.len <= p + n); }

static void check_packet(const char *p, size_t n)
{
    sio_packet_t pk;
    const char *why = NULL;
    if (sio_parse(p, n, &pk, &why) != 0) {
        FUZZ_ASSERT(why != NULL);
        return;
    }
    FUZZ_ASSERT(pk.type >= SIO_CONNECT && pk.type <= SIO_CONNECT_ERROR);
    FUZZ_ASSERT(pk.nsp.len >= 1 && pk.nsp.base[0] == '/');
    FUZZ_ASSERT(inside(pk.data, p, n) && pk.nargs <= SIO_MAX_ARGS);
    if (pk.data.len) {
        char t;
        const char *end = sio_json_value(pk.data.base, pk.data.base + pk.data.len, &t, 0);
        FUZZ_ASSERT(end != NULL);
    }
    if (pk.type == SIO_EVENT)
        FUZZ_ASSERT(pk.nargs >= 1 && pk.arg_type[0] == 's');
    for (size_t i = 0; i < pk.nargs; i++) {
        FUZZ_ASSERT(inside(pk.args[i], p, n) && pk.args[i].len > 0);
        char t;
        FUZZ_ASSERT(sio_json_value(pk.args[i].base, pk.args[i].base + pk.args[i].len, &t, 1) ==
                    pk.args[i].base + pk.args[i].len);
        FUZZ_ASSERT(t == pk.arg_type[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    check_packet(p, size);
    for (size_t i = 0; i < size;) { /* a polling payload: packets separated by 0x1e, each "4" + a Socket.IO packet */
        size_t j = i;
        while (j < size && p[j] != '\x1e')
            j++;
        if (j > i && p[i] == '4')
            check_packet(p + i + 1, j - i - 1);
        i = j + 1;
    }
    /* the array splitter on its own, into heap arrays of exactly the bound, so that ASan sees one element too many */
    sio_slice_t *args = malloc(SIO_MAX_ARGS * sizeof(*args));
    char *types = malloc(SIO_MAX_ARGS);
    const char *why;
    FUZZ_ASSERT(args != NULL && types != NULL);
    int na = sio_json_array(p, size, args, types, SIO_MAX_ARGS, &why);
    FUZZ_ASSERT(na <= SIO_MAX_ARGS);
    for (int i = 0; i < na; i++)
        FUZZ_ASSERT(inside(args[i], p, size));
    free(args);
    free(types);
    char *esc = malloc(6 * size + 2), t;
    FUZZ_ASSERT(esc != NULL);
    size_t el = sio_json_escape(esc, p, size);
    FUZZ_ASSERT(el <= 6 * size + 2 && sio_json_value(esc, esc + el, &t, 0) == esc + el && t == 's');
    free(esc);
    return 0;
}
