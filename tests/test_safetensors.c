/* Safetensors files: a save and load give back the parameters bit for bit and leave the
 * optimizer alone; data- and tensor-parallel trainers write the file one device writes; a
 * checkpoint exports to the same file (library and `cltrain export`); every truncated, corrupt
 * or mismatched file is an error naming the problem with the parameters unchanged; and PyTorch
 * reads our files and we read its, giving the same predictions (tests/safetensors_torch.py, run
 * when a python3 with torch is found: CLT_PYTHON, python3, /usr/bin/python3). */
#include "internal.h"
#include "scratch.h"
#include "tap.h"

#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static clt_runtime *rt;
static char dir[256];

/* Predictions PyTorch and we must agree on: |ours - torch| <= TORCH_ATOL; a GPT's logits, after
 * attention's softmax and eleven LayerNorms, within GPT_TORCH_ATOL. */
#define TORCH_ATOL 1e-6
#define GPT_TORCH_ATOL 1e-5

static char *path_of(const char *name) { return test_path(dir, name); }

static uint8_t *slurp(const char *path, size_t *len)
{
    uint8_t *b = NULL;
    *len = 0;
    if (clt__file_read(path, "test file", &b, len) != CLT_OK) return NULL;
    return b;
}

static void spit(const char *path, const void *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return;
    if (len) fwrite(b, 1, len, f);
    fclose(f);
}

static bool same_file(const char *a, const char *b)
{
    size_t la, lb;
    uint8_t *x = slurp(a, &la), *y = slurp(b, &lb);
    bool same = x && y && la == lb && !memcmp(x, y, la);
    free(x), free(y);
    return same;
}

static void fill(float *v, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) v[i] = (float)((clt__splitmix64(&s) >> 40) % 2001) / 1000.0f - 1.0f;
}

static float *params_of(clt_trainer *t)
{
    size_t np = clt_model_param_count(t->model);
    float *p = malloc((np ? np : 1) * sizeof *p);
    if (t->ops->param_io(t, 0, np, p, 0, 0) != CLT_OK) diag("reading the parameters: %s", clt_last_error());
    return p;
}

static bool same_floats(const float *a, const float *b, size_t n) { return !memcmp(a, b, n * sizeof *a); }

/* ---- the models ---------------------------------------------------------------------------- */

static clt_model *build(clt_shape in, const clt_layer_desc *l, int n)
{
    clt_model *m;
    if (clt_model_create(&m, in) != CLT_OK) return NULL;
    for (int i = 0; i < n; i++)
        if (clt_model_add(m, l[i]) != CLT_OK) {
            diag("layer %d: %s", i, clt_last_error());
            clt_model_destroy(m);
            return NULL;
        }
    return m;
}
#define BUILD(in, ...) build((in), (clt_layer_desc[]){__VA_ARGS__}, \
                             (int)(sizeof((clt_layer_desc[]){__VA_ARGS__}) / sizeof(clt_layer_desc)))

/* The seed MLP and the cnn of tools/models.c, and one with every other kind of layer. */
static clt_model *seed_mlp(void)
{
    return BUILD(clt_shape1(1024), clt_linear(512), clt_relu(), clt_linear(256), clt_relu(),
                 clt_linear(128), clt_relu(), clt_linear(10));
}

static clt_model *cnn(void)
{
    return BUILD(clt_shape3(1, 32, 32), clt_conv2d(16, 5, 1, 2), clt_relu(), clt_maxpool2d(2, 2),
                 clt_conv2d(32, 5, 1, 2), clt_relu(), clt_maxpool2d(2, 2), clt_flatten(),
                 clt_linear(128), clt_relu(), clt_linear(10));
}

static clt_model *mixed(void)
{
    clt_layer_desc nobias = clt_linear(16);
    nobias.bias = 0;
    return BUILD(clt_shape3(2, 6, 6), clt_conv2d(4, 3, 1, 1), clt_layernorm(1e-5f), clt_gelu(),
                 clt_avgpool2d(2, 2), clt_flatten(), clt_linear(32), clt_layernorm(1e-3f),
                 clt_leaky_relu(0.1f), clt_dropout(0.2f), nobias, clt_tanh(), clt_linear(10),
                 clt_sigmoid());
}

static clt_train_params params(uint64_t seed)
{
    clt_train_params p = clt_train_params_default();
    p.optim = clt_sgd(0.05f, 0.9f, 0, 0);
    p.max_batch = 8;
    p.seed = seed;
    return p;
}

/* A GPT of odd sizes: vocabulary 13, block 7, 2 layers of 3 heads of 5. */
static clt_gpt_config small_gpt(float dropout, int tied)
{
    clt_gpt_config c = clt_gpt_config_default();
    c.vocab = 13, c.block = 7, c.layers = 2, c.heads = 3, c.embd = 15;
    c.dropout = dropout, c.tied = tied;
    return c;
}

static clt_model *gpt(const clt_gpt_config *c)
{
    clt_model *m;
    if (clt_model_create_gpt(&m, c) == CLT_OK) return m;
    diag("clt_model_create_gpt: %s", clt_last_error());
    return NULL;
}

/* n inputs for m: random floats, or for a model of tokens random ids (as floats, exact). */
static float *inputs(const clt_model *m, size_t n, uint64_t seed)
{
    size_t in = clt_shape_numel(clt_model_input_shape(m));
    float *x = malloc(n * in * sizeof *x);
    fill(x, n * in, seed);
    if (clt__model_takes_tokens(m))
        for (size_t i = 0; i < n * in; i++) x[i] = (float)((int)(1000.0f * (x[i] + 1.0f)) % m->layers[0].desc.count);
    return x;
}

static clt_status predict(clt_trainer *t, const float *x, size_t n, float *out)
{
    if (!clt__model_takes_tokens(t->model)) return clt_trainer_predict(t, x, n, out);
    size_t in = clt_shape_numel(clt_model_input_shape(t->model));
    int32_t *ids = malloc(n * in * sizeof *ids);
    for (size_t i = 0; i < n * in; i++) ids[i] = (int32_t)x[i];
    clt_status st = clt_trainer_predict_tokens(t, ids, n, out);
    free(ids);
    return st;
}

/* A few SGD steps with momentum, so the parameters are not the initial ones and the optimizer
 * has state. A model of tokens learns to predict the next of random ids. */
