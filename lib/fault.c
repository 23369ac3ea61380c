/* Fault injection for tests: one device made to fail, at one step, at one kind of point, the
 * way a lost device fails (an OpenCL call returning CL_DEVICE_NOT_AVAILABLE or
 * CL_OUT_OF_RESOURCES). Armed from the environment:
 *
 *   CLT_FAULT=device=D[,step=N][,op=OP][,at=K][,code=lost|resources]
 *
 *   device  runtime device index that fails (required)
 *   step    the training update it fails in, 1-based (t->steps + 1 when it runs); omitted or
 *           0: every call, training or not, collectives outside a trainer included
 *   op      forward | backward | allreduce | copy | optimizer | any (default any): where it
 *           fails. allreduce: any collective over the device (the gradient reduce-scatter and
 *           the parameter all-gather of data parallelism, the all-reduce of hybrid pipelines,
 *           the public collectives); copy: a host upload of the batch or a device-to-device
 *           send or receive; forward / backward: a layer range's forward or backward; optimizer:
 *           the update
 *   at      fine placement for tests: only the K-th point of that kind in a call (a collective's
 *           K-th progress unit, a pipeline device's K-th instruction); omitted or 0: every one
 *   code    lost (CL_DEVICE_NOT_AVAILABLE, the default) or resources (CL_OUT_OF_RESOURCES)
 *
 * Each runtime has its own fault (clt_runtime_options.fault, in the same grammar; NULL means
 * $CLT_FAULT, "" none), held in the runtime and reached by its workers, so two runtimes in one
 * process never see each other's. A runtime whose fault comes from $CLT_FAULT reads it again at
 * every trainer create (a malformed value makes the create fail with CLT_ERR_INVALID_ARG saying
 * what is wrong); tests may also arm one directly. A test facility: the device is not really
 * lost, so with a step given it fails in that step only. */
#include "internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[] = {   /* CLT__FAULT_* */
    [CLT__FAULT_ANY] = "any", [CLT__FAULT_FORWARD] = "forward", [CLT__FAULT_BACKWARD] = "backward",
    [CLT__FAULT_ALLREDUCE] = "allreduce", [CLT__FAULT_COPY] = "copy", [CLT__FAULT_OPTIMIZER] = "optimizer",
};

const char *clt__fault_op_name(int op)
{
    return op >= 0 && op < (int)(sizeof op_names / sizeof op_names[0]) ? op_names[op] : "?";
}

/* A non-negative decimal number filling [s, end), at most max. */
static bool parse_count(const char *s, const char *end, long max, long *out)
{
    long v = 0;
    if (s == end) return false;
    for (; s < end; s++) {
        if (*s < '0' || *s > '9') return false;
        v = v * 10 + (*s - '0');
        if (v > max) return false;
    }
    *out = v;
    return true;
}

clt_status clt__fault_parse(const char *text, const char *source, clt__fault *out)
{
    clt__fault f = {-1, 0, CLT__FAULT_ANY, 0, CL_DEVICE_NOT_AVAILABLE};
    const char *usage = "expected device=D[,step=N][,op=forward|backward|allreduce|copy|optimizer|any]"
                        "[,at=K][,code=lost|resources]";
    if (!text || !*text) return clt__fail(CLT_ERR_INVALID_ARG, "%s is empty: %s", source, usage);
    for (const char *p = text; *p;) {
        const char *end = strchr(p, ','), *eq;
        if (!end) end = p + strlen(p);
        eq = memchr(p, '=', (size_t)(end - p));
        if (!eq) return clt__fail(CLT_ERR_INVALID_ARG, "%s='%s': '%.*s' is not key=value: %s",
                                  source, text, (int)(end - p), p, usage);
        size_t klen = (size_t)(eq - p);
        const char *v = eq + 1;
        long n = 0;
        bool good = true;
        if (klen == 6 && !memcmp(p, "device", 6)) {
            good = parse_count(v, end, 4095, &n);
            f.device = (int)n;
        } else if (klen == 4 && !memcmp(p, "step", 4)) {
            good = parse_count(v, end, 1L << 40, &n);
            f.step = n;
        } else if (klen == 2 && !memcmp(p, "at", 2)) {
            good = parse_count(v, end, 1L << 30, &n);
            f.at = (unsigned)n;
        } else if (klen == 2 && !memcmp(p, "op", 2)) {
            good = false;
            for (int i = 0; i < (int)(sizeof op_names / sizeof op_names[0]); i++)
                if (strlen(op_names[i]) == (size_t)(end - v) && !memcmp(v, op_names[i], (size_t)(end - v)))
                    f.op = i, good = true;
        } else if (klen == 4 && !memcmp(p, "code", 4)) {
            good = (end - v == 4 && !memcmp(v, "lost", 4)) || (end - v == 9 && !memcmp(v, "resources", 9));
            f.code = end - v == 4 ? CL_DEVICE_NOT_AVAILABLE : CL_OUT_OF_RESOURCES;
        } else {
            return clt__fail(CLT_ERR_INVALID_ARG, "%s='%s': unknown key '%.*s': %s", source, text,
                             (int)klen, p, usage);
        }
        if (!good)
            return clt__fail(CLT_ERR_INVALID_ARG, "%s='%s': bad value '%.*s' for %.*s: %s", source,
                             text, (int)(end - v), v, (int)klen, p, usage);
        p = *end ? end + 1 : end;
    }
    if (f.device < 0)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s='%s': no device given: %s", source, text, usage);
    *out = f;
    return CLT_OK;
}

