/* Paths inside a test's scratch folder, for the tests that write files. */
#ifndef CLT_TEST_SCRATCH_H
#define CLT_TEST_SCRATCH_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

/* dir/name in one of 8 rotating buffers: up to 8 paths live at once. */
static inline char *test_path(const char *dir, const char *name)
{
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

/* Makes a fresh folder $TMPDIR/cltrain-NAME-XXXXXX (/tmp without TMPDIR) into dir (cap bytes);
 * on failure prints a TAP "Bail out!" and returns false. */
static inline bool test_scratch_dir(char *dir, size_t cap, const char *name)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(dir, cap, "%s/cltrain-%s-XXXXXX", base, name);
    if (mkdtemp(dir)) return true;
    printf("Bail out! cannot create a folder in %s\n", base);
    return false;
}

#endif