static bool train(clt_trainer *t, int steps)
{
    size_t in = clt_shape_numel(clt_model_input_shape(t->model));
    clt_shape os = clt_model_output_shape(t->model, -1);
    bool tokens = clt__model_takes_tokens(t->model);
    int classes = tokens ? os.dims[os.rank - 1] : (int)clt_shape_numel(os);
    int32_t *y = malloc(8 * in * sizeof *y), *ids = malloc(8 * in * sizeof *ids);
    bool good = true;
    for (int s = 0; s < steps && good; s++) {
        float *x = inputs(t->model, 8, 100 + (uint64_t)s);
        for (size_t i = 0; i < 8 * in; i++) {
            ids[i] = (int32_t)x[i];
            y[i] = (int32_t)((s * 3 + i) % (size_t)classes);
        }
        good = (tokens ? clt_trainer_step_tokens(t, ids, y, 8, NULL) : clt_trainer_step(t, x, y, 8, NULL)) == CLT_OK;
        if (!good) diag("step %d: %s", s, clt_last_error());
        free(x);
    }
    free(y), free(ids);
    return good;
}

/* ---- round trip ---------------------------------------------------------------------------- */

/* Two trainers of m from two seeds (false, with neither, when one fails). */
static bool two_trainers(const char *name, clt_model *m, uint64_t seed, clt_trainer **a, clt_trainer **b)
{
    clt_train_params pa = params(seed), pb = params(seed + 1);
    if (!ok_status(clt_trainer_create(a, rt, m, &pa), "%s: trainer", name)) return false;
    if (ok_status(clt_trainer_create(b, rt, m, &pb), "%s: a second trainer (another seed)", name)) return true;
    clt_trainer_destroy(*a);
    return false;
}

/* One tensor a file must hold. */
typedef struct {
    char name[48];
    int rank;
    uint64_t dims[4];
} named;

__attribute__((format(printf, 5, 6))) static void put(named *out, int *n, uint64_t d0, uint64_t d1,
                                                      const char *fmt, ...)
{
    named *t = &out[(*n)++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->rank = d1 ? 2 : 1, t->dims[0] = d0, t->dims[1] = d1;
}

/* The state_dict of nanoGPT's GPT of c, written out from its model.py (bias=True): names and
 * shapes; lm_head.weight is there tied or not. Returns the count (out holds 16 + 12 layers). */
static int gpt_state_dict(const clt_gpt_config *c, named *out)
{
    uint64_t V = (uint64_t)c->vocab, T = (uint64_t)c->block, C = (uint64_t)c->embd;
    int n = 0;
    put(out, &n, V, C, "transformer.wte.weight");
    put(out, &n, T, C, "transformer.wpe.weight");
    for (int i = 0; i < c->layers; i++) {
        static const char *const ln[2] = {"ln_1", "ln_2"};
        for (int k = 0; k < 2; k++) {
            put(out, &n, C, 0, "transformer.h.%d.%s.weight", i, ln[k]);
            put(out, &n, C, 0, "transformer.h.%d.%s.bias", i, ln[k]);
        }
        put(out, &n, 3 * C, C, "transformer.h.%d.attn.c_attn.weight", i);
        put(out, &n, 3 * C, 0, "transformer.h.%d.attn.c_attn.bias", i);
        put(out, &n, C, C, "transformer.h.%d.attn.c_proj.weight", i);
        put(out, &n, C, 0, "transformer.h.%d.attn.c_proj.bias", i);
        put(out, &n, 4 * C, C, "transformer.h.%d.mlp.c_fc.weight", i);
        put(out, &n, 4 * C, 0, "transformer.h.%d.mlp.c_fc.bias", i);
        put(out, &n, C, 4 * C, "transformer.h.%d.mlp.c_proj.weight", i);
        put(out, &n, C, 0, "transformer.h.%d.mlp.c_proj.bias", i);
    }
    put(out, &n, C, 0, "transformer.ln_f.weight");
    put(out, &n, C, 0, "transformer.ln_f.bias");
    put(out, &n, V, C, "lm_head.weight");
    return n;
}

/* What the file of m must hold: the Sequential's "i.weight" and "i.bias", or for a GPT (g not
 * NULL) nanoGPT's names. */
static int expected_tensors(const clt_model *m, const clt_gpt_config *g, named *out)
{
    if (g) return gpt_state_dict(g, out);
    int n = 0;
    for (int i = 0; i < m->nlayers; i++) {
        const clt__layer *l = &m->layers[i];
        for (int k = 0; k < 2; k++) {
            clt_shape sh = k ? l->b_shape : l->w_shape;
            if (!(k ? l->b_count : l->w_count)) continue;
            named *t = &out[n++];
            snprintf(t->name, sizeof t->name, "%d.%s", i, k ? "bias" : "weight");
            t->rank = sh.rank;
            for (int d = 0; d < sh.rank; d++) t->dims[d] = (uint64_t)sh.dims[d];
        }
    }
    return n;
}

/* The JSON of cltrain.model a GPT's file holds: nanoGPT's GPTConfig, and eps. */
static void gpt_json(const clt_gpt_config *c, char *buf, size_t cap)
{
    snprintf(buf, cap, "{\"type\":\"gpt\",\"vocab_size\":%d,\"block_size\":%d,\"n_layer\":%d,"
             "\"n_head\":%d,\"n_embd\":%d,\"dropout\":%.9g,\"bias\":true,\"tied\":%s,\"eps\":%.9g}",
             c->vocab, c->block, c->layers, c->heads, c->embd, (double)c->dropout,
             c->tied ? "true" : "false", (double)c->eps);
}

static void check_round_trip(const char *name, clt_model *m, const clt_gpt_config *g)
{
    clt_trainer *a, *b;
    if (!two_trainers(name, m, 1, &a, &b)) return;
    ok(train(a, 3) && train(b, 2), "%s: both trained a few steps", name);
    const char *path = path_of("round.safetensors");
    ok_status(clt_trainer_save_safetensors(a, path), "%s: save", name);
    size_t np = clt_model_param_count(m);
    float *pa0 = params_of(a), *pb0 = params_of(b);
    float *mb0 = malloc(np * sizeof *mb0), *mb1 = malloc(np * sizeof *mb1);
    b->ops->state_io(b, 0, 0, np, mb0, 0);
    long steps = clt_trainer_step_count(b);
    ok(!same_floats(pa0, pb0, np), "%s: the trainers' parameters differ before the load", name);
    ok_status(clt_trainer_load_safetensors(b, path), "%s: load into the second trainer", name);
    float *pb1 = params_of(b);
    b->ops->state_io(b, 0, 0, np, mb1, 0);
    ok(same_floats(pa0, pb1, np), "%s: the %zu parameters come back bit for bit", name, np);
    ok(same_floats(mb0, mb1, np) && clt_trainer_step_count(b) == steps,
       "%s: the optimizer state (momentum) and the step count (%ld) are untouched", name, steps);

    size_t out = clt_shape_numel(clt_model_output_shape(m, -1));
    float *x = inputs(m, 5, 77), *ya = malloc(5 * out * sizeof *ya), *yb = malloc(5 * out * sizeof *yb);
    ok(predict(a, x, 5, ya) == CLT_OK && predict(b, x, 5, yb) == CLT_OK &&
       same_floats(ya, yb, 5 * out), "%s: predictions after the load are bitwise the saver's", name);

    /* the file itself: the torch names and shapes, F32, and the model in the metadata */
    size_t len;
    uint8_t *buf = slurp(path, &len);
    clt__safetensors s;
    if (ok_status(clt__safetensors_parse(buf, len, path, &s), "%s: the file parses", name)) {
        bool good = true;
        named *want = malloc((size_t)(2 * m->nlayers + 1) * sizeof *want);
        int expect = expected_tensors(m, g, want);
        for (int i = 0; i < expect; i++) {
            const clt__st_tensor *t = clt__safetensors_find(&s, want[i].name);
            bool same = t && !strcmp(t->dtype, "F32") && t->rank == want[i].rank;
            for (int d = 0; same && d < t->rank; d++) same = t->dims[d] == want[i].dims[d];
            if (!same) diag("%s: tensor %s is not F32 of its shape", name, want[i].name);
            good &= same;
        }
        free(want);
        const char *model = NULL, *format = NULL;
        for (int i = 0; i < s.nmeta; i++) {
            if (!strcmp(s.meta[2 * i], "cltrain.model")) model = s.meta[2 * i + 1];
            if (!strcmp(s.meta[2 * i], "format")) format = s.meta[2 * i + 1];
        }
        ok(good && s.n == expect, "%s: %d tensors, named and shaped as the %s's state_dict",
           name, s.n, g ? "nanoGPT GPT" : "Sequential");
        char gj[256] = "";
        if (g) gpt_json(g, gj, sizeof gj);
        ok(format && !strcmp(format, "pt") && model &&
           (g ? !strcmp(model, gj) : !strncmp(model, "{\"input\":[", 10)),
           "%s: __metadata__ has format 'pt' and the model (%.160s)", name, model ? model : "none");
        if (g) {
            const clt__st_tensor *wte = clt__safetensors_find(&s, "transformer.wte.weight");
            const clt__st_tensor *head = clt__safetensors_find(&s, "lm_head.weight");
            size_t nb = (size_t)g->vocab * (size_t)g->embd * 4;
            bool equal = wte && head && !memcmp(wte->data, head->data, nb);
            ok(g->tied ? equal : wte && head && !equal, "%s: lm_head.weight %s transformer.wte.weight",
               name, g->tied ? "holds the bits of (tied)" : "is its own, unlike");
        }
        clt__safetensors_free(&s);
    }
    free(buf);
    free(x), free(ya), free(yb);
    free(pa0), free(pb0), free(pb1), free(mb0), free(mb1);
    clt_trainer_destroy(a);
    clt_trainer_destroy(b);
}

static int temp_files_left(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return n;
}

/* A save that runs out of space leaves the previous file as it was (the write is atomic). */
static void check_failed_save(clt_model *m)
{
    clt_train_params p = params(8);
    clt_trainer *t;
    if (!ok_status(clt_trainer_create(&t, rt, m, &p), "a trainer for the failed save")) return;
    const char *path = path_of("full.safetensors");
    ok_status(clt_trainer_save_safetensors(t, path), "a first file");
    size_t len0, len1;
    uint8_t *before = slurp(path, &len0);
    train(t, 1);
    /* a full disk: the file size limit stops the write midway (EFBIG instead of ENOSPC); the
     * TAP log written so far is far below it */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 1 << 20;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &lim);
    clt_status st = clt_trainer_save_safetensors(t, path);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    ok(st == CLT_ERR_IO && strstr(clt_last_error(), "saving safetensors file") &&
       strstr(clt_last_error(), "full.safetensors"),
       "a save that runs out of space is CLT_ERR_IO naming the file (%s)", clt_last_error());
    uint8_t *after = slurp(path, &len1);
    ok(before && after && len0 == len1 && !memcmp(before, after, len0),
       "the previous file is intact (%zu bytes)", len0);
    ok(temp_files_left() == 0, "no temporary file is left behind");
    free(before), free(after);
    clt_trainer_destroy(t);
}

