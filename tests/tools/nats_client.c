/*
 * nats_client — a tiny NATS / JetStream client for rtbroker's integration tests (nats.c 3.4).
 *
 *   nats_client pub  URL SUBJECT DATA [EVENT [CONTENT_TYPE [MSG_ID]]]
 *       JetStream publish (js_PublishMsg) with headers Rt-Event / Content-Type / Nats-Msg-Id
 *       (an empty or "-" argument omits that header). Prints "seq=N stream=NAME duplicate=0|1".
 *   nats_client cpub URL SUBJECT DATA [EVENT [CONTENT_TYPE]]
 *       the same as a core NATS publish (natsConnection_PublishMsg + flush); prints "ok".
 *   nats_client sub  URL SUBJECT N TIMEOUT_MS
 *       core subscription; "READY" on stderr once the server has it; then one line per message:
 *       DATA<TAB>EVENT<TAB>CONTENT_TYPE (EVENT / CONTENT_TYPE "-" when the header is absent).
 *       Exits 0 after N messages, 3 when TIMEOUT_MS passes first.
 *   nats_client delstream URL NAME
 *   nats_client addstream URL NAME SUBJECT MAX_MSGS_PER_SUBJECT [REPLICAS [MAX_AGE_S [DUPLICATE_WINDOW_S [REPUBLISH_TO [MAX_MSG_SIZE [ALLOW_DIRECT]]]]]]
 *       REPUBLISH_TO (e.g. rt_live.>, "-" for none): the stream re-publishes SUBJECT there and allows direct gets, as the broker's does
 *       (ALLOW_DIRECT 0: it does not; MAX_MSG_SIZE "-": the server's default)
 *   nats_client fill URL PREFIX TOPICS N SIZE
 *       publishes N messages of SIZE bytes to the stream, round-robin on PREFIX.t0 .. PREFIX.t<TOPICS-1>,
 *       asynchronously (benchmarks: a stream with a large retained history); prints "filled N"
 *   nats_client get URL STREAM SEQ
 *       prints "seq=N time_ns=T subject=S event=E" then the data on the next line
 *   nats_client info URL NAME
 *       prints key=value lines: subjects, max_msgs_per_subject, max_age_ns, duplicates_ns,
 *       replicas, storage, msgs, first_seq, last_seq, created, leader (cluster), republish (its destination, "-"),
 *       allow_direct
 *
 * URL may be a comma-separated list. Exit status: 0 ok, 1 error (on stderr), 2 usage, 3 timeout.
 */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr,
            "usage: nats_client pub URL SUBJECT DATA [EVENT [CONTENT_TYPE [MSG_ID]]]\n"
            "       nats_client cpub URL SUBJECT DATA [EVENT [CONTENT_TYPE]]\n"
            "       nats_client sub URL SUBJECT N TIMEOUT_MS\n"
            "       nats_client delstream URL NAME\n"
            "       nats_client addstream URL NAME SUBJECT MAX_MSGS_PER_SUBJECT [REPLICAS [MAX_AGE_S [DUPLICATE_WINDOW_S "
            "[REPUBLISH_TO [MAX_MSG_SIZE [ALLOW_DIRECT]]]]]]\n"
            "       nats_client fill URL PREFIX TOPICS N SIZE\n"
            "       nats_client get URL STREAM SEQ\n"
            "       nats_client info URL NAME\n");
    return 2;
}

static int fail(const char *what, natsStatus s, jsErrCode jerr)
{
    fprintf(stderr, "nats_client: %s: %s (status %d, jetstream error %d)", what, natsStatus_GetText(s), (int)s,
            (int)jerr);
    const char *last = nats_GetLastError(NULL);
    if (last && *last) fprintf(stderr, ": %s", last);
    fputc('\n', stderr);
    return 1;
}

static int present(const char *s) { return s && *s && strcmp(s, "-") != 0; }

static natsStatus connect_to(natsConnection **nc, const char *url)
{
    natsOptions *o = NULL;
    const char *servers[16];
    int n = 0;
    char *copy = strdup(url), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok && n < 16; tok = strtok_r(NULL, ",", &save)) servers[n++] = tok;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK) s = natsOptions_SetServers(o, servers, n);
    if (s == NATS_OK) s = natsOptions_SetTimeout(o, 5000);
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(o, 0);
    if (s == NATS_OK) s = natsOptions_SetName(o, "rtbroker-tests-nats_client");
    if (s == NATS_OK) s = natsConnection_Connect(nc, o);
    natsOptions_Destroy(o);
    free(copy);
    return s;
}

static natsStatus make_msg(natsMsg **m, const char *subj, const char *data, const char *event, const char *ctype,
                           const char *msgid)
{
    natsStatus s = natsMsg_Create(m, subj, NULL, data, (int)strlen(data));
    if (s == NATS_OK && present(event)) s = natsMsgHeader_Set(*m, "Rt-Event", event);
    if (s == NATS_OK && present(ctype)) s = natsMsgHeader_Set(*m, "Content-Type", ctype);
    if (s == NATS_OK && present(msgid)) s = natsMsgHeader_Set(*m, "Nats-Msg-Id", msgid);
    return s;
}

