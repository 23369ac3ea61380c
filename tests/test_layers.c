/* Every layer's forward and backward against PyTorch (the .ref files that tests/gen_reference.py writes),
 * on every device of the runtime, plus a finite-difference check of every gradient and the
 * properties of dropout. Tolerance: |got - ref| <= atol + rtol*|ref| as stated per check. */
#include "internal.h"
#include "ref.h"
#include "tap.h"

#include <math.h>

#define ATOL 1e-5
#define RTOL 1e-4

/* A model (one layer, or a few: a residual block, a tied head) on one device, kept between calls. */
typedef struct {
    clt_runtime *rt;
    int dev;
    clt_model *m;
    size_t B;
    clt__net *net;
    cl_mem din;
    /* host side of a call */
    const float *x, *params, *g;
    float *y, *dx, *grads;
    int training;
    uint64_t seed;
} rig;

static clt_status rig_create_task(clt__worker *w, void *arg)
{
    rig *r = arg;
    clt_status st = clt__net_create(w, r->m, 0, r->m->nlayers - 1, r->B, 1, &r->net);
    if (st == CLT_OK) st = clt__alloc(w, r->B * r->m->layers[0].in_numel, "din", &r->din);
    return st;
}

static clt_status rig_destroy_task(clt__worker *w, void *arg)
{
    rig *r = arg;
    (void)w;
    clt__net_destroy(r->net);
    if (r->din) clReleaseMemObject(r->din);
    return CLT_OK;
}

static clt_status write_buf(clt__worker *w, cl_mem m, const float *src, size_t n)
{
    if (!n) return CLT_OK;
    cl_int e = clEnqueueWriteBuffer(w->queue, m, CL_TRUE, 0, n * 4, src, 0, NULL, NULL);
    return e ? clt__fail_cl(e, clt__worker_name(w), "write") : CLT_OK;
}

static clt_status read_buf(clt__worker *w, cl_mem m, float *dst, size_t n)
{
    if (!n) return CLT_OK;
    cl_int e = clEnqueueReadBuffer(w->queue, m, CL_TRUE, 0, n * 4, dst, 0, NULL, NULL);
    return e ? clt__fail_cl(e, clt__worker_name(w), "read") : CLT_OK;
}

/* forward (and backward when r->g is set) */
static clt_status rig_run_task(clt__worker *w, void *arg)
{
    rig *r = arg;
    const clt__layer *l = &r->m->layers[0], *last = &r->m->layers[r->m->nlayers - 1];
    clt__net *n = r->net;
    clt_status st = write_buf(w, n->params, r->params, n->nparams);
    if (st == CLT_OK) st = write_buf(w, n->input, r->x, r->B * l->in_numel);
    if (st == CLT_OK) st = clt__net_forward(n, r->B, r->training, r->seed);
    if (st == CLT_OK) st = read_buf(w, clt__net_output(n).mem, r->y, r->B * last->out_numel);
    if (st != CLT_OK || !r->g) return st;
    st = clt__zero(w, (clt__view){n->grads, 0}, n->nparams);
    if (st == CLT_OK) st = write_buf(w, n->gbuf[0], r->g, r->B * last->out_numel);
    if (st == CLT_OK) st = clt__net_backward(n, r->B, (clt__view){n->gbuf[0], 0}, (clt__view){r->din, 0}, r->seed);
    if (st == CLT_OK) st = read_buf(w, r->din, r->dx, r->B * l->in_numel);
    if (st == CLT_OK) st = read_buf(w, n->grads, r->grads, n->nparams);
    return st;
}

static clt_status rig_run(rig *r) { return clt__worker_call(&r->rt->workers[r->dev], rig_run_task, r); }

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return s;
}

/* f = sum(y * g) at the current x/params, in double on the host. */
static double rig_objective(rig *r)
{
    const float *g = r->g;
    r->g = NULL;
    clt_status st = rig_run(r);
    r->g = g;
    return st == CLT_OK ? dot(r->y, g, r->B * r->m->layers[r->m->nlayers - 1].out_numel) : NAN;
}

/* Central differences on up to 12 elements of v (x or params) against the analytic gradient.
 * Points where the function is not smooth (ReLU kinks, max ties) show as one-sided slopes that
 * disagree and are left out. Returns the number of elements checked, -1 on a mismatch. */
