/* Paths inside a test's scratch folder, for the tests that write files. */
#ifndef CLT_TEST_SCRATCH_H
#define CLT_TEST_SCRATCH_H

#include <stdio.h>

/* dir/name in one of 8 rotating buffers: up to 8 paths live at once. */
static inline char *test_path(const char *dir, const char *name)
{
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

#endif
