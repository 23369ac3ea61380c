/* The kernel binary cache on disk: a first build stores the device's binary, a second start
 * loads it (on three devices: the first builds, the others hit), and every file that is corrupt,
 * truncated or made for other options falls back to the source; CLT_KERNEL_CACHE=0 turns it off,
 * and left unset it stands aside where PoCL's own cache is on.
 * Each time the kernel must still compute the right numbers. */
#include "internal.h"
#include "tap.h"

#include <sys/stat.h>
#include <unistd.h>

static const char *source =
    "__kernel void scale(__global float *x, const float a)\n"
    "{ x[get_global_id(0)] = x[get_global_id(0)] * a + SHIFT; }\n";

typedef struct {
    const char *options;
    float shift;
    int right;
    unsigned hits, misses;
} job;

static clt_status run_task(clt__worker *w, void *arg)
{
    job *j = arg;
    cl_program prog;
    clt_status st = clt__program_build_source(w, source, j->options, &prog);
    if (st != CLT_OK) return st;
    clt__program_cache_stats(w->programs, &j->hits, &j->misses);
    cl_int err;
    cl_kernel k = clCreateKernel(prog, "scale", &err);
    if (err != CL_SUCCESS) return clt__fail_cl(err, clt__worker_name(w), "clCreateKernel");
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = (float)i;
    cl_mem b = clCreateBuffer(w->context, CL_MEM_COPY_HOST_PTR, sizeof x, x, &err);
    float a = 3.0f;
    size_t g = 64;
    if (err == CL_SUCCESS) err = clSetKernelArg(k, 0, sizeof b, &b);
    if (err == CL_SUCCESS) err = clSetKernelArg(k, 1, sizeof a, &a);
    if (err == CL_SUCCESS) err = clEnqueueNDRangeKernel(w->queue, k, 1, NULL, &g, NULL, 0, NULL, NULL);
    if (err == CL_SUCCESS) err = clEnqueueReadBuffer(w->queue, b, CL_TRUE, 0, sizeof x, x, 0, NULL, NULL);
    clReleaseMemObject(b);
    clReleaseKernel(k);
    if (err != CL_SUCCESS) return clt__fail_cl(err, clt__worker_name(w), "scale");
    j->right = 1;
    for (int i = 0; i < 64; i++) j->right &= x[i] == 3.0f * (float)i + j->shift;
    return CLT_OK;
}

/* One runtime on `spec`, the kernel built and run on each device in turn. Returns total hits
 * and misses; *right: every device computed the right numbers. */
static void one_start(const char *spec, const char *options, float shift, unsigned *hits,
                      unsigned *misses, int *right)
{
    clt_runtime *rt;
    *hits = *misses = 0;
    *right = 0;
    if (clt_runtime_create(&rt, spec) != CLT_OK) {
        diag("runtime: %s", clt_last_error());
        return;
    }
    *right = 1;
    for (int d = 0; d < clt_runtime_device_count(rt); d++) {
        job j = {options, shift, 0, 0, 0};
        clt_status st = clt__worker_call(&rt->workers[d], run_task, &j);
        if (st != CLT_OK) diag("device %d: %s", d, clt_last_error());
        *right &= st == CLT_OK && j.right;
        *hits += j.hits;
        *misses += j.misses;
    }
    clt_runtime_destroy(rt);
}

static int count_files(const char *dir, char *first, size_t cap)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls '%s' 2>/dev/null", dir);
    FILE *p = popen(cmd, "r");
    int n = 0;
    char line[256];
    while (p && fgets(line, sizeof line, p)) {
        if (n++ == 0) snprintf(first, cap, "%s/%.*s", dir, (int)strcspn(line, "\n"), line);
    }
    if (p) pclose(p);
    return n;
}

