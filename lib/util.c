/* Small string and clock helpers. */
#include "internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

bool clt__contains_nocase(const char *haystack, const char *needle)
{
    size_t n = strlen(needle);
    if (n == 0) return true;
    for (const char *h = haystack; *h; h++) {
        size_t i = 0;
        while (i < n && h[i] && tolower((unsigned char)h[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n) return true;
    }
    return false;
}

bool clt__sbuf_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = *cap - *len;
        int n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return false;
        if (*buf && (size_t)n < room) {
            *len += (size_t)n;
            return true;
        }
        size_t want = *len + (size_t)n + 1;
        size_t ncap = *cap ? *cap : 256;
        while (ncap < want) ncap *= 2;
        char *nb = realloc(*buf, ncap);
        if (!nb) return false;
        if (!*buf) nb[0] = '\0';
        *buf = nb;
        *cap = ncap;
    }
}

double clt__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