static int finite_diff(rig *r, float *v, size_t n, const float *analytic, const char *what)
{
    const float eps = 1e-2f;
    int checked = 0;
    size_t stride = n > 12 ? n / 12 : 1;
    for (size_t i = 0; i < n; i += stride) {
        float keep = v[i];
        double f0 = rig_objective(r);
        v[i] = keep + eps;
        double fp = rig_objective(r);
        v[i] = keep - eps;
        double fm = rig_objective(r);
        v[i] = keep;
        double dp = (fp - f0) / eps, dm = (f0 - fm) / eps, num = (fp - fm) / (2 * eps);
        double scale = fabs(dp) + fabs(dm) + 1.0;
        if (fabs(dp - dm) > 0.05 * scale) continue;   /* not smooth here */
        double tol = 2e-3 + 2e-2 * fabs(num);
        if (fabs(num - analytic[i]) > tol) {
            diag("%s[%zu]: analytic %.6g, finite difference %.6g", what, i, analytic[i], num);
            return -1;
        }
        checked++;
    }
    return checked;
}

#define MORE_LAYERS 4

typedef struct {
    const char *ref;
    clt_shape in;
    clt_layer_desc desc;
    int fd;          /* finite-difference check */
    /* layers after desc (kind 0 ends the list): the reference's "params" hold all parameters
     * flat, as the model lays them out */
    clt_layer_desc more[MORE_LAYERS];
} layer_case;

/* Token ids, stored as floats in the reference, as the int32 bits the embedding reads from the
 * input buffer (as clt_trainer_step_tokens uploads them). */
static void ids_as_input(const float *ids, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int32_t id = (int32_t)ids[i];
        memcpy(&x[i], &id, sizeof id);
    }
}

static void check_case(clt_runtime *rt, const layer_case *c)
{
    ref_file f;
    if (!ok(ref_load(&f, c->ref) == 0, "%s: reference file loads", c->ref)) return;
    bool tokens = c->desc.kind == CLT_LAYER_EMBEDDING;   /* ids in: no input gradient */
    const ref_entry *x = ref_get(&f, "x"), *y = ref_get(&f, "y"), *g = ref_get(&f, "g"),
                    *dx = tokens ? NULL : ref_get(&f, "dx"), *w = NULL, *b = NULL, *dw = NULL,
                    *db = NULL;
    clt_model *m = NULL;
    clt_model_create(&m, c->in);
    bool added = ok_status(clt_model_add(m, c->desc), "%s: the layer fits its input shape", c->ref);
    for (int k = 0; added && k < MORE_LAYERS && c->more[k].kind; k++)
        added = ok_status(clt_model_add(m, c->more[k]), "%s: layer %d fits", c->ref, k + 1);
    const clt__layer *l = added ? &m->layers[0] : NULL, *last = added ? &m->layers[m->nlayers - 1] : NULL;
    if (!added || !x || !y || !g || (!tokens && !dx)) goto out;
    if (m->nlayers > 1 && m->nparams) {
        w = ref_get(&f, "params"), dw = ref_get(&f, "dparams");
    } else {
        if (l->w_count) w = ref_get(&f, "weight"), dw = ref_get(&f, "dweight");
        if (l->b_count) b = ref_get(&f, "bias"), db = ref_get(&f, "dbias");
    }
    size_t B = (size_t)x->dims[0], wn = m->nlayers > 1 ? m->nparams : l->w_count;
    ok(x->n == B * l->in_numel && y->n == B * last->out_numel && (!w || w->n == wn) &&
           (!b || b->n == l->b_count),
       "%s: shapes agree with PyTorch's (out numel %zu, %zu params)", c->ref, last->out_numel,
       m->nparams);
    if (x->n != B * l->in_numel || y->n != B * last->out_numel || (w && w->n != wn)) goto out;

    size_t np = m->nparams;
    float *params = calloc(np + 1, 4), *grads = calloc(np + 1, 4);
    if (w) memcpy(params, w->data, w->n * 4);
    if (b) memcpy(params + l->w_count, b->data, b->n * 4);
    float *ybuf = malloc(y->n * 4), *dxbuf = malloc(x->n * 4);
    float *xcopy = malloc(x->n * 4);
    if (tokens) ids_as_input(x->data, xcopy, x->n);
    else memcpy(xcopy, x->data, x->n * 4);
    for (int d = 0; d < clt_runtime_device_count(rt); d++) {
        rig r = {rt, d, m, B, NULL, NULL, xcopy, params, g->data, ybuf, dxbuf, grads, 1, 5};
        if (!ok_status(clt__worker_call(&rt->workers[d], rig_create_task, &r), "%s: net on device %d", c->ref, d)) continue;
        if (ok_status(rig_run(&r), "%s: forward and backward on device %d", c->ref, d)) {
            char what[128];
            snprintf(what, sizeof what, "%s: device %d output", c->ref, d);
            ok_close(ybuf, y->data, y->n, ATOL, RTOL, what);
            if (dx) {
                snprintf(what, sizeof what, "%s: device %d input gradient", c->ref, d);
                ok_close(dxbuf, dx->data, dx->n, ATOL, RTOL, what);
            }
            if (dw) {
                snprintf(what, sizeof what, "%s: device %d %s gradient", c->ref, d,
                         m->nlayers > 1 ? "parameter" : "weight");
                ok_close(grads, dw->data, dw->n, ATOL, RTOL, what);
            }
            if (db) {
                snprintf(what, sizeof what, "%s: device %d bias gradient", c->ref, d);
                ok_close(grads + l->w_count, db->data, db->n, ATOL, RTOL, what);
            }
            if (c->fd && d == 0) {
                float *adx = malloc(x->n * 4), *ag = malloc((np + 1) * 4);
                memcpy(adx, dxbuf, x->n * 4);
                memcpy(ag, grads, np * 4);
                int nx = tokens ? 0 : finite_diff(&r, xcopy, x->n, adx, "dx");
                int npar = np ? finite_diff(&r, params, np, ag, "dparams") : 0;
                ok((tokens ? nx == 0 : nx > 0) && npar >= 0 && (np == 0 || npar > 0),
                   "%s: finite differences agree with the gradients (%d input and %d parameter "
                   "elements; 2e-3 + 2e-2*|fd|)", c->ref, nx, npar);
                free(adx);
                free(ag);
            }
        }
        clt__worker_call(&rt->workers[d], rig_destroy_task, &r);
    }
    free(params), free(grads), free(ybuf), free(dxbuf), free(xcopy);
out:
    clt_model_destroy(m);
    ref_free(&f);
}