/* Rewrites a file: keeps `keep` bytes, and flips one byte at `flip` (< 0: none). */
static void damage(const char *path, long keep, long flip)
{
    FILE *f = fopen(path, "rb");
    if (!f) return;
    unsigned char *buf = malloc(1 << 24);
    size_t n = fread(buf, 1, 1 << 24, f);
    fclose(f);
    if (keep >= 0 && (size_t)keep < n) n = (size_t)keep;
    if (flip >= 0 && (size_t)flip < n) buf[flip] ^= 0x5a;
    f = fopen(path, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
    free(buf);
}

int main(void)
{
    tap_require_device();
    char dir[] = "/tmp/clt-kcache-XXXXXX";
    if (!ok(mkdtemp(dir) != NULL, "a temporary cache folder")) return tap_done();
    setenv("CLT_CACHE_DIR", dir, 1);
    setenv("CLT_KERNEL_CACHE", "1", 1);   /* on whatever the platform (PoCL's own is left on) */
    char kdir[512], file[768] = "";
    snprintf(kdir, sizeof kdir, "%s/kernels", dir);
    const char *opt1 = "-DSHIFT=1.0f", *opt2 = "-DSHIFT=2.0f";
    unsigned hits, misses;
    int right;

    one_start(test_spec_one(), opt1, 1.0f, &hits, &misses, &right);
    ok(right, "first start: the kernel runs right");
    ok(hits == 0 && misses == 1, "first start: a miss, built from source (hits %u misses %u)", hits, misses);
    ok(count_files(kdir, file, sizeof file) == 1, "one binary stored (%s)", file);

    one_start(test_spec_one(), opt1, 1.0f, &hits, &misses, &right);
    ok(right, "second start: the kernel from the binary runs right");
    ok(hits == 1 && misses == 0, "second start: a hit (hits %u misses %u)", hits, misses);

    one_start(test_spec_all(), opt1, 1.0f, &hits, &misses, &right);
    ok(right, "all devices: right everywhere");
    ok(hits >= 1, "all devices: the devices of 0:0's kind hit (hits %u misses %u)", hits, misses);

    one_start(test_spec_one(), opt2, 2.0f, &hits, &misses, &right);
    ok(right && hits == 0 && misses == 1, "other options: another entry, built from source");
    ok(count_files(kdir, file, sizeof file) >= 2, "a second binary stored");

    /* damage opt1's entry in three ways: each time a fallback, and the entry written anew */
    char cmd[1024];
    for (int way = 0; way < 3; way++) {
        one_start(test_spec_one(), opt1, 1.0f, &hits, &misses, &right);   /* make sure it is there */
        snprintf(cmd, sizeof cmd, "grep -l -a -- '%s' '%s'/* > '%s/which'", opt1, kdir, dir);
        if (system(cmd) != 0) diag("grep found no entry");
        char which[768] = "", path[800];
        snprintf(path, sizeof path, "%s/which", dir);
        FILE *f = fopen(path, "r");
        if (f && fgets(which, sizeof which, f)) which[strcspn(which, "\n")] = '\0';
        if (f) fclose(f);
        unlink(path);
        struct stat stt;
        long size = stat(which, &stt) == 0 ? (long)stt.st_size : 0;
        const char *what = way == 0 ? "a byte flipped in the binary" : way == 1 ? "truncated" : "the magic broken";
        if (way == 0) damage(which, -1, size / 2);
        else if (way == 1) damage(which, size - 100, -1);
        else damage(which, -1, 2);
        one_start(test_spec_one(), opt1, 1.0f, &hits, &misses, &right);
        ok(right, "%s: the kernel still runs right", what);
        ok(hits == 0 && misses == 1, "%s: built from source instead (hits %u misses %u)", what, hits, misses);
        one_start(test_spec_one(), opt1, 1.0f, &hits, &misses, &right);
        ok(right && hits == 1, "%s: the entry was written anew and hits again", what);
    }

    setenv("CLT_KERNEL_CACHE", "0", 1);
    one_start(test_spec_one(), opt1, 1.0f, &hits, &misses, &right);
    ok(right && hits == 0 && misses == 0, "CLT_KERNEL_CACHE=0: neither loaded nor stored");
    /* unset: off where PoCL's own cache is on, on where it is off */
    unsetenv("CLT_KERNEL_CACHE");
    clt_device_info info = *test_device(0);   /* the device one_start opens */
    /* the platform's own cache switch, and its value turning that cache on and off */
    const char *var = NULL, *own_on = NULL, *own_off = NULL;
    if (clt__contains_nocase(info.platform_name, "Portable Computing Language"))
        var = "POCL_KERNEL_CACHE", own_on = "1", own_off = "0";
    else if (clt__contains_nocase(info.platform_name, "NVIDIA"))
        var = "CUDA_CACHE_DISABLE", own_on = "0", own_off = "1";
    if (var) setenv(var, own_on, 1);
    one_start(test_spec_one(), opt1, 1.0f, &hits, &misses, &right);
    ok(right && hits == (var ? 0u : 1u), "unset, the platform's cache on: ours %s (hits %u)",
       var ? "stays out of the way" : "loads (the platform has none)", hits);
    if (var) setenv(var, own_off, 1);
    one_start(test_spec_one(), opt1, 1.0f, &hits, &misses, &right);
    ok(right && hits == 1, "unset, the platform's cache off: ours loads (hits %u)", hits);
    if (var) unsetenv(var);
    setenv("CLT_KERNEL_CACHE", "1", 1);

    /* an unwritable cache folder: builds still work */
    setenv("CLT_CACHE_DIR", "/proc/cltrain-no-such-place", 1);
    one_start(test_spec_one(), opt1, 1.0f, &hits, &misses, &right);
    ok(right && hits == 0, "an unwritable cache folder only costs the cache");
    setenv("CLT_CACHE_DIR", dir, 1);

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) diag("could not remove %s", dir);
    return tap_done();
}
