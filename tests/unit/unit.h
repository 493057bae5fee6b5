/* A tiny unit-test harness: CHECK records a failure with its line and goes on; each file prints its totals. */
#ifndef RT_UNIT_H
#define RT_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_passed, unit_failed;
static const char *unit_case = "";

#define CASE(name) (unit_case = (name))
#define CHECK(cond)                                                                                                                \
    do {                                                                                                                           \
        if (cond) {                                                                                                                \
            unit_passed++;                                                                                                         \
        } else {                                                                                                                   \
            unit_failed++;                                                                                                         \
            printf("FAIL %s: %s: %s (line %d)\n", __FILE__, unit_case, #cond, __LINE__);                                          \
        }                                                                                                                          \
    } while (0)
#define UNIT_DONE()                                                                                                                \
    (printf("PASS %s: %d checks\n", __FILE__, unit_passed), unit_failed ? (printf("FAIL %s: %d checks failed\n", __FILE__, unit_failed), 1) : 0)

#endif
