/* The devices the tests run on: CLT_TEST_DEVICES, a device spec (default "all"), selects them,
 * and every test builds its runtimes' specs from that selection as concrete "P:D" entries, so
 * the suite runs on PoCL, rusticl, Oclgrind or a GPU alike and never assumes a platform number. */
#ifndef CLT_TEST_DEVICES_H
#define CLT_TEST_DEVICES_H

#include <cltrain.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_MAX_DEVICES 64
#define TEST_SPEC_CAP (TEST_MAX_DEVICES * 12)

typedef struct {
    int resolved;                              /* 0: not yet; 1: resolved */
    size_t n;                                  /* selected entries, repeats included */
    clt_device_info info[TEST_MAX_DEVICES];    /* entry i's device */
} test_selection;

static test_selection test_sel_;

/* The selection of CLT_TEST_DEVICES, resolved once. A spec that selects nothing, or a broken
 * driver, ends the test with a TAP bail-out saying why; no device at all is a skip plan. */
static inline const test_selection *test_selected(void)
{
    if (test_sel_.resolved) return &test_sel_;
    const char *spec = getenv("CLT_TEST_DEVICES");
    if (!spec || !*spec) spec = "all";
    size_t ndev = 0;
    if (clt_devices_list(NULL, 0, &ndev) != CLT_OK || ndev == 0) {
        printf("1..0 # SKIP no OpenCL device on this machine\n");
        exit(0);
    }
    static clt_device_info all[TEST_MAX_DEVICES];
    int idx[TEST_MAX_DEVICES];
    size_t got = 0;
    if (clt_devices_list(all, TEST_MAX_DEVICES, &ndev) != CLT_OK ||
        clt_devices_select(spec, idx, TEST_MAX_DEVICES, &got) != CLT_OK || got == 0) {
        printf("Bail out! CLT_TEST_DEVICES='%s': %s\n", spec, clt_last_error());
        exit(1);
    }
    test_sel_.n = got < TEST_MAX_DEVICES ? got : TEST_MAX_DEVICES;
    for (size_t i = 0; i < test_sel_.n; i++) test_sel_.info[i] = all[idx[i]];
    test_sel_.resolved = 1;
    return &test_sel_;
}

/* How many devices the selection holds (a repeated entry counts each time). */
static inline int test_ndev(void) { return (int)test_selected()->n; }

/* Entry i of the selection, cycling (i mod test_ndev()). */
static inline const clt_device_info *test_device(int i)
{
    const test_selection *s = test_selected();
    return &s->info[(size_t)i % s->n];
}

/* A spec of the given entries of the selection (cycling), e.g. {0, 2}: the devices that stay
 * when entry 1 of test_spec_n(3) drops out. Written to buf (TEST_SPEC_CAP bytes). */
static inline const char *test_spec_of(char *buf, int n, const int *entries)
{
    buf[0] = '\0';
    for (int k = 0; k < n && k < TEST_MAX_DEVICES; k++) {
        const clt_device_info *d = test_device(entries[k]);
        size_t len = strlen(buf);
        snprintf(buf + len, TEST_SPEC_CAP - len, "%s%d:%d", k ? "," : "", d->platform, d->device);
    }
    return buf;
}

/* A spec of exactly n devices taken from the selection in order, cycling through it: distinct
 * devices while the selection has enough, then the first ones again (3 from a 2-device
 * selection: d0,d1,d0). The string lives as long as the process. */
static inline const char *test_spec_n(int n)
{
    static char specs[TEST_MAX_DEVICES + 1][TEST_SPEC_CAP];
    if (n < 1) n = 1;
    if (n > TEST_MAX_DEVICES) n = TEST_MAX_DEVICES;
    if (!specs[n][0]) {
        int e[TEST_MAX_DEVICES];
        for (int k = 0; k < n; k++) e[k] = k;
        test_spec_of(specs[n], n, e);
    }
    return specs[n];
}

/* The first selected device. */
static inline const char *test_spec_one(void) { return test_spec_n(1); }

/* Every selected device, once each entry of the selection. */
static inline const char *test_spec_all(void) { return test_spec_n(test_ndev()); }

/* The first selected device n times: one device opened again as separate runtime devices, where
 * a test means the repeat (same device, same results bit for bit). */
static inline const char *test_spec_repeat(int n)
{
    static char specs[TEST_MAX_DEVICES + 1][TEST_SPEC_CAP];
    if (n < 1) n = 1;
    if (n > TEST_MAX_DEVICES) n = TEST_MAX_DEVICES;
    if (!specs[n][0]) {
        int e[TEST_MAX_DEVICES] = {0};
        test_spec_of(specs[n], n, e);
    }
    return specs[n];
}

/* Whether entry i is Oclgrind's simulator, which runs one kernel at a time per process: two
 * runtime devices of it (its one device opened twice) abort in Context::notifyKernelBegin. */
static inline int test_is_oclgrind(int i) { return strstr(test_device(i)->platform_name, "Oclgrind") != NULL; }

/* Whether test_spec_n(n)'s devices may run kernels at once (at most one of them Oclgrind). */
static inline int test_parallel_ok(int n)
{
    int ocl = 0;
    for (int i = 0; i < n && i < TEST_MAX_DEVICES; i++) ocl += test_is_oclgrind(i);
    return ocl <= 1;
}

/* Whether test_spec_repeat(n)'s devices may run kernels at once. */
static inline int test_repeat_ok(int n) { return n <= 1 || !test_is_oclgrind(0); }
#define TEST_NO_PARALLEL "Oclgrind runs one kernel at a time per process"

/* Whether the first n entries (cycling) are one kind of device: the same platform, device
 * name and driver, so that their results may be compared bit for bit. */
static inline int test_devices_alike(int n)
{
    const clt_device_info *a = test_device(0);
    for (int i = 1; i < n; i++) {
        const clt_device_info *b = test_device(i);
        if (strcmp(a->platform_name, b->platform_name) || strcmp(a->name, b->name) ||
            strcmp(a->driver_version, b->driver_version))
            return 0;
    }
    return 1;
}

#endif