/* ---- bad files ------------------------------------------------------------------------------ */

/* One tensor entry of a hand-made header. */
typedef struct {
    const char *name, *dtype;
    int rank;
    uint64_t dims[4];
    uint64_t begin, end;
} entry;

/* A file of the given header text and `data` bytes of data. */
static void write_raw(const char *path, const char *header, size_t data)
{
    size_t hl = strlen(header);
    uint8_t *b = calloc(8 + hl + data + 1, 1);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, header, hl);
    for (size_t i = 0; i < data; i++) b[8 + hl + i] = (uint8_t)(i * 7);   /* small floats */
    spit(path, b, 8 + hl + data);
    free(b);
}

/* The header of entries e[0..n) (and the extra JSON text after them, if any). */
static void write_entries(const char *path, const entry *e, int n, const char *extra, size_t data)
{
    char h[4096];
    size_t len = (size_t)snprintf(h, sizeof h, "{");
    for (int i = 0; i < n; i++) {
        len += (size_t)snprintf(h + len, sizeof h - len, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                                i ? "," : "", e[i].name, e[i].dtype);
        for (int d = 0; d < e[i].rank; d++)
            len += (size_t)snprintf(h + len, sizeof h - len, d ? ",%llu" : "%llu", (unsigned long long)e[i].dims[d]);
        len += (size_t)snprintf(h + len, sizeof h - len, "],\"data_offsets\":[%llu,%llu]}",
                                (unsigned long long)e[i].begin, (unsigned long long)e[i].end);
    }
    snprintf(h + len, sizeof h - len, "%s}", extra ? extra : "");
    write_raw(path, h, data);
}

/* The small model's tensors, laid out as our writer lays them. */
enum { NE = 6 };
static const entry GOOD[NE] = {
    {"0.weight", "F32", 2, {16, 8}, 0, 512},
    {"0.bias", "F32", 1, {16}, 512, 576},
    {"2.weight", "F32", 1, {16}, 576, 640},
    {"2.bias", "F32", 1, {16}, 640, 704},
    {"3.weight", "F32", 2, {4, 16}, 704, 960},
    {"3.bias", "F32", 1, {4}, 960, 976},
};
enum { GOOD_DATA = 976 };