/* Cross-entropy over positions through the trainer, on every device: (B, 7, 13) logits (the
 * input plus a position table of zeros, so the table's gradient is the logits' summed over the
 * batch) against F.cross_entropy(logits.view(-1, 13), y.view(-1)), the mean over all B x 7. */
static void check_seq_cross_entropy(clt_runtime *rt)
{
    ref_file f;
    if (!ok(ref_load(&f, "seq_cross_entropy") == 0, "seq_cross_entropy: reference file loads")) return;
    const ref_entry *z = ref_get(&f, "z"), *y = ref_get(&f, "targets"), *loss = ref_get(&f, "loss"),
                    *dz = ref_get(&f, "dz");
    if (!z || !y || !loss || !dz || z->rank != 3) {
        ref_free(&f);
        return;
    }
    int B = z->dims[0], T = z->dims[1], V = z->dims[2];
    int32_t *targets = malloc((size_t)(B * T) * sizeof *targets);
    float *zero = calloc((size_t)(T * V), 4), *want = calloc((size_t)(T * V), 4), *got = malloc((size_t)(T * V) * 4);
    for (int i = 0; i < B * T; i++) targets[i] = (int32_t)y->data[i];
    for (int b = 0; b < B; b++)
        for (int e = 0; e < T * V; e++) want[e] += dz->data[(size_t)b * T * V + e];
    clt_model *m = NULL;
    clt_model_create(&m, clt_shape2(T, V));
    clt_model_add(m, clt_position_embedding());
    for (int d = 0; d < clt_runtime_device_count(rt); d++) {
        clt_train_params p = clt_train_params_default();
        p.device = d;
        clt_trainer *t = NULL;
        if (!ok_status(clt_trainer_create(&t, rt, m, &p), "seq_cross_entropy: trainer on device %d", d)) continue;
        float l = NAN, el = NAN, acc;
        ok_status(clt_trainer_set_param(t, 0, "weight", zero, (size_t)(T * V)), "seq_cross_entropy: zero table");
        ok_status(clt_trainer_evaluate(t, z->data, targets, (size_t)B, &el, &acc), "seq_cross_entropy: evaluate on device %d", d);
        if (ok_status(clt_trainer_step(t, z->data, targets, (size_t)B, &l), "seq_cross_entropy: step on device %d", d) &&
            ok_status(clt_trainer_get_grad(t, 0, "weight", got, (size_t)(T * V)), "seq_cross_entropy: gradient on device %d", d)) {
            char what[128];
            snprintf(what, sizeof what, "seq_cross_entropy: device %d step's loss", d);
            ok_close(&l, loss->data, 1, 1e-6, 1e-5, what);
            snprintf(what, sizeof what, "seq_cross_entropy: device %d evaluate's loss", d);
            ok_close(&el, loss->data, 1, 1e-6, 1e-5, what);
            snprintf(what, sizeof what, "seq_cross_entropy: device %d logits' gradient summed over the batch", d);
            ok_close(got, want, (size_t)(T * V), 1e-6, 1e-5, what);
        }
        clt_trainer_destroy(t);
    }
    clt_model_destroy(m);
    free(targets), free(zero), free(want), free(got);
    ref_free(&f);
}

