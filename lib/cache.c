/* The per-user cache folder (tuned GEMM parameters, kernel binaries): where it is, and whole
 * files read from it and written to it atomically (a temporary file renamed into place), so a
 * reader never sees half a file even when two processes write the same entry. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

uint64_t clt__fnv1a64(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

bool clt__cache_dir(char *out, size_t cap)
{
    const char *d = getenv("CLT_CACHE_DIR");
    int n;
    if (d && *d) {
        n = snprintf(out, cap, "%s", d);
    } else if ((d = getenv("XDG_CACHE_HOME")) && *d) {
        n = snprintf(out, cap, "%s/cltrain", d);
    } else if ((d = getenv("HOME")) && *d) {
        n = snprintf(out, cap, "%s/.cache/cltrain", d);
    } else {
        return false;
    }
    return n > 0 && (size_t)n < cap;
}

/* mkdir -p, mode 0700 for what it creates. */
static bool make_dirs(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return false;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST) return false;
        buf[i] = c;
    }
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

clt_status clt__cache_read(const char *path, size_t max_bytes, unsigned char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return clt__fail(CLT_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 65536) {
            size_t nc = cap ? cap * 2 : 65536;
            unsigned char *g = realloc(buf, nc + 1);
            if (!g) {
                free(buf);
                fclose(f);
                return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory reading %s", path);
            }
            buf = g;
            cap = nc;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n > max_bytes) {
            free(buf);
            fclose(f);
            return clt__fail(CLT_ERR_FORMAT, "%s is larger than %zu bytes", path, max_bytes);
        }
        if (got == 0) break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return clt__fail(CLT_ERR_IO, "reading %s failed", path);
    }
    buf[n] = '\0';   /* text files can be parsed in place */
    *data = buf;
    *len = n;
    return CLT_OK;
}

clt_status clt__cache_write(const char *dir, const char *name, const void *data, size_t len)
{
    if (!make_dirs(dir))
        return clt__fail(CLT_ERR_IO, "cannot create the cache folder %s: %s", dir, strerror(errno));
    char path[4096], tmp[4096 + 64];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path) return clt__fail(CLT_ERR_IO, "cache path too long");
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%lx", path, (long)getpid(),
             (unsigned long)(uintptr_t)pthread_self());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return clt__fail(CLT_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    const unsigned char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return clt__fail(CLT_ERR_IO, "writing %s failed: %s", tmp, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return clt__fail(CLT_ERR_IO, "writing %s failed: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return clt__fail(CLT_ERR_IO, "renaming %s to %s failed: %s", tmp, path, strerror(e));
    }
    return CLT_OK;
}