int main(int argc, char **argv)
{
    if (argc < 4) return usage();
    const char *cmd = argv[1], *url = argv[2];
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsErrCode jerr = 0;
    natsStatus s;
    int rc = 0;

    if (strcmp(cmd, "pub") && strcmp(cmd, "cpub") && strcmp(cmd, "sub") && strcmp(cmd, "delstream") &&
        strcmp(cmd, "addstream") && strcmp(cmd, "info") && strcmp(cmd, "get") && strcmp(cmd, "fill"))
        return usage();
    if (!strcmp(cmd, "fill") && argc < 7) return usage();
    if ((!strcmp(cmd, "pub") || !strcmp(cmd, "cpub")) && argc < 5) return usage();
    if (!strcmp(cmd, "sub") && argc < 6) return usage();
    if (!strcmp(cmd, "addstream") && argc < 6) return usage();
    if (!strcmp(cmd, "get") && argc < 5) return usage();

    s = connect_to(&nc, url);
    if (s != NATS_OK) return fail("connect", s, 0);
    if (strcmp(cmd, "sub") && strcmp(cmd, "cpub")) {
        jsOptions jo;
        jsOptions_Init(&jo);
        jo.Wait = 10000;
        s = natsConnection_JetStream(&js, nc, &jo);
        if (s != NATS_OK) { rc = fail("jetstream context", s, 0); goto out; }
    }

    if (!strcmp(cmd, "pub") || !strcmp(cmd, "cpub")) {
        natsMsg *m = NULL;
        const char *event = argc > 5 ? argv[5] : NULL, *ctype = argc > 6 ? argv[6] : NULL;
        const char *msgid = (!strcmp(cmd, "pub") && argc > 7) ? argv[7] : NULL;
        s = make_msg(&m, argv[3], argv[4], event, ctype, msgid);
        if (s != NATS_OK) { rc = fail("message", s, 0); goto out; }
        if (!strcmp(cmd, "pub")) {
            jsPubAck *pa = NULL;
            jsPubOptions po;
            jsPubOptions_Init(&po);
            po.MaxWait = 10000;
            s = js_PublishMsg(&pa, js, m, &po, &jerr);
            if (s != NATS_OK) rc = fail("js_PublishMsg", s, jerr);
            else printf("seq=%llu stream=%s duplicate=%d\n", (unsigned long long)pa->Sequence, pa->Stream,
                        pa->Duplicate ? 1 : 0);
            jsPubAck_Destroy(pa);
        } else {
            s = natsConnection_PublishMsg(nc, m);
            if (s == NATS_OK) s = natsConnection_FlushTimeout(nc, 5000);
            if (s != NATS_OK) rc = fail("publish", s, 0);
            else printf("ok\n");
        }
        natsMsg_Destroy(m);
    } else if (!strcmp(cmd, "sub")) {
        natsSubscription *sub = NULL;
        long n = strtol(argv[4], NULL, 10), timeout = strtol(argv[5], NULL, 10);
        s = natsConnection_SubscribeSync(&sub, nc, argv[3]);
        if (s == NATS_OK) s = natsConnection_FlushTimeout(nc, 5000);
        if (s != NATS_OK) { rc = fail("subscribe", s, 0); goto out; }
        fprintf(stderr, "READY\n");
        fflush(stderr);
        int64_t deadline = nats_Now() + timeout;
        long got = 0;
        while (got < n) {
            int64_t left = deadline - nats_Now();
            if (left <= 0) { rc = 3; break; }
            natsMsg *m = NULL;
            s = natsSubscription_NextMsg(&m, sub, left);
            if (s == NATS_TIMEOUT) { rc = 3; break; }
            if (s != NATS_OK) { rc = fail("next message", s, 0); break; }
            const char *ev = NULL, *ct = NULL;
            if (natsMsgHeader_Get(m, "Rt-Event", &ev) != NATS_OK || !ev) ev = "-";
            if (natsMsgHeader_Get(m, "Content-Type", &ct) != NATS_OK || !ct) ct = "-";
            fwrite(natsMsg_GetData(m), 1, (size_t)natsMsg_GetDataLength(m), stdout);
            printf("\t%s\t%s\n", ev, ct);
            fflush(stdout);
            natsMsg_Destroy(m);
            got++;
        }
        if (rc == 3) fprintf(stderr, "nats_client: timeout after %ld of %ld messages\n", got, n);
        natsSubscription_Destroy(sub);
    } else if (!strcmp(cmd, "delstream")) {
        s = js_DeleteStream(js, argv[3], NULL, &jerr);
        if (s != NATS_OK) rc = fail("js_DeleteStream", s, jerr);
        else printf("deleted %s\n", argv[3]);
    } else if (!strcmp(cmd, "addstream")) {
        jsStreamConfig sc;
        jsStreamInfo *si = NULL;
        const char *subjects[1] = {argv[4]};
        jsStreamConfig_Init(&sc);
        sc.Name = argv[3];
        sc.Subjects = subjects;
        sc.SubjectsLen = 1;
        sc.Storage = js_FileStorage;
        sc.MaxMsgsPerSubject = strtoll(argv[5], NULL, 10);
        sc.Replicas = argc > 6 ? strtoll(argv[6], NULL, 10) : 1;
        if (argc > 7) sc.MaxAge = strtoll(argv[7], NULL, 10) * 1000000000LL;
        if (argc > 8) sc.Duplicates = strtoll(argv[8], NULL, 10) * 1000000000LL;
        jsRePublish rp;
        jsRePublish_Init(&rp);
        if (argc > 9 && strcmp(argv[9], "-") != 0) {
            rp.Source = argv[4];
            rp.Destination = argv[9];
            sc.RePublish = &rp;
            sc.AllowDirect = !(argc > 11 && strcmp(argv[11], "0") == 0);
        }
        if (argc > 10 && strcmp(argv[10], "-") != 0) sc.MaxMsgSize = (int32_t)strtol(argv[10], NULL, 10);
        s = js_AddStream(&si, js, &sc, NULL, &jerr);
        if (s != NATS_OK) rc = fail("js_AddStream", s, jerr);
        else printf("created %s\n", argv[3]);
        jsStreamInfo_Destroy(si);
    } else if (!strcmp(cmd, "fill")) {
        long topics = strtol(argv[4], NULL, 10), n = strtol(argv[5], NULL, 10), size = strtol(argv[6], NULL, 10);
        char subject[256], *data = malloc(size > 0 ? (size_t)size : 1);
        memset(data, 'x', size > 0 ? (size_t)size : 1);
        jsPubOptions po;
        jsPubOptions_Init(&po);
        for (long i = 0; i < n && s == NATS_OK; i++) {
            snprintf(subject, sizeof(subject), "%s.t%ld", argv[3], topics > 0 ? i % topics : 0);
            s = js_PublishAsync(js, subject, data, (int)size, &po);
            if (i % 10000 == 9999 && s == NATS_OK) s = js_PublishAsyncComplete(js, NULL);
        }
        if (s == NATS_OK) s = js_PublishAsyncComplete(js, NULL);
        free(data);
        if (s != NATS_OK) rc = fail("js_PublishAsync", s, 0);
        else printf("filled %ld\n", n);
    } else if (!strcmp(cmd, "get")) {
        natsMsg *m = NULL;
        s = js_GetMsg(&m, js, argv[3], strtoull(argv[4], NULL, 10), NULL, &jerr);
        if (s != NATS_OK) { rc = fail("js_GetMsg", s, jerr); goto out; }
        const char *ev = NULL;
        if (natsMsgHeader_Get(m, "Rt-Event", &ev) != NATS_OK || !ev) ev = "-";
        printf("seq=%llu time_ns=%lld subject=%s event=%s\n", (unsigned long long)natsMsg_GetSequence(m),
               (long long)natsMsg_GetTime(m), natsMsg_GetSubject(m), ev);
        fwrite(natsMsg_GetData(m), 1, (size_t)natsMsg_GetDataLength(m), stdout);
        printf("\n");
        natsMsg_Destroy(m);
    } else { /* info */
        jsStreamInfo *si = NULL;
        s = js_GetStreamInfo(&si, js, argv[3], NULL, &jerr);
        if (s != NATS_OK) { rc = fail("js_GetStreamInfo", s, jerr); goto out; }
        jsStreamConfig *c = si->Config;
        printf("name=%s\n", c->Name ? c->Name : "");
        printf("subjects=");
        for (int i = 0; i < c->SubjectsLen; i++) printf("%s%s", i ? "," : "", c->Subjects[i]);
        printf("\n");
        printf("max_msgs_per_subject=%lld\n", (long long)c->MaxMsgsPerSubject);
        printf("max_msgs=%lld\n", (long long)c->MaxMsgs);
        printf("max_age_ns=%lld\n", (long long)c->MaxAge);
        printf("duplicates_ns=%lld\n", (long long)c->Duplicates);
        printf("replicas=%lld\n", (long long)c->Replicas);
        printf("storage=%s\n", c->Storage == js_FileStorage ? "file" : "memory");
        printf("msgs=%llu\n", (unsigned long long)si->State.Msgs);
        printf("first_seq=%llu\n", (unsigned long long)si->State.FirstSeq);
        printf("last_seq=%llu\n", (unsigned long long)si->State.LastSeq);
        printf("created=%lld\n", (long long)si->Created);
        printf("leader=%s\n", si->Cluster && si->Cluster->Leader ? si->Cluster->Leader : "");
        printf("republish=%s\n", c->RePublish && c->RePublish->Destination ? c->RePublish->Destination : "-");
        printf("allow_direct=%d\n", c->AllowDirect ? 1 : 0);
        jsStreamInfo_Destroy(si);
    }
out:
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    return rc;
}