/* Dropout: the fraction dropped, inverted scaling, backward through the same mask, the same
 * mask on every device for a seed, and identity in evaluation. */
static void check_dropout(clt_runtime *rt)
{
    const size_t B = 10, D = 1000, n = B * D;
    clt_model *m = NULL;
    clt_model_create(&m, clt_shape1((int)D));
    clt_model_add(m, clt_dropout(0.3f));
    float *x = malloc(n * 4), *g = malloc(n * 4), *first = malloc(n * 4), *y = malloc(n * 4), *dx = malloc(n * 4);
    ref_rng rng = {99};
    ref_fill(&rng, x, n, 1.0);
    ref_fill(&rng, g, n, 1.0);
    float dummy[1];
    for (int d = 0; d < clt_runtime_device_count(rt); d++) {
        rig r = {rt, d, m, B, NULL, NULL, x, dummy, g, y, dx, dummy, 1, 1234};
        if (!ok_status(clt__worker_call(&rt->workers[d], rig_create_task, &r), "dropout: net on device %d", d)) continue;
        ok_status(rig_run(&r), "dropout: forward and backward on device %d", d);
        size_t dropped = 0;
        bool scaled = true, back = true;
        for (size_t i = 0; i < n; i++) {
            if (y[i] == 0.0f && x[i] != 0.0f) dropped++;
            else scaled &= fabsf(y[i] - x[i] / 0.7f) <= 1e-6f * (1 + fabsf(x[i]));
            float want = y[i] == 0.0f ? 0.0f : g[i] / 0.7f;
            back &= fabsf(dx[i] - want) <= 1e-6f * (1 + fabsf(want));
        }
        double frac = (double)dropped / (double)n;
        ok(fabs(frac - 0.3) < 0.02, "dropout p=0.3 on device %d drops %.4f of 10000 elements (0.3 +- 0.02)", d, frac);
        ok(scaled, "dropout on device %d scales kept elements by 1/(1-p)", d);
        ok(back, "dropout on device %d passes gradients through the same mask", d);
        if (d == 0) memcpy(first, y, n * 4);
        else ok(!memcmp(y, first, n * 4), "dropout on device %d draws the same mask as device 0", d);
        r.training = 0;
        r.g = NULL;
        ok_status(rig_run(&r), "dropout in evaluation on device %d", d);
        ok(!memcmp(y, x, n * 4), "dropout on device %d is the identity in evaluation", d);
        r.training = 1;
        r.seed = 4321;
        rig_run(&r);
        ok(memcmp(y, first, n * 4) != 0, "dropout on device %d draws another mask for another seed", d);
        clt__worker_call(&rt->workers[d], rig_destroy_task, &r);
    }
    free(x), free(g), free(first), free(y), free(dx);
    clt_model_destroy(m);
}

/* NaN in, NaN out, as in PyTorch: one NaN in the input x (x_nan) or in the output gradient g
 * (g_nan; -1: none), and the elements of y, dx and the parameter gradients (weights, then
 * bias) that PyTorch makes NaN ('N'; '.' finite). g is all ones; dx_at_nan is dx at x_nan
 * where PyTorch's choice shows there (ReLU's threshold_backward passes g at NaN, max pooling
 * routes the window's gradient to its NaN), NAN when the pattern says all. */
typedef struct {
    const char *name;
    clt_shape in;
    clt_layer_desc desc;
    size_t B;
    long x_nan, g_nan;
    const char *y, *dx, *grads;
    float dx_at_nan;
} nan_case;

