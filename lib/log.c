/* Logging: off by default; CLT_LOG=LEVEL sends to stderr; a callback takes over when set. */
#include "internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

/* Process-wide by nature (like libgit2's trace callback); guarded by a lock. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static clt_log_fn log_fn;
static void *log_user;
static atomic_int log_max = -2;   /* -2: not read from CLT_LOG yet; -1: off */

static int env_level(void)
{
    const char *e = getenv("CLT_LOG");
    if (!e || !*e) return -1;
    if (!strcasecmp(e, "error")) return CLT_LOG_ERROR;
    if (!strcasecmp(e, "warn") || !strcasecmp(e, "warning")) return CLT_LOG_WARN;
    if (!strcasecmp(e, "info")) return CLT_LOG_INFO;
    if (!strcasecmp(e, "debug")) return CLT_LOG_DEBUG;
    return -1;
}

void clt_log_set_callback(clt_log_fn fn, clt_log_level max_level, void *user)
{
    pthread_mutex_lock(&log_lock);
    log_fn = fn;
    log_user = user;
    atomic_store(&log_max, fn ? (int)max_level : env_level());
    pthread_mutex_unlock(&log_lock);
}

bool clt__log_enabled(clt_log_level level)
{
    int max = atomic_load(&log_max);
    if (max == -2) {
        max = env_level();
        int expected = -2;
        atomic_compare_exchange_strong(&log_max, &expected, max);
        max = atomic_load(&log_max);
    }
    return (int)level <= max;
}

void clt__log(clt_log_level level, const char *fmt, ...)
{
    if (!clt__log_enabled(level)) return;
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    static const char *const names[] = {"error", "warn", "info", "debug"};
    pthread_mutex_lock(&log_lock);
    if (log_fn)
        log_fn(level, msg, log_user);
    else
        fprintf(stderr, "cltrain %s: %s\n", names[level], msg);
    pthread_mutex_unlock(&log_lock);
}
