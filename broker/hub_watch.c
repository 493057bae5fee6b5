/*
 * Noticing that an HTTP/1 client went away while its request is held (SSE, ndjson,
 * long-poll). h2o stops reading a connection while it answers a request, so a closed
 * peer would be noticed only at the next write (a heartbeat, seconds later) and its
 * presence would linger. While the request is ours we read the socket ourselves: at
 * EOF or an error the subscriber ends at once; any bytes (a pipelined request) are left
 * for h2o and we stop watching. h2o installs its own reader again when the response is
 * complete, which replaces ours; we touch the socket only while our reader is installed.
 * So what we keep is one read (what the kernel held): a client that keeps sending is then
 * held back by TCP, never buffered here.
 */
#include "hub.h"

static rt_str_t key_of(rt_sub_t *sub) { return rt_str((const char *)&sub->watched, sizeof(sub->watched)); }

static void on_peer_read(h2o_socket_t *sock, const char *err)
{
    rt_map_t *watched = &rt_current_worker->watched;
    h2o_socket_t *k = sock;
    rt_sub_t *sub = rt_map_get(watched, rt_str((const char *)&k, sizeof(k)));
    h2o_socket_read_stop(sock);
    if (sub == NULL)
        return;
    rt_map_del(watched, key_of(sub));
    sub->watched = NULL;
    if (err != NULL)
        rt_sub_close(sub); /* the leave and the cleanup now; the write that follows lets h2o see the rest */
}

void rt_sub_watch(rt_sub_t *sub)
{
    h2o_req_t *req = sub->req;
    if (req == NULL || req->version >= 0x200 || req->conn->callbacks->get_socket == NULL)
        return; /* HTTP/2 reads its connection all the time */
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL || sock->_cb.read != NULL)
        return;
    sub->watched = sock;
    rt_map_put(&sub->w->watched, key_of(sub), sub);
    h2o_socket_read_start(sock, on_peer_read);
}

void rt_sub_unwatch(rt_sub_t *sub, int stop_reading)
{
    if (sub->watched == NULL)
        return;
    if (stop_reading && sub->watched->_cb.read == on_peer_read)
        h2o_socket_read_stop(sub->watched);
    rt_map_del(&sub->w->watched, key_of(sub));
    sub->watched = NULL;
}
