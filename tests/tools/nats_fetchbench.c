/*
 * nats_fetchbench — the floor of C3 (issue 18): how fast a plain nats.c client reads one topic's
 * retained messages from JetStream (nats-server 2.9), by each means it offers, without a broker.
 *
 *   nats_fetchbench URL STREAM PREFIX FIRST TOPICS EXPECT METHOD
 *       reads every message of PREFIX.t<i> for i in FIRST .. FIRST+TOPICS-1 from SEQ 1, one topic
 *       after the other (each topic read once: nothing of it is warm), and prints the p50 / p99 /
 *       max milliseconds to have EXPECT messages of a topic. METHOD:
 *         ordered  an ordered push consumer filtered on the topic (js_SubscribeSync, Ordered)
 *         pull     a pull consumer filtered on the topic, one fetch of EXPECT (js_PullSubscribe)
 *         direct   js_DirectGetMsg with NextBySubject, one request per message
 *         raw      a consumer create request, one no-wait pull of its num_pending on an inbox,
 *                  and the delete sent without waiting for its answer
 *         last     one direct get LastBySubject (not a read of the topic: the head a resume can check first)
 *
 * Exit status: 0 ok, 1 error (on stderr), 2 usage.
 */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int read_ordered(jsCtx *js, const char *stream, const char *subject, int expect)
{
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = 1;
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    if (js_SubscribeSync(&sub, js, subject, NULL, &so, &jerr) != NATS_OK)
        return -1;
    int got = 0;
    natsMsg *m = NULL;
    while (got < expect && natsSubscription_NextMsg(&m, sub, 5000) == NATS_OK) {
        got++;
        natsMsg_Destroy(m);
    }
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    return got;
}

static int read_pull(jsCtx *js, const char *stream, const char *subject, int expect)
{
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = 1;
    so.Config.AckPolicy = js_AckNone;
    so.Config.MemoryStorage = true;
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    if (js_PullSubscribe(&sub, js, subject, NULL, NULL, &so, &jerr) != NATS_OK)
        return -1;
    int got = 0;
    while (got < expect) {
        natsMsgList list = {0};
        jsFetchRequest fr;
        jsFetchRequest_Init(&fr);
        fr.Batch = expect - got;
        fr.Expires = 5000 * 1000000LL;
        if (natsSubscription_FetchRequest(&list, sub, &fr) != NATS_OK)
            break;
        got += list.Count;
        natsMsgList_Destroy(&list);
    }
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    return got;
}

static int read_direct(jsCtx *js, const char *stream, const char *subject, int expect)
{
    uint64_t next = 1;
    int got = 0;
    while (got < expect) {
        jsDirectGetMsgOptions o;
        jsDirectGetMsgOptions_Init(&o);
        o.Sequence = next;
        o.NextBySubject = subject;
        natsMsg *m = NULL;
        if (js_DirectGetMsg(&m, js, stream, NULL, &o) != NATS_OK)
            break;
        next = natsMsg_GetSequence(m) + 1;
        got++;
        natsMsg_Destroy(m);
    }
    return got;
}

/* Not a read of the topic: the one direct get by LastBySubject a resume could start with (its head). */
static int read_last(jsCtx *js, const char *stream, const char *subject, int expect)
{
    jsDirectGetMsgOptions o;
    jsDirectGetMsgOptions_Init(&o);
    o.LastBySubject = subject;
    natsMsg *m = NULL;
    if (js_DirectGetMsg(&m, js, stream, NULL, &o) != NATS_OK)
        return -1;
    natsMsg_Destroy(m);
    return expect;
}

