/*
 * The topic model of API.md: segments of [A-Za-z0-9_-]+ joined by '.', at most 255 bytes;
 * '*' is one whole segment, '>' one or more trailing segments. Also the id format.
 * Pure functions over slices: no allocation, no state.
 */
#include <stdio.h>

#include "topic.h"

static int seg_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

int rt_topic_check(rt_str_t t, int allow_wildcards, int *is_pattern)
{
    int wild = 0;
    if (t.len == 0 || t.len > RT_TOPIC_MAX)
        return RT_ETOPIC;
    size_t i = 0;
    while (i <= t.len) {
        size_t start = i;
        while (i < t.len && t.base[i] != '.')
            i++;
        size_t n = i - start;
        if (n == 0)
            return RT_ETOPIC;
        if (n == 1 && (t.base[start] == '*' || t.base[start] == '>')) {
            if (!allow_wildcards)
                return RT_ETOPIC;
            if (t.base[start] == '>' && i != t.len)
                return RT_ETOPIC;
            wild = 1;
        } else {
            for (size_t k = start; k < i; k++)
                if (!seg_char(t.base[k]))
                    return RT_ETOPIC;
        }
        i++; /* skip '.'; ends the loop past the last segment */
    }
    if (is_pattern)
        *is_pattern = wild;
    return RT_OK;
}

/* Next segment of s from *pos; returns 0 when none left. */
static int next_seg(rt_str_t s, size_t *pos, rt_str_t *seg)
{
    if (*pos > s.len)
        return 0;
    size_t start = *pos, i = start;
    while (i < s.len && s.base[i] != '.')
        i++;
    *seg = rt_str(s.base + start, i - start);
    *pos = i + 1;
    return 1;
}

int rt_topic_match(rt_str_t pattern, rt_str_t topic)
{
    size_t pp = 0, tp = 0;
    rt_str_t ps, ts;
    for (;;) {
        int hp = next_seg(pattern, &pp, &ps), ht = next_seg(topic, &tp, &ts);
        if (!hp || !ht)
            return hp == ht;
        if (ps.len == 1 && ps.base[0] == '>')
            return 1;
        if (!(ps.len == 1 && ps.base[0] == '*') && !rt_str_eq(ps, ts))
            return 0;
    }
}

int rt_topic_covers(rt_str_t grant, rt_str_t pattern)
{
    size_t gp = 0, pp = 0;
    rt_str_t gs, ps;
    for (;;) {
        int hg = next_seg(grant, &gp, &gs), hp = next_seg(pattern, &pp, &ps);
        if (!hg || !hp)
            return hg == hp;
        int g_gt = gs.len == 1 && gs.base[0] == '>', g_star = gs.len == 1 && gs.base[0] == '*';
        int p_gt = ps.len == 1 && ps.base[0] == '>', p_star = ps.len == 1 && ps.base[0] == '*';
        if (g_gt)
            return 1; /* '>' covers one or more segments, and the pattern has at least one left */
        if (p_gt)
            return 0; /* the pattern reaches arbitrarily deep; only '>' covers that */
        if (g_star)
            continue; /* covers any one segment, literal or '*' */
        if (p_star || !rt_str_eq(gs, ps))
            return 0;
    }
}

int rt_id_parse(rt_str_t s, rt_id_t *out)
{
    size_t i = 0;
    while (i < s.len && s.base[i] != ':') {
        if (!seg_char(s.base[i]))
            return RT_EID;
        i++;
    }
    if (i == 0 || i > RT_EPOCH_MAX || i == s.len)
        return RT_EID;
    size_t d = i + 1;
    if (d == s.len || s.len - d > 19)
        return RT_EID;
    uint64_t seq = 0;
    for (size_t k = d; k < s.len; k++) {
        if (s.base[k] < '0' || s.base[k] > '9')
            return RT_EID;
        seq = seq * 10 + (uint64_t)(s.base[k] - '0');
    }
    out->epoch = rt_str(s.base, i);
    out->seq = seq;
    return RT_OK;
}

size_t rt_id_format(char *buf, rt_str_t epoch, uint64_t seq)
{
    /* on every message and long-poll answer: digits by hand, not snprintf */
    size_t n = epoch.len > RT_EPOCH_MAX ? RT_EPOCH_MAX : epoch.len;
    memcpy(buf, epoch.base, n);
    buf[n++] = ':';
    char digits[20];
    size_t d = 0;
    do {
        digits[d++] = (char)('0' + seq % 10);
        seq /= 10;
    } while (seq);
    while (d)
        buf[n++] = digits[--d];
    buf[n] = '\0';
    return n;
}