static void check_bad_files(void)
{
    clt_model *m = BUILD(clt_shape1(8), clt_linear(16), clt_relu(), clt_layernorm(1e-5f), clt_linear(4));
    clt_train_params p = params(3);
    clt_trainer *t;
    if (!ok_status(clt_trainer_create(&t, rt, m, &p), "the small model's trainer")) {
        clt_model_destroy(m);
        return;
    }
    size_t np = clt_model_param_count(m);
    float *before = params_of(t);
    const char *path = path_of("bad.safetensors"), *orig = path_of("orig.safetensors");
    ok_status(clt_trainer_save_safetensors(t, orig), "the small model's own parameters saved");

    /* our layout, written by hand: it loads (the writer and these cases agree) */
    write_entries(path, GOOD, NE, NULL, GOOD_DATA);
    ok(np * 4 == GOOD_DATA, "the small model has %zu parameters (%d bytes)", np, GOOD_DATA);
    ok_status(clt_trainer_load_safetensors(t, path), "a hand-made file of the model's tensors loads");
    float *loaded = params_of(t);
    float w0;
    uint8_t b4[4] = {0, 7, 14, 21};
    memcpy(&w0, b4, 4);
    ok(loaded[0] == w0 && !same_floats(loaded, before, np), "  ... and sets the parameters from its bytes");
    free(loaded);
    loaded = NULL;
    ok(same_file(path_of("orig.safetensors"), orig) && clt_trainer_load_safetensors(t, orig) == CLT_OK &&
       (loaded = params_of(t)) && same_floats(loaded, before, np), "  ... and the saved file puts them back");
    free(loaded);

    struct {
        const char *what;
        clt_status want;
        const char *needle;
        int kind;            /* 0: entries, 1: raw header, 2: raw bytes */
        entry e[NE + 1];
        int n;
        const char *text;    /* kind 1: the header; kind 0: extra JSON */
        size_t data;         /* kind 0, 1: data bytes; kind 2: bytes */
    } cases[] = {
        {"an empty file", CLT_ERR_FORMAT, "shorter than the 8-byte", 2, {{0}}, 0, "", 0},
        {"a 5-byte file", CLT_ERR_FORMAT, "shorter than the 8-byte", 2, {{0}}, 0, "\x10\0\0\0\0", 5},
        {"a header length past the end of the file", CLT_ERR_FORMAT, "the header length is", 2, {{0}}, 0,
         "\xff\0\0\0\0\0\0\0{}", 10},
        {"a header length of 2^64 - 1", CLT_ERR_FORMAT, "the header length is", 2, {{0}}, 0,
         "\xff\xff\xff\xff\xff\xff\xff\xff{}", 10},
        {"a truncated data section", CLT_ERR_FORMAT, "not a range inside the data section", 0,
         {GOOD[0], GOOD[1], GOOD[2], GOOD[3], GOOD[4], GOOD[5]}, NE, NULL, GOOD_DATA - 4},
        {"trailing bytes after the last tensor", CLT_ERR_FORMAT, "no trailing bytes", 0,
         {GOOD[0], GOOD[1], GOOD[2], GOOD[3], GOOD[4], GOOD[5]}, NE, NULL, GOOD_DATA + 4},
        {"a header that is not JSON", CLT_ERR_FORMAT, "not a safetensors file", 1, {{0}}, 0, "PK\x03\x04", 0},
        {"JSON with a missing value", CLT_ERR_FORMAT, "the header is not valid", 1, {{0}}, 0,
         "{\"0.weight\":{\"dtype\":\"F32\",\"shape\":[16,8],\"data_offsets\":[0,]}}", 512},
        {"JSON cut short", CLT_ERR_FORMAT, "the header is not valid", 1, {{0}}, 0,
         "{\"0.weight\":{\"dtype\":\"F32\",\"shape\":[16,8]", 512},
        {"a bad escape", CLT_ERR_FORMAT, "unknown escape", 1, {{0}}, 0, "{\"0.w\\qeight\":{}}", 0},
        {"invalid UTF-8", CLT_ERR_FORMAT, "not valid UTF-8", 1, {{0}}, 0, "{\"0.w\xc3\x28\":{}}", 0},
        {"a negative offset", CLT_ERR_FORMAT, "expected a non-negative integer", 1, {{0}}, 0,
         "{\"0.weight\":{\"dtype\":\"F32\",\"shape\":[16,8],\"data_offsets\":[-1,511]}}", 512},
        {"an unknown key in a tensor", CLT_ERR_FORMAT, "unknown key 'offsets'", 1, {{0}}, 0,
         "{\"0.weight\":{\"dtype\":\"F32\",\"shape\":[16,8],\"offsets\":[0,512]}}", 512},
        {"a metadata value that is not a string", CLT_ERR_FORMAT, "values are strings", 1, {{0}}, 0,
         "{\"__metadata__\":{\"epochs\":3}}", 0},
        {"a tensor named twice", CLT_ERR_FORMAT, "appears twice", 0,
         {GOOD[0], GOOD[1], GOOD[2], GOOD[3], GOOD[4], GOOD[5], {"0.bias", "F32", 1, {16}, 976, 1040}},
         NE + 1, NULL, GOOD_DATA + 64},
        {"dtype F16", CLT_ERR_FORMAT, "tensor '0.weight' is F16", 0,
         {{"0.weight", "F16", 2, {16, 8}, 0, 256}, {"0.bias", "F32", 1, {16}, 256, 320},
          {"2.weight", "F32", 1, {16}, 320, 384}, {"2.bias", "F32", 1, {16}, 384, 448},
          {"3.weight", "F32", 2, {4, 16}, 448, 704}, {"3.bias", "F32", 1, {4}, 704, 720}}, NE, NULL, 720},
        {"an unknown dtype", CLT_ERR_FORMAT, "unknown dtype 'F33'", 0,
         {{"0.weight", "F33", 2, {16, 8}, 0, 512}, GOOD[1], GOOD[2], GOOD[3], GOOD[4], GOOD[5]}, NE, NULL, GOOD_DATA},
        {"a wrong shape", CLT_ERR_SHAPE, "'3.weight' has shape (16, 4), the model's (layer 3, linear) is (4, 16)", 0,
         {GOOD[0], GOOD[1], GOOD[2], GOOD[3], {"3.weight", "F32", 2, {16, 4}, 704, 960}, GOOD[5]}, NE, NULL, GOOD_DATA},
        {"a bias of another length", CLT_ERR_SHAPE, "'0.bias' has shape (15,), the model's (layer 0, linear) is (16,)", 0,
         {GOOD[0], {"0.bias", "F32", 1, {15}, 512, 572}, {"2.weight", "F32", 1, {16}, 572, 636},
          {"2.bias", "F32", 1, {16}, 636, 700}, {"3.weight", "F32", 2, {4, 16}, 700, 956},
          {"3.bias", "F32", 1, {4}, 956, 972}}, NE, NULL, 972},
        {"a missing tensor", CLT_ERR_SHAPE, "tensor '2.bias' (layer 2's layernorm bias, shape (16,)) is missing", 0,
         {GOOD[0], GOOD[1], GOOD[2], {"3.weight", "F32", 2, {4, 16}, 640, 896}, {"3.bias", "F32", 1, {4}, 896, 912}},
         NE - 1, NULL, 912},
        {"an extra tensor", CLT_ERR_SHAPE, "tensor 'head.weight' is not one of the model's (0.weight, 0.bias", 0,
         {GOOD[0], GOOD[1], GOOD[2], GOOD[3], GOOD[4], GOOD[5], {"head.weight", "F32", 1, {4}, 976, 992}},
         NE + 1, NULL, GOOD_DATA + 16},
        {"offsets past the data section", CLT_ERR_FORMAT, "'3.bias': data_offsets [960, 1040] are not a range", 0,
         {GOOD[0], GOOD[1], GOOD[2], GOOD[3], GOOD[4], {"3.bias", "F32", 1, {20}, 960, 1040}}, NE, NULL, GOOD_DATA},
        {"offsets that end before they begin", CLT_ERR_FORMAT, "'0.bias': data_offsets [576, 512] are not a range", 0,
         {GOOD[0], {"0.bias", "F32", 1, {16}, 576, 512}, GOOD[2], GOOD[3], GOOD[4], GOOD[5]}, NE, NULL, GOOD_DATA},
        {"offsets that do not hold the shape", CLT_ERR_FORMAT, "hold 60 bytes, its shape and dtype F32 need 64", 0,
         {GOOD[0], {"0.bias", "F32", 1, {16}, 512, 572}, GOOD[2], GOOD[3], GOOD[4], GOOD[5]}, NE, NULL, GOOD_DATA},
        {"overlapping tensors", CLT_ERR_FORMAT, "overlap", 0,
         {GOOD[0], {"0.bias", "F32", 1, {16}, 448, 512}, GOOD[2], GOOD[3], GOOD[4], GOOD[5]}, NE, NULL, GOOD_DATA},
        {"a hole in the data section", CLT_ERR_FORMAT, "bytes [512, 576) of the data section belong to no tensor", 0,
         {GOOD[0], GOOD[2], GOOD[3], GOOD[4], GOOD[5]}, NE - 1, NULL, GOOD_DATA},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        if (cases[c].kind == 0) write_entries(path, cases[c].e, cases[c].n, cases[c].text, cases[c].data);
        else if (cases[c].kind == 1) write_raw(path, cases[c].text, cases[c].data);
        else spit(path, cases[c].text, cases[c].data);
        ok_error(clt_trainer_load_safetensors(t, path), cases[c].want, cases[c].needle, "%s: %s",
                 cases[c].what, clt_status_name(cases[c].want));
        float *after = params_of(t);
        ok(same_floats(before, after, np), "  ... and the parameters are bit for bit unchanged");
        free(after);
    }
    /* the parser on every truncation of a real file, and on changed header bytes: an error
     * that is CLT_ERR_FORMAT, or a parse (never a crash, another status or a read past the end) */
    size_t len;
    uint8_t *good = slurp(orig, &len), *copy = malloc(len ? len : 1);
    int truncations = 0, changes = 0, odd = 0;
    for (size_t cut = 0; good && cut < len; cut++) {
        uint8_t *piece = malloc(cut ? cut : 1);   /* exactly cut bytes: valgrind sees a read past them */
        memcpy(piece, good, cut);
        clt__safetensors s;
        clt_status st = clt__safetensors_parse(piece, cut, "cut", &s);
        truncations += st == CLT_ERR_FORMAT;
        if (st == CLT_OK) clt__safetensors_free(&s);
        free(piece);
    }
    size_t hlen = good && len >= 8 ? (size_t)good[0] | (size_t)good[1] << 8 : 0;
    static const uint8_t swaps[] = {0x00, '"', '}', ']', ',', '\\', '9', 0xff};
    for (size_t at = 0; at < 8 + hlen && at < len; at++)
        for (size_t k = 0; k < sizeof swaps; k++) {
            if (good[at] == swaps[k]) continue;
            memcpy(copy, good, len);
            copy[at] = swaps[k];
            clt__safetensors s;
            clt_status st = clt__safetensors_parse(copy, len, "changed", &s);
            changes++;
            odd += st != CLT_OK && st != CLT_ERR_FORMAT;
            if (st == CLT_OK) clt__safetensors_free(&s);
        }
    ok(good && truncations == (int)len, "every one of the %zu truncations of a file is CLT_ERR_FORMAT", len);
    ok(changes > 1000 && odd == 0, "%d changes of its %zu header bytes parse or are CLT_ERR_FORMAT", changes, hlen);
    free(good), free(copy);
    ok_error(clt_trainer_load_safetensors(t, path_of("absent.safetensors")), CLT_ERR_IO, "absent.safetensors",
             "a missing file is CLT_ERR_IO naming it");
    ok_error(clt_trainer_load_safetensors(t, NULL), CLT_ERR_INVALID_ARG, "path is NULL", "a NULL path");
    ok_error(clt_trainer_save_safetensors(NULL, path), CLT_ERR_INVALID_ARG, "trainer is NULL", "a NULL trainer");
    ok_error(clt_trainer_save_safetensors(t, path_of("no/such/dir/x.safetensors")), CLT_ERR_IO,
             "no/such/dir", "saving into a missing folder is CLT_ERR_IO naming the path");
    free(before);
    clt_trainer_destroy(t);
    clt_model_destroy(m);
}