static void check_nan(clt_runtime *rt, const nan_case *c)
{
    clt_model *m = NULL;
    clt_model_create(&m, c->in);
    if (!ok_status(clt_model_add(m, c->desc), "NaN %s: the layer fits its input shape", c->name)) {
        clt_model_destroy(m);
        return;
    }
    const clt__layer *l = &m->layers[0];
    size_t nx = c->B * l->in_numel, ny = c->B * l->out_numel, np = m->nparams;
    if (!ok(strlen(c->y) == ny && strlen(c->dx) == nx && strlen(c->grads) == np,
            "NaN %s: the patterns have one character per element", c->name)) {
        clt_model_destroy(m);
        return;
    }
    float *x = malloc(nx * 4), *g = malloc(ny * 4), *y = malloc(ny * 4), *dx = malloc(nx * 4);
    float *params = calloc(np + 1, 4), *grads = calloc(np + 1, 4);
    ref_rng rng = {31};
    ref_fill(&rng, x, nx, 1.0);
    ref_fill(&rng, params, np, 1.0);
    for (size_t i = 0; i < ny; i++) g[i] = 1.0f;
    if (c->x_nan >= 0) x[c->x_nan] = NAN;
    if (c->g_nan >= 0) g[c->g_nan] = NAN;
    for (int d = 0; d < clt_runtime_device_count(rt); d++) {
        rig r = {rt, d, m, c->B, NULL, NULL, x, params, g, y, dx, grads, 1, 7};
        if (!ok_status(clt__worker_call(&rt->workers[d], rig_create_task, &r), "NaN %s: net on device %d", c->name, d))
            continue;
        if (ok_status(rig_run(&r), "NaN %s: forward and backward on device %d", c->name, d)) {
            char what[128];
            snprintf(what, sizeof what, "NaN %s: device %d output", c->name, d);
            ok_nan_where(y, c->y, what);
            snprintf(what, sizeof what, "NaN %s: device %d input gradient", c->name, d);
            ok_nan_where(dx, c->dx, what);
            if (np) {
                snprintf(what, sizeof what, "NaN %s: device %d parameter gradients", c->name, d);
                ok_nan_where(grads, c->grads, what);
            }
            if (!isnan(c->dx_at_nan))
                ok(dx[c->x_nan] == c->dx_at_nan, "NaN %s: device %d input gradient at the NaN is %g (PyTorch's %g)",
                   c->name, d, dx[c->x_nan], c->dx_at_nan);
        }
        clt__worker_call(&rt->workers[d], rig_destroy_task, &r);
    }
    free(x), free(g), free(y), free(dx), free(params), free(grads);
    clt_model_destroy(m);
}