static int read_raw(natsConnection *nc, const char *stream, const char *subject, int expect)
{
    char req[1024], api[512], name[128];
    snprintf(api, sizeof(api), "$JS.API.CONSUMER.CREATE.%s", stream);
    snprintf(req, sizeof(req),
             "{\"stream_name\":\"%s\",\"config\":{\"deliver_policy\":\"by_start_sequence\",\"opt_start_seq\":1,"
             "\"ack_policy\":\"none\",\"filter_subject\":\"%s\",\"mem_storage\":true,\"inactive_threshold\":10000000000}}",
             stream, subject);
    natsMsg *reply = NULL;
    if (natsConnection_RequestString(&reply, nc, api, req, 5000) != NATS_OK)
        return -1;
    const char *d = natsMsg_GetData(reply), *p = strstr(d, "\"name\":\""), *q = strstr(d, "\"num_pending\":");
    if (p == NULL || q == NULL) {
        natsMsg_Destroy(reply);
        return -1;
    }
    p += 8;
    size_t n = strcspn(p, "\"");
    snprintf(name, sizeof(name), "%.*s", (int)n, p);
    long pending = strtol(q + 14, NULL, 10);
    if (pending > expect) /* what a resume asks for */
        pending = expect;
    natsMsg_Destroy(reply);
    char inbox[64];
    natsInbox *ib = NULL;
    natsInbox_Create(&ib);
    snprintf(inbox, sizeof(inbox), "%s", (const char *)ib);
    natsInbox_Destroy(ib);
    natsSubscription *sub = NULL;
    natsConnection_SubscribeSync(&sub, nc, inbox);
    snprintf(api, sizeof(api), "$JS.API.CONSUMER.MSG.NEXT.%s.%s", stream, name);
    snprintf(req, sizeof(req), "{\"batch\":%ld,\"no_wait\":true}", pending > 0 ? pending : 1);
    int got = 0;
    if (pending > 0 && natsConnection_PublishRequestString(nc, api, inbox, req) == NATS_OK) {
        natsMsg *m = NULL;
        while (got < pending && natsSubscription_NextMsg(&m, sub, 5000) == NATS_OK) {
            if (natsMsg_GetDataLength(m) > 0 || natsMsg_GetReply(m) != NULL)
                got++;
            natsMsg_Destroy(m);
        }
    }
    natsSubscription_Destroy(sub);
    snprintf(api, sizeof(api), "$JS.API.CONSUMER.DELETE.%s.%s", stream, name);
    natsConnection_PublishString(nc, api, ""); /* its answer is not waited for */
    return got;
}

int main(int argc, char **argv)
{
    if (argc < 8) {
        fprintf(stderr, "usage: nats_fetchbench URL STREAM PREFIX FIRST TOPICS EXPECT ordered|pull|direct|raw|last\n");
        return 2;
    }
    const char *url = argv[1], *stream = argv[2], *prefix = argv[3], *method = argv[7];
    int first = atoi(argv[4]), topics = atoi(argv[5]), expect = atoi(argv[6]);
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    if (natsConnection_ConnectTo(&nc, url) != NATS_OK || natsConnection_JetStream(&js, nc, NULL) != NATS_OK) {
        fprintf(stderr, "nats_fetchbench: cannot connect to %s\n", url);
        return 1;
    }
    double *ms = calloc((size_t)topics, sizeof(*ms));
    int rc = 0;
    for (int i = 0; i < topics && rc == 0; i++) {
        char subject[256];
        snprintf(subject, sizeof(subject), "%s.t%d", prefix, first + i);
        int64_t t0 = nats_NowInNanoSeconds();
        int got = !strcmp(method, "ordered") ? read_ordered(js, stream, subject, expect)
                  : !strcmp(method, "pull")  ? read_pull(js, stream, subject, expect)
                  : !strcmp(method, "direct") ? read_direct(js, stream, subject, expect)
                  : !strcmp(method, "raw")   ? read_raw(nc, stream, subject, expect)
                  : !strcmp(method, "last")  ? read_last(js, stream, subject, expect)
                                             : -2;
        ms[i] = (double)(nats_NowInNanoSeconds() - t0) / 1e6;
        if (got == -2)
            rc = 2, fprintf(stderr, "nats_fetchbench: unknown method %s\n", method);
        else if (got != expect)
            rc = 1, fprintf(stderr, "nats_fetchbench: %s: %d messages, not %d\n", subject, got, expect);
    }
    if (rc == 0) {
        qsort(ms, (size_t)topics, sizeof(*ms), cmp_d);
        int i99 = (int)(topics * 0.99);
        printf("%s topics=%d expect=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n", method, topics, expect, ms[topics / 2],
               ms[i99 < topics ? i99 : topics - 1], ms[topics - 1]);
    }
    free(ms);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    return rc;
}