/* ---- parallel trainers and checkpoints ------------------------------------------------------ */

/* What one device writes is what data- and tensor-parallel trainers write: the file of one
 * device, loaded into them and saved again, comes back byte for byte. */
static void check_parallel(void)
{
    if (test_ndev() < 2 || !test_parallel_ok(3)) {
        skip(TEST_NO_PARALLEL, "data- and tensor-parallel trainers write one device's file");
        return;
    }
    clt_model *m = seed_mlp();
    clt_runtime *one = NULL, *three = NULL;
    clt_trainer *t1 = NULL;
    clt_train_params p = params(4);
    if (!ok_status(clt_runtime_create(&one, test_spec_one()), "one device") ||
        !ok_status(clt_runtime_create(&three, test_spec_n(3)), "three devices") ||
        !ok_status(clt_trainer_create(&t1, one, m, &p), "the seed MLP on one device"))
        goto out;
    train(t1, 2);
    const char *ref = path_of("one.safetensors");
    ok_status(clt_trainer_save_safetensors(t1, ref), "one device saves");
    static const struct {
        clt_parallel mode;
        const char *what;
    } modes[] = {{CLT_PARALLEL_DATA, "data parallel"}, {CLT_PARALLEL_TENSOR, "tensor parallel"}};
    for (int k = 0; k < 2; k++) {
        clt_train_params q = params(9);
        q.parallel = modes[k].mode;
        clt_trainer *t;
        if (!ok_status(clt_trainer_create(&t, three, m, &q), "%s on 3 devices", modes[k].what)) continue;
        const char *own = path_of("own.safetensors"), *again = path_of("again.safetensors");
        const char *fresh = path_of("fresh.safetensors");
        clt_trainer *s1;
        clt_train_params q1 = params(9);
        /* the same initial parameters on one device give the same file */
        if (clt_trainer_create(&s1, one, m, &q1) == CLT_OK) {
            clt_trainer_save_safetensors(s1, fresh);
            clt_trainer_destroy(s1);
        }
        ok(clt_trainer_save_safetensors(t, own) == CLT_OK && same_file(own, fresh),
           "%s: the initial parameters' file is one device's, byte for byte", modes[k].what);
        ok_status(clt_trainer_load_safetensors(t, ref), "%s: loads one device's file", modes[k].what);
        ok(clt_trainer_save_safetensors(t, again) == CLT_OK && same_file(ref, again),
           "%s: and saves it back byte for byte (scattered to the slices and gathered)", modes[k].what);
        clt_trainer_destroy(t);
    }
out:
    clt_trainer_destroy(t1);
    clt_runtime_destroy(three);
    clt_runtime_destroy(one);
    clt_model_destroy(m);
}

