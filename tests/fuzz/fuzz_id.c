/* Ids and cursors (EPOCH:SEQ, broker/topic.c) as they arrive in requests (broker/http.c: path, query,
 * Last-Event-ID; auth.c: where a token is taken from, a cookie's Origin) and as replay reads them (broker/history.c).
 * Input: one id line, then a request: "PATH?QUERY\nName: value\n...". */
#include "auth.h"
#include "config.h"
#include "fuzz.h"
#include "fake_req.h"
#include "history.h"
#include "http.h"
#include "message.h"

static rt_history_t *hist;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char err[512];
    rt_log_level = -1;
    FUZZ_ASSERT(rt_config_load(NULL, err, sizeof(err)) == 0);
    FUZZ_ASSERT(rt_config_override("http.allowed_origins", "https://a.example,http://b.example:8080", err, sizeof(err)) == 0);
    FUZZ_ASSERT(rt_auth_init(err, sizeof(err)) == 0);
    /* a history in epoch e1: SEQ 1..40 over three topics, 8 retained per topic, so that early ids have gaps */
    static const char *const topics[] = {"chat.a", "chat.b", "news"};
    hist = rt_history_new();
    rt_history_configure(hist, 8, 3600 * 1000, SIZE_MAX, SIZE_MAX);
    for (uint64_t seq = 1; seq <= 40; seq++) {
        rt_msg_t *m = rt_msg_new(rt_cstr(topics[seq % 3]), rt_str(NULL, 0), rt_str(NULL, 0), RT_STRLIT("x"));
        rt_msg_set_id(m, RT_STRLIT("e1"), seq);
        rt_history_add(hist, m);
        rt_msg_unref(m);
    }
    return 0;
}

static void check_id(rt_str_t s)
{
    rt_id_t id, again;
    if (rt_id_parse(s, &id) != RT_OK)
        return;
    FUZZ_ASSERT(id.epoch.len >= 1 && id.epoch.len <= RT_EPOCH_MAX);
    char buf[RT_ID_MAX + 1];
    size_t n = rt_id_format(buf, id.epoch, id.seq);
    FUZZ_ASSERT(n <= RT_ID_MAX && n <= s.len);
    FUZZ_ASSERT(rt_id_parse(rt_str(buf, n), &again) == RT_OK);
    FUZZ_ASSERT(rt_str_eq(again.epoch, id.epoch) && again.seq == id.seq);
}

static void replay(rt_replay_t *r)
{
    rt_history_replay(hist, RT_STRLIT("e1"), 0, r);
    for (size_t i = 0; i < r->count; i++) {
        FUZZ_ASSERT(i == 0 || r->msgs[i - 1]->seq < r->msgs[i]->seq);
        if (r->has_since && !r->gap)
            FUZZ_ASSERT(r->msgs[i]->seq > r->since.seq);
        if (r->has_before)
            FUZZ_ASSERT(r->msgs[i]->seq < r->before);
    }
    FUZZ_ASSERT(r->max == 0 || r->count <= r->max);
    rt_replay_release(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    rt_str_t line;
    if (!fuzz_line(data, size, &pos, &line))
        return 0;
    check_id(line);

    h2o_req_t req;
    fake_req_init(&req, data + pos, size - (pos < size ? pos : size));
    rt_str_t path = rt_req_path(&req), since = rt_req_since(&req), topics[4], v;
    (void)path;
    rt_origin_allowed(&req);
    rt_ident_t *id = NULL;
    const char *why = NULL;
    if (rt_auth_verify(&req, &id, &why) != RT_OK) /* no key is configured: any token is refused, with a reason */
        FUZZ_ASSERT(id == NULL && why != NULL && why[0]);
    else
        FUZZ_ASSERT(id == NULL && (why == NULL || why[0])); /* no token, or an ignored cookie with its reason */
    rt_ident_free(id);
    int n = rt_req_topics(&req, topics, 4);
    FUZZ_ASSERT(n == RT_ETOPIC || n == RT_ETOOMANY || (n >= 1 && n <= 4));
    check_id(since);
    for (int i = 0; i < n; i++)
        FUZZ_ASSERT(rt_topic_check(topics[i], 1, NULL) == RT_OK);

    rt_replay_t r;
    memset(&r, 0, sizeof(r));
    r.patterns = topics;
    r.npatterns = n > 0 ? (size_t)n : 0;
    if (rt_req_query(&req, "limit", 0, &v) && v.len)
        r.max = (size_t)(unsigned char)v.base[0] % 8;
    if (since.len && rt_id_parse(since, &r.since) == RT_OK) {
        r.has_since = 1;
        replay(&r);
    }
    rt_id_t before;
    if (rt_req_query(&req, "before", 0, &v) && rt_id_parse(v, &before) == RT_OK) {
        memset(&r.since, 0, sizeof(r.since));
        r.has_since = 0, r.has_before = 1, r.before = before.seq;
        replay(&r);
    }
    fake_req_free(&req);
    return 0;
}
