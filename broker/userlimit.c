/*
 * limits.connections_per_user: how many subscriber connections each token subject holds open on this node, under
 * one lock (taken once when a connection identifies itself and once when it ends). Anonymous connections are not
 * counted here (limits.connections_per_ip bounds them). Knows nothing of transports.
 */
#include <pthread.h>
#include <stdlib.h>

#include "config.h"
#include "map.h"
#include "userlimit.h"

typedef struct user_count {
    size_t n;
    char name[];
} user_count_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static rt_map_t users;

int rt_userlimit_admit(const char *user, void **slot)
{
    int64_t max = rt_cfg_int("limits.connections_per_user");
    *slot = NULL;
    if (max <= 0 || user == NULL || user[0] == '\0')
        return RT_OK;
    pthread_mutex_lock(&lock);
    user_count_t *u = rt_map_get(&users, rt_cstr(user));
    if (u != NULL && u->n >= (size_t)max) {
        pthread_mutex_unlock(&lock);
        return RT_ERATELIMIT;
    }
    if (u == NULL) {
        size_t len = strlen(user);
        u = rt_calloc(1, sizeof(*u) + len + 1);
        memcpy(u->name, user, len);
        rt_map_put(&users, rt_str(u->name, len), u);
    }
    u->n++;
    pthread_mutex_unlock(&lock);
    *slot = u;
    return RT_OK;
}

void rt_userlimit_release(void *slot)
{
    user_count_t *u = slot;
    if (u == NULL)
        return;
    pthread_mutex_lock(&lock);
    if (--u->n == 0) {
        rt_map_del(&users, rt_cstr(u->name));
        free(u);
    }
    pthread_mutex_unlock(&lock);
}