/* Runs a shell command; its exit status (-1 when it did not run). */
static int run(const char *cmd)
{
    int rc = system(cmd);
    return rc == -1 || !WIFEXITED(rc) ? -1 : WEXITSTATUS(rc);
}

static void check_export(void)
{
    clt_model *m = cnn(), *other = seed_mlp();
    clt_train_params p = params(5);
    clt_trainer *t;
    if (!ok_status(clt_trainer_create(&t, rt, m, &p), "the cnn")) goto out;
    train(t, 2);
    const char *ckpt = path_of("run.ckpt"), *direct = path_of("direct.safetensors");
    const char *exported = path_of("exported.safetensors");
    ok_status(clt_trainer_save(t, ckpt), "a checkpoint");
    ok_status(clt_trainer_save_safetensors(t, direct), "the trainer's safetensors file");
    ok_status(clt_checkpoint_export_safetensors(ckpt, exported, NULL), "the checkpoint exported");
    ok(same_file(direct, exported), "  ... gives the trainer's file byte for byte");
    ok_status(clt_checkpoint_export_safetensors(ckpt, exported, m), "exported checking the model");
    ok_error(clt_checkpoint_export_safetensors(ckpt, exported, other), CLT_ERR_SHAPE, "differ",
             "exported expecting another model: CLT_ERR_SHAPE");
    ok_error(clt_checkpoint_export_safetensors(path_of("absent.ckpt"), exported, NULL), CLT_ERR_IO,
             "absent.ckpt", "a missing checkpoint: CLT_ERR_IO naming it");
    ok_error(clt_checkpoint_export_safetensors(direct, exported, NULL), CLT_ERR_FORMAT,
             "not a cltrain checkpoint", "a safetensors file is not a checkpoint");

    /* the command, as test_cli.sh finds it (CLTRAIN, or ./tools/cltrain from the build folder) */
    const char *cltrain = getenv("CLTRAIN") ? getenv("CLTRAIN") : "./tools/cltrain";
    if (access(cltrain, X_OK) != 0) {
        skip("no cltrain binary (set CLTRAIN)", "cltrain export");
        goto out_t;
    }
    char cmd[2048];
    const char *cli = path_of("cli.safetensors");
    snprintf(cmd, sizeof cmd, "%s export --checkpoint '%s' --safetensors '%s' >/dev/null", cltrain, ckpt, cli);
    ok(run(cmd) == 0 && same_file(cli, direct), "cltrain export writes the trainer's file");
    snprintf(cmd, sizeof cmd, "%s export --checkpoint='%s' --safetensors='%s' --model cnn >/dev/null", cltrain, ckpt, cli);
    ok(run(cmd) == 0 && same_file(cli, direct), "cltrain export --opt=value --model cnn");
    snprintf(cmd, sizeof cmd, "%s export --checkpoint '%s' --safetensors '%s' --model seed-mlp 2>/dev/null", cltrain, ckpt, cli);
    ok(run(cmd) == 1, "cltrain export --model of another model exits 1");
    snprintf(cmd, sizeof cmd, "%s export --help | grep -q '^usage: cltrain export'", cltrain);
    ok(run(cmd) == 0, "cltrain export --help prints its usage to stdout, exit 0");
    snprintf(cmd, sizeof cmd, "%s export -h 2>&1 >/dev/null | grep -q .", cltrain);
    ok(run(cmd) == 1, "  ... and nothing to stderr");
    snprintf(cmd, sizeof cmd, "%s export --checkpoint '%s' 2>/dev/null >/dev/null", cltrain, ckpt);
    ok(run(cmd) == 2, "cltrain export without --safetensors exits 2");
    snprintf(cmd, sizeof cmd, "%s export --bogus 2>&1 >/dev/null | grep -q \"unknown option '--bogus'\"", cltrain);
    ok(run(cmd) == 0, "cltrain export --bogus names the option on stderr");
    snprintf(cmd, sizeof cmd, "%s export --bogus >/dev/null 2>&1", cltrain);
    ok(run(cmd) == 2, "  ... and exits 2");
out_t:
    clt_trainer_destroy(t);
out:
    clt_model_destroy(m);
    clt_model_destroy(other);
}

/* ---- GPT files ------------------------------------------------------------------------------ */

/* src's tensors and metadata again at dst, with one change: `drop` left out, `transpose` given
 * its two dimensions the other way round, or `flip` with its first float's lowest bit changed. */