/* Arms f (NULL: none) on fs; from_env says whether $CLT_FAULT gave it. */
static void arm(clt__fault_state *fs, const clt__fault *f, bool from_env)
{
    pthread_mutex_lock(&fs->lock);
    if (f) fs->armed = *f;
    fs->from_env = f && from_env;
    atomic_store(&fs->active, f != NULL);
    pthread_mutex_unlock(&fs->lock);
}

/* Parses text from source and arms it, the device checked when nworkers > 0. */
static clt_status arm_text(clt__fault_state *fs, const char *text, const char *source, int nworkers)
{
    clt__fault f;
    clt_status st = clt__fault_parse(text, source, &f);
    if (st != CLT_OK) return st;
    if (nworkers > 0 && f.device >= nworkers)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s='%s': device %d, but the runtime has %d", source,
                         text, f.device, nworkers);
    arm(fs, &f, fs->env_source);
    clt__log(CLT_LOG_WARN, "%s: device %d will fail (%s) at %s%ld, op %s", source, f.device,
             clt_cl_error_name(f.code), f.step ? "step " : "every step", f.step, clt__fault_op_name(f.op));
    return CLT_OK;
}

clt_status clt__fault_init(clt__fault_state *fs, const char *opt)
{
    memset(fs, 0, sizeof *fs);
    if (pthread_mutex_init(&fs->lock, NULL))
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "cannot create the fault's mutex");
    fs->env_source = opt == NULL;
    const char *text = opt ? opt : getenv("CLT_FAULT");
    fs->inited = true;
    if (!text || !*text) return CLT_OK;   /* "" or unset: none */
    return arm_text(fs, text, opt ? "opts.fault" : "CLT_FAULT", 0);
}

clt_status clt__fault_check(clt__fault_state *fs, int nworkers)
{
    pthread_mutex_lock(&fs->lock);
    bool on = atomic_load(&fs->active);
    int device = fs->armed.device;
    pthread_mutex_unlock(&fs->lock);
    if (on && device >= nworkers)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: device %d, but the runtime has %d",
                         fs->env_source ? "CLT_FAULT" : "opts.fault", device, nworkers);
    return CLT_OK;
}

void clt__fault_fini(clt__fault_state *fs)
{
    if (fs->inited) pthread_mutex_destroy(&fs->lock);
    fs->inited = false;
}

clt_status clt__fault_reload(clt_runtime *rt)
{
    clt__fault_state *fs = &rt->fault;
    if (!fs->env_source) return CLT_OK;   /* opts.fault holds for the runtime's life */
    const char *e = getenv("CLT_FAULT");
    if (e && *e) return arm_text(fs, e, "CLT_FAULT", rt->nworkers);
    pthread_mutex_lock(&fs->lock);   /* unset: a fault an earlier value armed goes, a test's stays */
    if (fs->from_env) atomic_store(&fs->active, false), fs->from_env = false;
    pthread_mutex_unlock(&fs->lock);
    return CLT_OK;
}

void clt__fault_arm(clt_runtime *rt, const clt__fault *f) { arm(&rt->fault, f, false); }

void clt__fault_set_step(clt_runtime *rt, long step) { atomic_store(&rt->fault.step, step); }

clt_status clt__fault_point(clt__worker *w, int op, unsigned ordinal, const char *what)
{
    clt__fault_state *fs = w->fault;
    if (!fs || !atomic_load_explicit(&fs->active, memory_order_relaxed)) return CLT_OK;
    pthread_mutex_lock(&fs->lock);
    clt__fault f = fs->armed;
    bool on = atomic_load(&fs->active);
    pthread_mutex_unlock(&fs->lock);
    long step = atomic_load(&fs->step);
    if (!on || f.device != w->index || (f.step && f.step != step) ||
        (f.op != CLT__FAULT_ANY && f.op != op) || (f.at && f.at != ordinal))
        return CLT_OK;
    clt__log(CLT_LOG_WARN, "injected fault: device %d fails %s", w->index, what);
    return clt__fail(clt__status_from_cl(f.code), "%s on device %d (%s): %s (%d) (injected by %s "
                     "at step %ld, op %s: the device is treated as lost)", what, w->index,
                     clt__worker_name(w), clt_cl_error_name(f.code), (int)f.code,
                     fs->env_source ? "CLT_FAULT" : "opts.fault", step, clt__fault_op_name(op));
}
