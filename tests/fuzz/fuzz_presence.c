/* Presence entries of the NATS key-value bucket as any node, or any client that can write the bucket, leaves them
 * (broker/presence_nats.c reading them, presence.c applying them). Input: lines "KEY VALUE", e.g.
 * `m.node1.chat.a {"v":3,"m":[["c-1","alice",{"x":1}]]}` or `n.node1 {"t":1}`. Every join and leave that results
 * must be about an exact topic and be valid JSON with the member's client id, and the topic's snapshot must stay
 * valid JSON; after each input the nodes expire and every member they brought leaves. */
#include "fuzz.h"
#include "hub.h"
#include "message.h"
#include "presence.h"
#include "presence_nats.h"
#include "text.h"
#include "topic.h"

static rt_worker_t worker; /* only its inbox: the join and leave messages presence.c broadcasts */
static size_t members;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    rt_log_level = -1;
    char err[256];
    FUZZ_ASSERT(rt_presence_init(err, sizeof(err)) == 0);
    pthread_mutex_init(&worker.inbox_lock, NULL);
    worker.wake_pending = 1; /* never woken: drained here */
    rt_workers = &worker;
    rt_nworkers = 1;
    rt_hub_set_ready();
    return 0;
}

static void drain(void)
{
    rt_json_field_t f[8];
    for (size_t i = 0; i < worker.inbox_len; i++) {
        rt_msg_t *m = worker.inbox[i];
        int join = (m->flags & RT_MSG_JOIN) != 0;
        FUZZ_ASSERT(join != ((m->flags & RT_MSG_LEAVE) != 0) && (m->flags & RT_MSG_EPHEMERAL));
        FUZZ_ASSERT(rt_topic_check(m->topic, 0, NULL) == RT_OK);
        FUZZ_ASSERT(rt_str_eqc(m->event, join ? "rt.join" : "rt.leave"));
        rt_str_t env = rt_msg_envelope(m);
        int n = rt_json_object(env, f, 8), client = 0;
        FUZZ_ASSERT(n == 5);
        for (int k = 0; k < n; k++)
            client |= rt_str_eqc(f[k].key, "client") && f[k].type == 's';
        FUZZ_ASSERT(client);
        FUZZ_ASSERT(join || members > 0);
        members += join ? 1 : (size_t)-1;
        rt_buf_t snap = {0};
        rt_presence_snapshot(m->topic, &snap);
        FUZZ_ASSERT(rt_json_object((rt_str_t){snap.base, snap.len}, f, 8) == 4);
        rt_buf_free(&snap);
        rt_msg_unref(m);
    }
    worker.inbox_len = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    rt_str_t line;
    uint64_t last = rt_now_ms();
    while (fuzz_line(data, size, &pos, &line)) {
        const char *sp = memchr(line.base, ' ', line.len);
        size_t klen = sp ? (size_t)(sp - line.base) : line.len;
        char key[300];
        if (klen >= sizeof(key) || memchr(line.base, 0, klen))
            continue;
        memcpy(key, line.base, klen);
        key[klen] = '\0';
        rt_str_t value = sp ? (rt_str_t){sp + 1, line.len - klen - 1} : (rt_str_t){NULL, 0};
        char *copy = malloc(value.len + 1); /* exactly the value, so that ASan sees a read past it */
        FUZZ_ASSERT(copy != NULL);
        if (value.len)
            memcpy(copy, value.base, value.len);
        rt_presence_nats_entry(key, (rt_str_t){copy, value.len}, 0);
        free(copy);
        last = rt_now_ms();
        drain();
    }
    while (rt_now_ms() <= last)
        ; /* every node was seen at `last`: one ms later all of them expire */
    rt_presence_expire_nodes(0);
    drain();
    FUZZ_ASSERT(members == 0);
    return 0;
}