static bool rewrite(const char *src, const char *dst, const char *drop, const char *transpose,
                    const char *flip)
{
    size_t len;
    uint8_t *buf = slurp(src, &len);
    clt__safetensors s;
    if (!buf || clt__safetensors_parse(buf, len, src, &s) != CLT_OK) {
        free(buf);
        return false;
    }
    clt__st_out *outs = malloc((size_t)s.n * sizeof *outs);
    uint64_t (*dims)[CLT__ST_MAX_RANK] = malloc((size_t)s.n * sizeof *dims);
    uint8_t *flipped = NULL;
    int n = 0;
    for (int i = 0; i < s.n; i++) {
        const clt__st_tensor *t = &s.t[i];
        if (drop && !strcmp(t->name, drop)) continue;
        memcpy(dims[n], t->dims, sizeof dims[n]);
        if (transpose && !strcmp(t->name, transpose)) dims[n][0] = t->dims[1], dims[n][1] = t->dims[0];
        outs[n] = (clt__st_out){t->name, t->rank, dims[n], t->data};
        if (flip && !strcmp(t->name, flip)) {
            flipped = malloc((size_t)(t->end - t->begin));
            memcpy(flipped, t->data, (size_t)(t->end - t->begin));
            flipped[0] ^= 1;
            outs[n].data_le = flipped;
        }
        n++;
    }
    bool good = clt__safetensors_write(dst, outs, n, (const char *const *)s.meta, s.nmeta) == CLT_OK;
    free(flipped), free(dims), free(outs);
    clt__safetensors_free(&s);
    free(buf);
    return good;
}

/* A GPT's file that lacks a tensor, holds one of another shape, or whose tied copies differ is
 * CLT_ERR_SHAPE naming the tensors, and changes nothing; a checkpoint exports to the trainer's
 * file; a model that is neither a Sequential nor the GPT is CLT_ERR_UNSUPPORTED. */
static void check_gpt_files(void)
{
    clt_gpt_config c = small_gpt(0.0f, 1);
    clt_model *m = gpt(&c);
    clt_train_params p = params(12);
    clt_trainer *t;
    if (!m || !ok_status(clt_trainer_create(&t, rt, m, &p), "the small GPT's trainer")) {
        clt_model_destroy(m);
        return;
    }
    train(t, 2);
    size_t np = clt_model_param_count(m);
    float *before = params_of(t);
    const char *orig = path_of("gpt.safetensors"), *bad = path_of("gpt-bad.safetensors");
    ok_status(clt_trainer_save_safetensors(t, orig), "the small GPT saved");
    /* the layers: 0 wte, 1 wpe, block 0 in 2..13, block 1 in 14..25 (c_fc 22), 26 ln_f, 27 the head */
    static const struct {
        const char *what, *drop, *transpose, *flip, *needle;
    } cases[] = {
        {"a missing bias", "transformer.h.1.mlp.c_fc.bias", NULL, NULL,
         "tensor 'transformer.h.1.mlp.c_fc.bias' (layer 22's linear bias, shape (60,)) is missing"},
        {"a missing lm_head.weight (tied)", "lm_head.weight", NULL, NULL,
         "tensor 'lm_head.weight' (layer 27's lm_head weight, shape (13, 15)) is missing"},
        {"c_attn's weight transposed", NULL, "transformer.h.0.attn.c_attn.weight", NULL,
         "tensor 'transformer.h.0.attn.c_attn.weight' has shape (15, 45), the model's (layer 4, "
         "linear) is (45, 15)"},
        {"tied copies that differ", NULL, NULL, "lm_head.weight",
         "tensors 'transformer.wte.weight' and 'lm_head.weight' differ (element 0: "},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ok(rewrite(orig, bad, cases[k].drop, cases[k].transpose, cases[k].flip), "%s: the file", cases[k].what);
        ok_error(clt_trainer_load_safetensors(t, bad), CLT_ERR_SHAPE, cases[k].needle, "%s: CLT_ERR_SHAPE",
                 cases[k].what);
        float *after = params_of(t);
        ok(same_floats(before, after, np), "  ... and the parameters are bit for bit unchanged");
        free(after);
    }
    ok(rewrite(orig, bad, NULL, NULL, NULL) && clt_trainer_load_safetensors(t, bad) == CLT_OK,
       "the same file rewritten unchanged loads");

    const char *ckpt = path_of("gpt.ckpt"), *exported = path_of("gpt-exported.safetensors");
    ok_status(clt_trainer_save(t, ckpt), "a checkpoint of the GPT");
    ok_status(clt_checkpoint_export_safetensors(ckpt, exported, m), "the GPT's checkpoint exported");
    ok(same_file(orig, exported), "  ... gives the trainer's file byte for byte");
    free(before);
    clt_trainer_destroy(t);
    clt_model_destroy(m);

    /* almost a GPT: no blocks; exact GELU in the MLP. Neither is nanoGPT's, and nn.Sequential
     * cannot hold the position table */
    clt_model *none = BUILD(clt_shape1(7), clt_embedding(13, 15), clt_position_embedding(),
                            clt_layernorm_last(1e-5f), clt_lm_head(13, 1));
    clt_model *gelu = BUILD(clt_shape1(7), clt_embedding(13, 15), clt_position_embedding(),
                            clt_residual_begin(), clt_layernorm_last(1e-5f), clt_linear(45),
                            clt_causal_attention(3, 0.0f), clt_linear(15), clt_residual_end(),
                            clt_residual_begin(), clt_layernorm_last(1e-5f), clt_linear(60), clt_gelu(),
                            clt_linear(15), clt_residual_end(), clt_layernorm_last(1e-5f),
                            clt_lm_head(13, 1));
    clt_model *almost[2] = {none, gelu};
    static const char *const what[2] = {"a GPT without blocks", "a GPT with exact GELU"};
    for (int i = 0; i < 2; i++) {
        clt_train_params q = params(13);
        if (!almost[i] || !ok_status(clt_trainer_create(&t, rt, almost[i], &q), "%s: trainer", what[i]))
            continue;
        ok_error(clt_trainer_save_safetensors(t, bad), CLT_ERR_UNSUPPORTED, "layer 1 (position) has no "
                 "torch.nn module", "%s: save is CLT_ERR_UNSUPPORTED naming the layer", what[i]);
        ok_error(clt_trainer_load_safetensors(t, orig), CLT_ERR_UNSUPPORTED, "layer 1 (position)",
                 "%s: load too", what[i]);
        clt_trainer_destroy(t);
    }
    clt_model_destroy(none);
    clt_model_destroy(gelu);
}

/* ---- PyTorch -------------------------------------------------------------------------------- */