/* Every nan_case on every device. */
static void check_nans(clt_runtime *rt)
{
    const nan_case cases[] = {
        {"relu", clt_shape1(4), clt_relu(), 2, 1, -1, ".N......", "........", "", 1.0f},
        {"leaky_relu", clt_shape1(4), clt_leaky_relu(0.1f), 2, 1, -1, ".N......", "........", "", 0.1f},
        {"gelu", clt_shape1(4), clt_gelu(), 2, 1, -1, ".N......", ".N......", "", NAN},
        {"tanh", clt_shape1(4), clt_tanh(), 2, 1, -1, ".N......", ".N......", "", NAN},
        {"sigmoid", clt_shape1(4), clt_sigmoid(), 2, 1, -1, ".N......", ".N......", "", NAN},
        /* the NaN first in its window, larger numbers after it */
        {"maxpool_k2s2", clt_shape3(1, 4, 4), clt_maxpool2d(2, 2), 1, 0, -1, "N...",
         "................", "", 1.0f},
        /* the centre pixel, in all four overlapping windows */
        {"maxpool_k3s2", clt_shape3(1, 5, 5), clt_maxpool2d(3, 2), 1, 12, -1, "NNNN",
         ".........................", "", 4.0f},
        {"avgpool_k2s2", clt_shape3(1, 4, 4), clt_avgpool2d(2, 2), 1, 5, -1, "N...",
         "................", "", 0.25f},
        {"layernorm", clt_shape1(3), clt_layernorm(1e-5f), 2, 1, -1, "NNN...", "NNN...",
         "NNN...", NAN},
        {"layernorm, NaN in dy", clt_shape1(3), clt_layernorm(1e-5f), 2, -1, 1, "......",
         "NNN...", ".N..N.", NAN},
        {"linear", clt_shape1(3), clt_linear(2), 2, 1, -1, "NN..", "......", ".N..N...", NAN},
        /* 16 outputs: the bias gradient's vector path */
        {"linear, NaN in dy", clt_shape1(2), clt_linear(16), 1, -1, 5, "................",
         "NN", "..........NN.........................N..........", NAN},
        /* the corner pixel: read by output (0, 0) through weight (0, 0) only */
        {"conv2d", clt_shape3(1, 3, 3), clt_conv2d(2, 2, 1, 0), 1, 0, -1, "N...N...", ".........",
         "N...N.....", NAN},
        {"conv2d, NaN in dy", clt_shape3(1, 3, 3), clt_conv2d(2, 2, 1, 0), 1, -1, 0, "........",
         "NN.NN....", "NNNN....N.", NAN},
        /* a dropped NaN is NaN * 0 = NaN, as torch's dropout */
        {"dropout", clt_shape1(8), clt_dropout(0.5f), 1, 2, -1, "..N.....", "........", "", NAN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_nan(rt, &cases[i]);
}

int main(void)
{
    tap_require_device();
    clt_runtime *rt = NULL;
    if (!ok_status(clt_runtime_create(&rt, test_spec_all()), "runtime on all devices")) return tap_done();
    const layer_case cases[] = {
        {"linear", clt_shape1(7), clt_linear(5), 1, {{0}}},
        {"conv2d_k3s2p1", clt_shape3(2, 7, 6), clt_conv2d(3, 3, 2, 1), 1, {{0}}},
        {"conv2d_k2s1p0_nobias", clt_shape3(3, 5, 5), {CLT_LAYER_CONV2D, 4, 2, 1, 0, 0, 0.0f, 0}, 1, {{0}}},
        {"maxpool_k2s2", clt_shape3(2, 6, 6), clt_maxpool2d(2, 2), 1, {{0}}},
        {"maxpool_k3s2", clt_shape3(2, 7, 7), clt_maxpool2d(3, 2), 1, {{0}}},
        {"avgpool_k2s2", clt_shape3(2, 6, 6), clt_avgpool2d(2, 2), 1, {{0}}},
        {"avgpool_k3s1", clt_shape3(2, 5, 5), clt_avgpool2d(3, 1), 1, {{0}}},
        {"relu", clt_shape1(10), clt_relu(), 1, {{0}}},
        {"leaky_relu", clt_shape1(10), clt_leaky_relu(0.1f), 1, {{0}}},
        {"gelu", clt_shape1(10), clt_gelu(), 1, {{0}}},
        {"tanh", clt_shape1(10), clt_tanh(), 1, {{0}}},
        {"sigmoid", clt_shape1(10), clt_sigmoid(), 1, {{0}}},
        {"layernorm", clt_shape1(12), clt_layernorm(1e-5f), 1, {{0}}},
        {"layernorm_chw", clt_shape3(2, 3, 3), clt_layernorm(1e-3f), 1, {{0}}},
        /* sequences: time 7, 3 heads of 5 (C = 15), vocabulary 13 */
        {"seq_embedding", clt_shape1(7), clt_embedding(13, 15), 1, {{0}}},
        {"seq_position", clt_shape2(7, 15), clt_position_embedding(), 1, {{0}}},
        {"seq_attention", clt_shape2(7, 45), clt_causal_attention(3, 0.0f), 1, {{0}}},
        {"seq_gelu_tanh", clt_shape2(7, 15), clt_gelu_tanh(), 1, {{0}}},
        {"seq_layernorm_last", clt_shape2(7, 15), clt_layernorm_last(1e-5f), 1, {{0}}},
        {"seq_linear", clt_shape2(7, 15), clt_linear(11), 1, {{0}}},
        {"seq_residual", clt_shape2(7, 15), clt_residual_begin(), 1,
         {clt_linear(15), clt_gelu_tanh(), clt_linear(15), clt_residual_end()}},
        {"seq_tied_head", clt_shape1(7), clt_embedding(13, 15), 1, {clt_gelu_tanh(), clt_lm_head(13, 1)}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(rt, &cases[i]);
    check_seq_cross_entropy(rt);
    check_dropout(rt);
    check_nans(rt);
    clt_runtime_destroy(rt);
    return tap_done();
}
