/* limits.connections_per_user: open subscriber connections per token subject, on this node (see userlimit.c). */
#ifndef RT_USERLIMIT_H
#define RT_USERLIMIT_H

#include "rt.h"

/* Counts one more connection of user (a token's `sub`; empty: not counted). RT_OK with *slot to hand back to
 * rt_userlimit_release, or RT_ERATELIMIT (nothing counted) when the user has limits.connections_per_user already. */
int rt_userlimit_admit(const char *user, void **slot);
void rt_userlimit_release(void *slot);

#endif