/* A python3 that imports torch, or NULL (*why says what was tried). */
static const char *find_python(char *why, size_t cap)
{
    static char found[512];
    const char *env = getenv("CLT_PYTHON");
    const char *cands[3] = {env, "python3", "/usr/bin/python3"};
    for (int i = env ? 0 : 1; i < 3; i++) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "%s -c 'import torch' >/dev/null 2>&1", cands[i]);
        if (run(cmd) == 0) {
            snprintf(found, sizeof found, "%s", cands[i]);
            return found;
        }
        if (env) break;   /* the one asked for, or nothing */
    }
    snprintf(why, cap, env ? "CLT_PYTHON=%s cannot import torch" : "no python3 with torch (python3, "
             "/usr/bin/python3; CLT_PYTHON names another)", env);
    return NULL;
}

static void check_torch(const char *python, const char *name, clt_model *m, double tol)
{
    enum { NB = 6 };
    clt_trainer *t, *u;
    if (!two_trainers(name, m, 6, &t, &u)) return;
    train(t, 2);
    clt_shape is = clt_model_input_shape(m);
    size_t in = clt_shape_numel(is), out = clt_shape_numel(clt_model_output_shape(m, -1));
    float *x = inputs(m, NB, 31), *y = malloc(NB * out * sizeof *y), *yu = malloc(NB * out * sizeof *yu);
    char ours[64], io[64], theirs[64], their_io[64];
    snprintf(ours, sizeof ours, "%s.ours.safetensors", name);
    snprintf(io, sizeof io, "%s.io.safetensors", name);
    snprintf(theirs, sizeof theirs, "%s.torch.safetensors", name);
    snprintf(their_io, sizeof their_io, "%s.torch_io.safetensors", name);
    ok_status(clt_trainer_save_safetensors(t, path_of(ours)), "%s: saved for PyTorch", name);
    ok_status(predict(t, x, NB, y), "%s: our predictions", name);
    uint64_t xd[5] = {NB}, yd[2] = {NB, out};
    for (int i = 0; i < is.rank; i++) xd[1 + i] = (uint64_t)is.dims[i];
    float *xle = malloc(NB * in * sizeof *xle);
    memcpy(xle, x, NB * in * sizeof *x);
    clt__floats_to_le(xle, NB * in);
    clt__floats_to_le(y, NB * out);
    clt__st_out ios[2] = {{"x", 1 + is.rank, xd, xle}, {"y", 2, yd, y}};
    const char *meta[] = {"format", "pt"};
    ok_status(clt__safetensors_write(path_of(io), ios, 2, meta, 1), "%s: the input and our predictions", name);
    free(xle);

    char cmd[2048];
    const char *src = getenv("CLT_TEST_SRCDIR") ? getenv("CLT_TEST_SRCDIR") : ".";
    snprintf(cmd, sizeof cmd, "%s '%s/tests/safetensors_torch.py' '%s' '%s' %g", python, src, dir, name,
             tol);
    fflush(stdout);
    ok(run(cmd) == 0, "%s: PyTorch loads our file into %s (strict) and predicts ours within %g",
       name, clt__model_takes_tokens(m) ? "nanoGPT's GPT" : "nn.Sequential", tol);

    /* PyTorch's weights into a fresh trainer: its predictions */
    ok_status(clt_trainer_load_safetensors(u, path_of(theirs)), "%s: PyTorch's file loads", name);
    size_t len;
    uint8_t *buf = slurp(path_of(their_io), &len);
    clt__safetensors s;
    if (buf && clt__safetensors_parse(buf, len, their_io, &s) == CLT_OK) {
        const clt__st_tensor *ty = clt__safetensors_find(&s, "y");
        float *ref = malloc(NB * out * sizeof *ref);
        bool shaped = ty && !strcmp(ty->dtype, "F32") && ty->rank == 2 && ty->dims[0] == NB && ty->dims[1] == out;
        if (shaped) clt__floats_from_le(ref, ty->data, NB * out);
        ok(shaped && predict(u, x, NB, yu) == CLT_OK, "%s: predictions with PyTorch's weights", name);
        if (shaped) {
            double worst = 0;
            for (size_t i = 0; i < NB * out; i++) worst = fmax(worst, fabs((double)yu[i] - ref[i]));
            diag("%s: our predictions with PyTorch's weights differ from its by at most %.3g", name, worst);
            ok_close(yu, ref, NB * out, tol, 0, "  ... are PyTorch's");
        }
        else skip("no predictions from PyTorch", "  ... are PyTorch's");
        free(ref);
        clt__safetensors_free(&s);
    } else {
        ok(false, "%s: PyTorch's predictions file reads (%s)", name, clt_last_error());
    }
    free(buf);
    free(x), free(y), free(yu);
    clt_trainer_destroy(t);
    clt_trainer_destroy(u);
}

static void remove_dir(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (run(cmd) != 0) diag("could not remove %s", dir);
}

int main(void)
{
    tap_require_device();
    snprintf(dir, sizeof dir, "%s/cltrain-st-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!ok(mkdtemp(dir) != NULL, "a scratch folder")) return tap_done();
    if (!ok_status(clt_runtime_create(&rt, test_spec_one()), "runtime on one device")) return tap_done();
    enum { NM = 6 };
    clt_gpt_config gpts[3] = {small_gpt(0.0f, 1), small_gpt(0.0f, 0), small_gpt(0.1f, 1)};
    clt_model *models[NM] = {seed_mlp(), cnn(), mixed(), gpt(&gpts[0]), gpt(&gpts[1]), gpt(&gpts[2])};
    static const char *const names[NM] = {"seed-mlp", "cnn", "mixed", "gpt", "gpt-untied", "gpt-dropout"};
    const clt_gpt_config *configs[NM] = {NULL, NULL, NULL, &gpts[0], &gpts[1], &gpts[2]};
    if (models[0]) check_failed_save(models[0]);   /* first: the TAP log stays under its limit */
    for (int i = 0; i < NM; i++)
        if (ok(models[i] != NULL, "model %s", names[i])) check_round_trip(names[i], models[i], configs[i]);
    check_bad_files();
    check_gpt_files();
    check_export();
    check_parallel();
    char why[256];
    const char *python = find_python(why, sizeof why);
    for (int i = 0; i < NM; i++) {
        if (!models[i]) continue;
        if (python) check_torch(python, names[i], models[i], configs[i] ? GPT_TORCH_ATOL : TORCH_ATOL);
        else if (getenv("CLT_TEST_REQUIRE_TORCH"))   /* CI: a skip here would hide the check */
            ok(0, "%s: the round trip through PyTorch (CLT_TEST_REQUIRE_TORCH is set): %s", names[i], why);
        else skip(why, "%s: the round trip through PyTorch", names[i]);
    }
    for (int i = 0; i < NM; i++) clt_model_destroy(models[i]);
    clt_runtime_destroy(rt);
    remove_dir();
    return tap_done();
}
