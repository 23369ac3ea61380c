/* A small TAP producer for the tests: every check is one counted test point.
 * Tolerances are stated where values are compared: |got - ref| <= atol + rtol * |ref|. */
#ifndef CLT_TAP_H
#define CLT_TAP_H

#include "devices.h"
#include <cltrain.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_count, tap_failed;

__attribute__((format(printf, 2, 3))) static inline bool ok(bool cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s %d - ", cond ? "ok" : "not ok", ++tap_count);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (!cond) tap_failed++;
    fflush(stdout);
    return cond;
}

/* A test point that could not run here: "ok N - desc # SKIP reason" (counted, never failed). */
__attribute__((format(printf, 2, 3))) static inline void skip(const char *reason,
                                                              const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("ok %d - ", ++tap_count);
    vprintf(fmt, ap);
    printf(" # SKIP %s\n", reason);
    va_end(ap);
    fflush(stdout);
}

/* A call that must succeed; on failure, shows the library's message. */
#define ok_status(call, ...)                                                                    \
    ({                                                                                          \
        clt_status tap_st_ = (call);                                                            \
        if (tap_st_ != CLT_OK) printf("# %s -> %s: %s\n", #call, clt_status_name(tap_st_), clt_last_error()); \
        ok(tap_st_ == CLT_OK, __VA_ARGS__);                                                     \
    })

/* A call that must fail with `want`, and whose message contains `needle` (NULL: any). */
#define ok_error(call, want, needle, ...)                                                       \
    ({                                                                                          \
        clt_status tap_st_ = (call);                                                            \
        const char *tap_msg_ = clt_last_error();                                                \
        bool tap_good_ = tap_st_ == (want) && (!(needle) || strstr(tap_msg_, (needle)));        \
        if (!tap_good_)                                                                         \
            printf("# %s -> %s (wanted %s, message containing '%s'): %s\n", #call,              \
                   clt_status_name(tap_st_), clt_status_name(want), (needle) ? (needle) : "",   \
                   tap_msg_);                                                                   \
        ok(tap_good_, __VA_ARGS__);                                                             \
    })

__attribute__((format(printf, 1, 2))) static inline void diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("# ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

/* Index of the first element outside atol + rtol*|ref|, or -1 when all are close. */
static inline long tap_first_mismatch(const float *got, const float *ref, size_t n, double atol, double rtol)
{
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        if (!(d <= atol + rtol * fabs((double)ref[i]))) return (long)i;
    }
    return -1;
}

static inline bool ok_close(const float *got, const float *ref, size_t n, double atol, double rtol,
                     const char *what)
{
    long i = tap_first_mismatch(got, ref, n, atol, rtol);
    if (i >= 0)
        diag("%s: element %ld is %.9g, reference %.9g (atol %g, rtol %g)", what, i, got[i], ref[i],
             atol, rtol);
    return ok(i < 0, "%s (%zu values within %g + %g*|ref|)", what, n, atol, rtol);
}

/* Whether got holds NaN where PyTorch does: `want` has one character per element, 'N' for NaN
 * and '.' for a finite number. */
static inline bool ok_nan_where(const float *got, const char *want, const char *what)
{
    size_t n = strlen(want), i = 0;
    while (i < n && (want[i] == 'N' ? isnan(got[i]) : isfinite(got[i]))) i++;
    if (i < n) diag("%s: element %zu is %.9g, wanted %s", what, i, got[i], want[i] == 'N' ? "NaN" : "finite");
    return ok(i == n, "%s: NaN exactly where PyTorch has it (%s)", what, want);
}

/* ok_close where the reference holds NaN: got must be NaN exactly there, and within
 * atol + rtol*|ref| elsewhere. */
static inline bool ok_close_nan(const float *got, const float *ref, size_t n, double atol,
                                double rtol, const char *what)
{
    size_t i = 0;
    while (i < n && (isnan(ref[i]) ? isnan(got[i]) : tap_first_mismatch(got + i, ref + i, 1, atol, rtol) < 0)) i++;
    if (i < n)
        diag("%s: element %zu is %.9g, reference %.9g (atol %g, rtol %g)", what, i, got[i], ref[i],
             atol, rtol);
    return ok(i == n, "%s (%zu values: NaN where the reference is, else within %g + %g*|ref|)", what,
              n, atol, rtol);
}

/* Returns when at least one OpenCL device exists and CLT_TEST_DEVICES selects some (see
 * devices.h). Without a device, a test prints a TAP skip plan and exits 0: TAP says "skipped"
 * in-band (automake's TAP driver counts exit 77 as an error). */
static inline void tap_require_device(void) { (void)test_selected(); }

/* Ends the run: prints the plan and exits nonzero when a check failed. */
static inline int tap_done(void)
{
    printf("1..%d\n", tap_count);
    return tap_failed ? 1 : 0;
}

#endif
