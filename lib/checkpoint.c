/* Checkpoints: the training state in a versioned little-endian file with a CRC32 per section
 * (docs/CHECKPOINT.md), written atomically. The parser takes bytes and needs no device, so the
 * fuzz target (tests/fuzz_checkpoint.c) exercises exactly the loader's checks. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static const uint8_t MAGIC[8] = {'C', 'L', 'T', 'C', 'K', 'P', 'T', '\0'};
enum {
    CKPT_VERSION = 2,                /* 2: layers have `count`, an optional vocabulary; 1 read too */
    CKPT_HEADER_BYTES = 24,          /* magic, version, sections, flags, header CRC */
    CKPT_SECTION_BYTES = 16,  /* tag, CRC, size */
    CKPT_LAYER_BYTES_V1 = 28,
    CKPT_LAYER_BYTES = 32,
    CKPT_MAX_VOCAB_BYTES = 64 << 20,
    CKPT_TRAIN_BYTES_V1 = 124,
    CKPT_TRAIN_BYTES = 128,          /* 2: the decay after the state count */
    CKPT_MAX_LAYERS = 4096           /* clt_model_add's limit */
};

/* ---- little-endian bytes ------------------------------------------------------------------ */

static bool host_is_le(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    bool oom;
} writer;

static void put(writer *w, const void *src, size_t n)
{
    if (w->oom) return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        while (cap < w->len + n) cap *= 2;
        uint8_t *b = realloc(w->buf, cap);
        if (!b) {
            w->oom = true;
            return;
        }
        w->buf = b, w->cap = cap;
    }
    memcpy(w->buf + w->len, src, n);
    w->len += n;
}

static void put_u32(writer *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(w, b, 4);
}

static void put_u64(writer *w, uint64_t v)
{
    put_u32(w, (uint32_t)v);
    put_u32(w, (uint32_t)(v >> 32));
}

static void put_i32(writer *w, int32_t v) { put_u32(w, (uint32_t)v); }

static void put_f32(writer *w, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    put_u32(w, v);
}

typedef struct {
    const uint8_t *p;
    size_t left;
} reader;

static uint32_t get_u32(reader *r)
{
    if (r->left < 4) return r->left = 0, 0;   /* callers check sizes first: never reached */
    const uint8_t *b = r->p;
    r->p += 4, r->left -= 4;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t get_u64(reader *r)
{
    uint64_t lo = get_u32(r);
    return lo | (uint64_t)get_u32(r) << 32;
}

static int32_t get_i32(reader *r) { return (int32_t)get_u32(r); }

static float get_f32(reader *r)
{
    uint32_t v = get_u32(r);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

void clt__floats_from_le(float *dst, const uint8_t *src, size_t n)
{
    if (host_is_le()) {
        memcpy(dst, src, n * sizeof(float));
        return;
    }
    reader r = {src, n * 4};
    for (size_t i = 0; i < n; i++) dst[i] = get_f32(&r);
}

void clt__floats_to_le(float *a, size_t n)
{
    if (host_is_le()) return;
    for (size_t k = 0; k < n; k++) {
        uint32_t v;
        memcpy(&v, &a[k], 4);
        v = (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
        memcpy(&a[k], &v, 4);
    }
}

/* CRC32 (zlib's) of n bytes; zlib takes a uInt length, so long arrays go in pieces. */
static uint32_t crc_of(const uint8_t *p, size_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    for (size_t done = 0; done < n;) {
        size_t piece = n - done < (1u << 30) ? n - done : (1u << 30);
        c = crc32(c, p + done, (uInt)piece);
        done += piece;
    }
    return (uint32_t)c;
}

/* ---- the parser ----------------------------------------------------------------------------- */

void clt__checkpoint_free(clt__checkpoint *c)
{
    if (!c) return;
    clt_model_destroy(c->model);
    c->model = NULL;
}

/* The model section: input shape, layers, parameter count. */
static clt_status parse_model(reader *r, const char *name, uint32_t version, clt_model **out)
{
    const size_t layer_bytes = version == 1 ? CKPT_LAYER_BYTES_V1 : CKPT_LAYER_BYTES;
    *out = NULL;
    if (r->left < 4 + 16 + 4)
        return clt__fail(CLT_ERR_FORMAT, "checkpoint %s: the model section is too short", name);
    clt_shape in;
    uint32_t rank = get_u32(r);
    for (int i = 0; i < CLT_MAX_RANK; i++) in.dims[i] = get_i32(r);
    uint32_t nlayers = get_u32(r);
    if (rank < 1 || rank > CLT_MAX_RANK)
        return clt__fail(CLT_ERR_FORMAT, "checkpoint %s: input rank %u is outside 1..%d", name,
                         rank, CLT_MAX_RANK);
    in.rank = (int)rank;
    size_t numel = 1;
    for (int i = 0; i < in.rank; i++) {
        if (in.dims[i] < 1 || in.dims[i] > (1 << 30) ||
            (numel *= (size_t)in.dims[i]) > ((size_t)1 << 30))
            return clt__fail(CLT_ERR_FORMAT, "checkpoint %s: input dimension %d (%d) is not in "
                             "1..2^30 or the input is over 2^30 elements", name, i, in.dims[i]);
    }
    if (nlayers < 1 || nlayers > CKPT_MAX_LAYERS)
        return clt__fail(CLT_ERR_FORMAT, "checkpoint %s: %u layers (1..%d)", name, nlayers,
                         CKPT_MAX_LAYERS);
    if (r->left != (size_t)nlayers * layer_bytes + 8)
        return clt__fail(CLT_ERR_FORMAT, "checkpoint %s: the model section holds %zu bytes of "
                         "layers, %u layers need %zu", name, r->left, nlayers,
                         (size_t)nlayers * layer_bytes + 8);
    clt_model *m;
    clt_status st = clt_model_create(&m, in);
    for (uint32_t i = 0; i < nlayers && st == CLT_OK; i++) {
        clt_layer_desc d;
        d.kind = (clt_layer_kind)get_u32(r);
        d.out = get_i32(r);
        d.kernel = get_i32(r);
        d.stride = get_i32(r);
        d.padding = get_i32(r);
        d.bias = get_i32(r);
        d.alpha = get_f32(r);
        d.count = version == 1 ? 0 : get_i32(r);
        if (d.bias != 0 && d.bias != 1)
            st = clt__fail(CLT_ERR_FORMAT, "layer %u: bias flag %d", i, d.bias);
        else
            st = clt_model_add(m, d);
    }
    if (st != CLT_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", clt_last_error());
        if (st != CLT_ERR_OUT_OF_HOST_MEMORY) st = CLT_ERR_FORMAT;
        clt_model_destroy(m);
        return clt__fail(st, "checkpoint %s: the model description is not valid: %s", name, msg);
    }
    uint64_t nparams = get_u64(r);
    if (nparams != m->nparams) {
        size_t have = m->nparams;
        clt_model_destroy(m);
        return clt__fail(CLT_ERR_FORMAT, "checkpoint %s: the model has %zu parameters, the file "
                         "says %llu", name, have, (unsigned long long)nparams);
    }
    *out = m;
    return CLT_OK;
}

/* The trainer section: step count, hyper-parameters, data position, state arrays. */
static clt_status parse_train(reader *r, const char *name, uint32_t version, clt__checkpoint *c)
{
    const size_t bytes = version == 1 ? CKPT_TRAIN_BYTES_V1 : CKPT_TRAIN_BYTES;
    if (r->left != bytes)
        return clt__fail(CLT_ERR_FORMAT, "checkpoint %s: the trainer section holds %zu bytes, "
                         "not %zu", name, r->left, bytes);
    clt_train_params *p = &c->p;
    *p = clt_train_params_default();
    uint64_t steps = get_u64(r);
    p->seed = get_u64(r);
    p->loss = (clt_loss)get_u32(r);
    uint32_t accumulation = get_u32(r);
    p->clip_norm = get_f32(r);
    clt_optimizer *o = &p->optim;
    o->kind = (clt_optim_kind)get_u32(r);
    o->lr = get_f32(r);
    o->momentum = get_f32(r);
    o->dampening = get_f32(r);
    uint32_t nesterov = get_u32(r);
    o->weight_decay = get_f32(r);
    o->beta1 = get_f32(r);
    o->beta2 = get_f32(r);
    o->eps = get_f32(r);
    clt_schedule *s = &p->schedule;
    s->kind = (clt_schedule_kind)get_u32(r);
    s->step_size = get_i32(r);
    s->gamma = get_f32(r);
    int64_t total = (int64_t)get_u64(r);
    s->min_lr = get_f32(r);
    int64_t warmup = (int64_t)get_u64(r);
    c->pos.epoch = get_u64(r);
    c->pos.index = get_u64(r);
    c->pos.seed = get_u64(r);
    uint32_t nstate = get_u32(r);
    p->decay = version == 1 ? CLT_DECAY_ALL : (clt_decay)get_u32(r);

    if (steps > (uint64_t)LONG_MAX / 65536)
        return clt__fail(CLT_ERR_FORMAT, "checkpoint %s: step count %llu is absurd", name,
                         (unsigned long long)steps);
    c->steps = (long)steps;
    if (accumulation > 65536 || nesterov > 1 || total < LONG_MIN || total > LONG_MAX ||
        warmup < LONG_MIN || warmup > LONG_MAX || !isfinite(o->dampening) || !isfinite(s->gamma) ||
        !isfinite(s->min_lr))
        return clt__fail(CLT_ERR_FORMAT, "checkpoint %s: the hyper-parameters are out of range",
                         name);
    p->accumulation = (int)accumulation;
    o->nesterov = (int)nesterov;
    s->total_steps = (long)total;
    s->warmup_steps = (long)warmup;
    clt_status st = clt__check_hyper(p);
    if (st != CLT_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", clt_last_error());
        return clt__fail(CLT_ERR_FORMAT, "checkpoint %s: %s", name, msg);
    }
    if (nstate != (uint32_t)clt__optim_state_arrays(o))
        return clt__fail(CLT_ERR_FORMAT, "checkpoint %s: %u optimizer state arrays, its optimizer "
                         "keeps %d", name, nstate, clt__optim_state_arrays(o));
    c->nstate = (int)nstate;
    return CLT_OK;
}

/* One section header at *at: its tag must be `tag`; its payload must fit in the file and match
 * its CRC32. */
static clt_status section(const uint8_t *buf, size_t len, size_t *at, const char *tag,
                          const char *name, reader *payload)
{
    if (len - *at < CKPT_SECTION_BYTES)
        return clt__fail(CLT_ERR_FORMAT, "checkpoint %s: truncated: section '%s' expected at byte "
                         "%zu of %zu", name, tag, *at, len);
    reader r = {buf + *at, CKPT_SECTION_BYTES};
    if (memcmp(r.p, tag, 4))
        return clt__fail(CLT_ERR_FORMAT, "checkpoint %s: section '%s' expected at byte %zu, found "
                         "another tag", name, tag, *at);
    r.p += 4, r.left -= 4;
    uint32_t crc = get_u32(&r);
    uint64_t size = get_u64(&r);
    *at += CKPT_SECTION_BYTES;
    if (size > len - *at)
        return clt__fail(CLT_ERR_FORMAT, "checkpoint %s: section '%s' says %llu bytes, the file "
                         "has %zu left (truncated, or a corrupted size)", name, tag,
                         (unsigned long long)size, len - *at);
    uint32_t c = crc_of(buf + *at, (size_t)size);
    if (c != crc)
        return clt__fail(CLT_ERR_FORMAT, "checkpoint %s: section '%s' fails its CRC32 check "
                         "(stored %08x, computed %08x): the file is corrupted", name, tag,
                         (unsigned)crc, (unsigned)c);
    payload->p = buf + *at;
    payload->left = (size_t)size;
    *at += (size_t)size;
    return CLT_OK;
}

/* A float array section of n elements, every one finite. */
static clt_status array_section(const uint8_t *buf, size_t len, size_t *at, const char *tag,
                                size_t n, const char *name, const uint8_t **out)
{
    reader r;
    clt_status st = section(buf, len, at, tag, name, &r);
    if (st != CLT_OK) return st;
    if (r.left / 4 != n || r.left % 4)
        return clt__fail(CLT_ERR_FORMAT, "checkpoint %s: section '%s' holds %zu bytes, %zu "
                         "floats need %zu", name, tag, r.left, n, n * 4);
    for (size_t i = 0; i < n; i++) {
        float f = get_f32(&r);
        if (!isfinite(f))
            return clt__fail(CLT_ERR_FORMAT, "checkpoint %s: element %zu of section '%s' is not "
                             "finite", name, i, tag);
    }
    *out = buf + *at - n * 4;
    return CLT_OK;
}

clt_status clt__checkpoint_parse(const uint8_t *buf, size_t len, const char *name,
                                 clt__checkpoint *out)
{
    memset(out, 0, sizeof *out);
    if (!buf || len < CKPT_HEADER_BYTES)
        return clt__fail(CLT_ERR_FORMAT, "checkpoint %s: %zu bytes, shorter than the %d-byte "
                         "header (truncated, or not a checkpoint)", name, len, CKPT_HEADER_BYTES);
    if (memcmp(buf, MAGIC, sizeof MAGIC))
        return clt__fail(CLT_ERR_FORMAT, "checkpoint %s: not a cltrain checkpoint (the file does "
                         "not start with \"CLTCKPT\")", name);
    reader h = {buf + 8, CKPT_HEADER_BYTES - 8};
    uint32_t version = get_u32(&h), nsections = get_u32(&h), flags = get_u32(&h), crc = get_u32(&h);
    if ((uint32_t)crc32(0L, buf, CKPT_HEADER_BYTES - 4) != crc)
        return clt__fail(CLT_ERR_FORMAT, "checkpoint %s: the header fails its CRC32 check: the "
                         "file is corrupted", name);
    if (version != 1 && version != CKPT_VERSION)
        return clt__fail(CLT_ERR_FORMAT, "checkpoint %s: format version %u; this library reads "
                         "versions 1..%d", name, version, CKPT_VERSION);
    if (flags != 0 || nsections < 3 || nsections > (version == 1 ? 5u : 6u))
        return clt__fail(CLT_ERR_FORMAT, "checkpoint %s: %u sections with flags %u (3..%d "
                         "sections, no flags)", name, nsections, flags, version == 1 ? 5 : 6);
    size_t at = CKPT_HEADER_BYTES;
    reader r;
    clt_status st = section(buf, len, &at, "MODL", name, &r);
    if (st == CLT_OK) st = parse_model(&r, name, version, &out->model);
    if (st == CLT_OK) st = section(buf, len, &at, "TRNR", name, &r);
    if (st == CLT_OK) st = parse_train(&r, name, version, out);
    /* version 2 may end with the vocabulary */
    bool vocab = st == CLT_OK && version >= 2 && nsections == 4 + (uint32_t)out->nstate;
    if (st == CLT_OK && !vocab && nsections != 3 + (uint32_t)out->nstate)
        st = clt__fail(CLT_ERR_FORMAT, "checkpoint %s: %u sections, the trainer section implies %d%s",
                       name, nsections, 3 + out->nstate, version >= 2 ? " (or one more, the vocabulary)" : "");
    size_t np = out->model ? out->model->nparams : 0;
    if (st == CLT_OK) st = array_section(buf, len, &at, "PARM", np, name, &out->params);
    static const char *const tags[2] = {"OPT0", "OPT1"};
    for (int i = 0; i < out->nstate && st == CLT_OK; i++)
        st = array_section(buf, len, &at, tags[i], np, name, &out->state[i]);
    if (st == CLT_OK && vocab && (st = section(buf, len, &at, "VOCB", name, &r)) == CLT_OK) {
        if (r.left == 0 || r.left > CKPT_MAX_VOCAB_BYTES)
            st = clt__fail(CLT_ERR_FORMAT, "checkpoint %s: the vocabulary holds %zu bytes (1..%d)",
                           name, r.left, CKPT_MAX_VOCAB_BYTES);
        out->vocab = (const char *)r.p;
        out->vocab_len = r.left;
    }
    if (st == CLT_OK && at != len)
        st = clt__fail(CLT_ERR_FORMAT, "checkpoint %s: %zu bytes after the last section", name,
                       len - at);
    if (st != CLT_OK) clt__checkpoint_free(out);
    return st;
}

/* ---- writing ------------------------------------------------------------------------------ */

static void describe_model(writer *w, const clt_model *m)
{
    put_u32(w, (uint32_t)m->input.rank);
    for (int i = 0; i < CLT_MAX_RANK; i++) put_i32(w, i < m->input.rank ? m->input.dims[i] : 0);
    put_u32(w, (uint32_t)m->nlayers);
    for (int i = 0; i < m->nlayers; i++) {
        const clt_layer_desc *d = &m->layers[i].desc;
        put_u32(w, (uint32_t)d->kind);
        put_i32(w, d->out);
        put_i32(w, d->kernel);
        put_i32(w, d->stride);
        put_i32(w, d->padding);
        put_i32(w, d->bias);
        put_f32(w, d->alpha);
        put_i32(w, d->count);
    }
    put_u64(w, m->nparams);
}

static void describe_train(writer *w, const clt_trainer *t, int nstate)
{
    const clt_train_params *p = &t->p;
    const clt_optimizer *o = &p->optim;
    const clt_schedule *s = &p->schedule;
    put_u64(w, (uint64_t)t->steps);
    put_u64(w, p->seed);
    put_u32(w, (uint32_t)p->loss);
    put_u32(w, (uint32_t)p->accumulation);
    put_f32(w, p->clip_norm);
    put_u32(w, (uint32_t)o->kind);
    put_f32(w, o->lr);
    put_f32(w, o->momentum);
    put_f32(w, o->dampening);
    put_u32(w, (uint32_t)(o->nesterov != 0));
    put_f32(w, o->weight_decay);
    put_f32(w, o->beta1);
    put_f32(w, o->beta2);
    put_f32(w, o->eps);
    put_u32(w, (uint32_t)s->kind);
    put_i32(w, s->step_size);
    put_f32(w, s->gamma);
    put_u64(w, (uint64_t)(int64_t)s->total_steps);
    put_f32(w, s->min_lr);
    put_u64(w, (uint64_t)(int64_t)s->warmup_steps);
    put_u64(w, t->pos.epoch);
    put_u64(w, t->pos.index);
    put_u64(w, t->pos.seed);
    put_u32(w, (uint32_t)nstate);
    put_u32(w, (uint32_t)p->decay);
}

typedef struct {
    char tag[4];
    const uint8_t *data;    /* little-endian bytes */
    size_t bytes;
} out_section;

static clt_status io_fail(const char *path, const char *what, const char *verb, const char *file)
{
    return clt__fail(CLT_ERR_IO, "saving %s %s: %s %s: %s", what, path, verb, file, strerror(errno));
}

static bool write_all(FILE *f, const void *p, size_t n) { return !n || fwrite(p, 1, n, f) == n; }

clt_status clt__file_write_atomic(const char *path, const char *what, const clt__chunk *chunks,
                                  int n)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16), *dir = malloc(plen + 2);
    if (!tmp || !dir) {
        free(tmp), free(dir);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, plen + 2, ".");
    else if (slash == path) snprintf(dir, plen + 2, "/");
    else snprintf(dir, plen + 2, "%.*s", (int)(slash - path), path);

    clt_status st = CLT_OK;
    int fd = mkstemp(tmp);
    FILE *f = NULL;
    if (fd < 0) {
        st = io_fail(path, what, "creating", tmp);
        goto out;
    }
    /* mkstemp makes it 0600: give it the mode of the file it replaces, or 0644 */
    struct stat prev;
    if (fchmod(fd, stat(path, &prev) == 0 ? (prev.st_mode & 07777) : 0644) != 0) {
        st = io_fail(path, what, "setting the mode of", tmp);
        close(fd);
        goto fail;
    }
    if (!(f = fdopen(fd, "wb"))) {
        st = io_fail(path, what, "opening", tmp);
        close(fd);
        goto fail;
    }
    for (int i = 0; i < n && st == CLT_OK; i++)
        if (!write_all(f, chunks[i].data, chunks[i].bytes)) st = io_fail(path, what, "writing", tmp);
    if (st == CLT_OK && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        st = io_fail(path, what, "flushing", tmp);
    if (fclose(f) != 0 && st == CLT_OK) st = io_fail(path, what, "closing", tmp);
    if (st != CLT_OK) goto fail;
    if (rename(tmp, path) != 0) {
        st = io_fail(path, what, "renaming", tmp);
        goto fail;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0 || (fsync(dfd) != 0 && errno != EINVAL && errno != ENOTSUP)) {
        /* the new file is in place; only its name's durability is in doubt */
        st = io_fail(path, what, "flushing the folder", dir);
    }
    if (dfd >= 0) close(dfd);
    goto out;
fail:
    unlink(tmp);
out:
    free(tmp), free(dir);
    return st;
}

/* The checkpoint's header, then each section's header just before its (possibly large)
 * payload, written atomically. */
static clt_status write_checkpoint(const char *path, const out_section *sec, int nsec)
{
    writer h = {0};
    put(&h, MAGIC, sizeof MAGIC);
    put_u32(&h, CKPT_VERSION);
    put_u32(&h, (uint32_t)nsec);
    put_u32(&h, 0);
    if (!h.oom) put_u32(&h, (uint32_t)crc32(0L, h.buf, (uInt)h.len));
    for (int i = 0; i < nsec; i++) {
        put(&h, sec[i].tag, 4);
        put_u32(&h, crc_of(sec[i].data, sec[i].bytes));
        put_u64(&h, sec[i].bytes);
    }
    if (h.oom) {
        free(h.buf);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    clt__chunk chunks[1 + 2 * 6];
    int n = 0;
    chunks[n++] = (clt__chunk){h.buf, CKPT_HEADER_BYTES};
    for (int i = 0; i < nsec && i < 6; i++) {
        chunks[n++] = (clt__chunk){h.buf + CKPT_HEADER_BYTES + (size_t)i * CKPT_SECTION_BYTES,
                                   CKPT_SECTION_BYTES};
        chunks[n++] = (clt__chunk){sec[i].data, sec[i].bytes};
    }
    clt_status st = clt__file_write_atomic(path, "checkpoint", chunks, n);
    free(h.buf);
    return st;
}

/* ---- the trainer's side ----------------------------------------------------------------------- */

clt_status clt__trainer_state_read(clt_trainer *t, int nstate, float *arrays[3])
{
    size_t np = t->model->nparams;
    clt_status st = CLT_OK;
    for (int i = 0; i <= nstate && st == CLT_OK; i++)
        if (!(arrays[i] = malloc((np ? np : 1) * sizeof(float))))
            st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory (%zu parameters)", np);
    if (st == CLT_OK && np) st = t->ops->param_io(t, 0, np, arrays[0], 0, 0);
    for (int i = 0; i < nstate && st == CLT_OK && np; i++)
        st = t->ops->state_io(t, i, 0, np, arrays[1 + i], 0);
    return st;
}

static clt_status write_state(clt_trainer *t, int nstate, float *const arrays[3])
{
    size_t np = t->model->nparams;
    clt_status st = CLT_OK;
    if (np) st = t->ops->param_io(t, 0, np, arrays[0], 1, 0);
    for (int i = 0; i < nstate && st == CLT_OK && np; i++)
        st = t->ops->state_io(t, i, 0, np, arrays[1 + i], 1);
    return st;
}

clt_status clt__trainer_state_replace(clt_trainer *t, int nstate, float *const fresh[3],
                                      const char *path)
{
    float *old[3] = {NULL, NULL, NULL};
    clt_status st = clt__trainer_state_read(t, nstate, old);
    if (st == CLT_OK && (st = write_state(t, nstate, fresh)) != CLT_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", clt_last_error());
        if (write_state(t, nstate, old) != CLT_OK)
            clt__log(CLT_LOG_ERROR, "%s: the trainer's state could not be restored after a failed "
                     "load", path);
        clt__error_set_message(msg);
    }
    for (int i = 0; i < 3; i++) free(old[i]);
    return st;
}

static clt_status check_trainer(const clt_trainer *t, const char *path, const char *fn)
{
    if (!t || !path) return clt__fail(CLT_ERR_INVALID_ARG, "%s: %s is NULL", fn, !t ? "trainer" : "path");
    if (!*path) return clt__fail(CLT_ERR_INVALID_ARG, "%s: the path is empty", fn);
    if (!t->ops->state_io)
        return clt__fail(CLT_ERR_UNSUPPORTED, "%s: the %s strategy cannot save or load its "
                         "optimizer state yet", fn, t->ops->name);
    return CLT_OK;
}

clt_status clt_trainer_save(clt_trainer *t, const char *path)
{
    clt_status st = check_trainer(t, path, "clt_trainer_save");
    if (st != CLT_OK) return st;
    if (t->micro)
        return clt__fail(CLT_ERR_STATE, "clt_trainer_save: %d of %d accumulation steps are done; "
                         "save after the update (accumulated gradients are not saved)", t->micro,
                         t->p.accumulation);
    int nstate = clt__optim_state_arrays(&t->p.optim);
    size_t np = t->model->nparams;
    float *arrays[3] = {NULL, NULL, NULL};
    writer model = {0}, train = {0};
    st = clt__trainer_state_read(t, nstate, arrays);
    if (st == CLT_OK) {
        describe_model(&model, t->model);
        describe_train(&train, t, nstate);
        if (model.oom || train.oom) st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    /* floats go out as they are on a little-endian host, byte-swapped in place elsewhere */
    for (int i = 0; i <= nstate && st == CLT_OK; i++) clt__floats_to_le(arrays[i], np);
    if (st == CLT_OK) {
        out_section sec[6] = {
            {"MODL", model.buf, model.len},
            {"TRNR", train.buf, train.len},
            {"PARM", (const uint8_t *)arrays[0], np * 4},
            {"OPT0", (const uint8_t *)arrays[1], np * 4},
            {"OPT1", (const uint8_t *)arrays[2], np * 4},
        };
        int nsec = 3 + nstate;
        if (t->vocab_len) sec[nsec++] = (out_section){"VOCB", (const uint8_t *)t->vocab, t->vocab_len};
        st = write_checkpoint(path, sec, nsec);
    }
    free(model.buf), free(train.buf);
    for (int i = 0; i < 3; i++) free(arrays[i]);
    return st;
}

clt_status clt__file_read(const char *path, const char *what, uint8_t **out, size_t *len)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return clt__fail(CLT_ERR_IO, "loading %s %s: %s", what, path, strerror(errno));
    struct stat sb;
    clt_status st = CLT_OK;
    if (fstat(fileno(f), &sb) != 0) {
        st = clt__fail(CLT_ERR_IO, "loading %s %s: %s", what, path, strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        st = clt__fail(CLT_ERR_IO, "loading %s %s: not a regular file", what, path);
    } else if ((uint64_t)sb.st_size > SIZE_MAX / 2) {
        st = clt__fail(CLT_ERR_FORMAT, "loading %s %s: %lld bytes is too large", what, path,
                       (long long)sb.st_size);
    } else {
        *len = (size_t)sb.st_size;
        if (!(*out = malloc(*len ? *len : 1)))
            st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "loading %s %s: cannot hold its %zu "
                           "bytes in memory", what, path, *len);
        else if (fread(*out, 1, *len, f) != *len)
            st = clt__fail(CLT_ERR_IO, "loading %s %s: reading %zu bytes failed%s%s", what, path,
                           *len, ferror(f) ? ": " : " (the file shrank)",
                           ferror(f) ? strerror(errno) : "");
    }
    fclose(f);
    if (st != CLT_OK) {
        free(*out);
        *out = NULL;
    }
    return st;
}

clt_status clt__model_match(const clt_model *mine, const clt_model *file, const char *path,
                            const char *whose)
{
    const clt_shape a = mine->input, b = file->input;
    bool same_in = a.rank == b.rank;
    for (int i = 0; i < a.rank && same_in; i++) same_in = a.dims[i] == b.dims[i];
    if (!same_in)
        return clt__fail(CLT_ERR_SHAPE, "checkpoint %s: its model takes a different input shape "
                         "(rank %d, first dimension %d) from %s model's (rank %d, first "
                         "dimension %d)", path, b.rank, b.dims[0], whose, a.rank, a.dims[0]);
    if (mine->nlayers != file->nlayers)
        return clt__fail(CLT_ERR_SHAPE, "checkpoint %s: its model has %d layers, %s model "
                         "has %d", path, file->nlayers, whose, mine->nlayers);
    for (int i = 0; i < mine->nlayers; i++) {
        const clt_layer_desc *x = &mine->layers[i].desc, *y = &file->layers[i].desc;
        const char *what = x->kind != y->kind ? "kind" : x->out != y->out ? "size (out)"
                         : x->kernel != y->kernel ? "kernel" : x->stride != y->stride ? "stride"
                         : x->padding != y->padding ? "padding" : x->bias != y->bias ? "bias"
                         : memcmp(&x->alpha, &y->alpha, sizeof x->alpha) ? "alpha"
                         : x->count != y->count ? "count (vocabulary or heads)" : NULL;
        if (what)
            return clt__fail(CLT_ERR_SHAPE, "checkpoint %s: layer %d differs in its %s: %s (out "
                             "%d, alpha %g) in the file, %s (out %d, alpha %g) in %s model",
                             path, i, what, clt__layer_kind_name(y->kind), y->out,
                             (double)y->alpha, clt__layer_kind_name(x->kind), x->out,
                             (double)x->alpha, whose);
    }
    return CLT_OK;
}

static const char *optim_name(clt_optim_kind k)
{
    return k == CLT_OPTIM_SGD ? "sgd" : k == CLT_OPTIM_ADAM ? "adam" : "adamw";
}

clt_status clt_trainer_load(clt_trainer *t, const char *path)
{
    clt_status st = check_trainer(t, path, "clt_trainer_load");
    if (st != CLT_OK) return st;
    uint8_t *buf;
    size_t len = 0;
    if ((st = clt__file_read(path, "checkpoint", &buf, &len)) != CLT_OK) return st;
    clt__checkpoint c;
    st = clt__checkpoint_parse(buf, len, path, &c);
    if (st == CLT_OK) st = clt__model_match(t->model, c.model, path, "this trainer's");
    if (st == CLT_OK && c.p.loss != t->p.loss)
        st = clt__fail(CLT_ERR_FORMAT, "checkpoint %s: written with the %s loss, this trainer "
                       "uses %s", path, c.p.loss == CLT_LOSS_MSE ? "MSE" : "cross-entropy",
                       t->p.loss == CLT_LOSS_MSE ? "MSE" : "cross-entropy");
    int nstate = st == CLT_OK ? c.nstate : 0;
    if (st == CLT_OK && (c.p.optim.kind != t->p.optim.kind ||
                         nstate != clt__optim_state_arrays(&t->p.optim)))
        st = clt__fail(CLT_ERR_FORMAT, "checkpoint %s: written with %s%s (%d state arrays), this "
                       "trainer uses %s%s (%d): create it with the same optimizer kind", path,
                       optim_name(c.p.optim.kind), nstate == 0 && !c.p.optim.kind ? " without momentum" : "",
                       nstate, optim_name(t->p.optim.kind),
                       clt__optim_state_arrays(&t->p.optim) == 0 && !t->p.optim.kind ? " without momentum" : "",
                       clt__optim_state_arrays(&t->p.optim));
    /* the new state in host arrays */
    size_t np = t->model->nparams;
    float *fresh[3] = {NULL, NULL, NULL};
    for (int i = 0; i <= nstate && st == CLT_OK; i++)
        if (!(fresh[i] = malloc((np ? np : 1) * sizeof(float))))
            st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory (%zu parameters)", np);
        else
            clt__floats_from_le(fresh[i], i ? c.state[i - 1] : c.params, np);
    if (st == CLT_OK) st = clt__trainer_state_replace(t, nstate, fresh, path);
    if (st == CLT_OK) {
        t->steps = c.steps;
        t->micro = 0;   /* gradients accumulated before the load are dropped */
        t->pos = c.pos;
        t->p.optim = c.p.optim;
        t->p.schedule = c.p.schedule;
        t->p.clip_norm = c.p.clip_norm;
        t->p.accumulation = c.p.accumulation;
        t->p.seed = c.p.seed;
        t->p.decay = c.p.decay;
        if (c.vocab_len) st = clt__trainer_keep_vocabulary(t, c.vocab, c.vocab_len);
    }
    for (int i = 0; i < 3; i++) free(fresh[i]);
    clt__checkpoint_free(&c);
    free(buf);
    return st;
}

clt_status clt_trainer_set_data_position(clt_trainer *t, const clt_data_position *pos)
{
    if (!t || !pos)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_set_data_position: %s is NULL",
                         !t ? "trainer" : "pos");
    t->pos = *pos;
    return CLT_OK;
}

clt_status clt_trainer_data_position(const clt_trainer *t, clt_data_position *out)
{
    if (!t || !out)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_data_position: %s is NULL",
                         !t ? "trainer" : "out");
    *out = t->pos;
    return CLT_OK;
}

clt_status clt__trainer_keep_vocabulary(clt_trainer *t, const char *vocab, size_t len)
{
    char *copy = malloc(len ? len : 1);
    if (!copy) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    memcpy(copy, vocab, len);
    free(t->vocab);
    t->vocab = copy;
    t->vocab_len = len;
    return CLT_OK;
}

clt_status clt_trainer_set_vocabulary(clt_trainer *t, const char *vocab, size_t len)
{
    if (!t || (!vocab && len))
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_set_vocabulary: %s is NULL", !t ? "trainer" : "vocab");
    if (len > CKPT_MAX_VOCAB_BYTES)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_set_vocabulary: %zu bytes (%d at most)",
                         len, CKPT_MAX_VOCAB_BYTES);
    if (!len) {
        free(t->vocab);
        t->vocab = NULL;
        t->vocab_len = 0;
        return CLT_OK;
    }
    return clt__trainer_keep_vocabulary(t, vocab, len);
}

clt_status clt_trainer_vocabulary(const clt_trainer *t, const char **vocab, size_t *len)
{
    if (!t || !vocab || !len)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_trainer_vocabulary: an argument is NULL");
    *vocab = t->vocab;
    *len = t->vocab_len;
    return CLT_OK;
}

/* A whole checkpoint read and parsed; on success free c (clt__checkpoint_free), then *buf. */
static clt_status read_parsed(const char *path, uint8_t **buf, clt__checkpoint *c)
{
    size_t len = 0;
    clt_status st = clt__file_read(path, "checkpoint", buf, &len);
    if (st != CLT_OK) return st;
    st = clt__checkpoint_parse(*buf, len, path, c);
    if (st != CLT_OK) free(*buf);
    return st;
}

clt_status clt_checkpoint_read_model(const char *path, clt_model **model, char **vocab, size_t *vocab_len)
{
    if (model) *model = NULL;
    if (vocab) *vocab = NULL;
    if (vocab_len) *vocab_len = 0;
    if (!path || !model)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_checkpoint_read_model: %s is NULL", !path ? "path" : "model");
    uint8_t *buf;
    clt__checkpoint c;
    clt_status st = read_parsed(path, &buf, &c);
    if (st != CLT_OK) return st;
    if (vocab && c.vocab_len) {
        if (!(*vocab = malloc(c.vocab_len + 1))) {
            st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        } else {
            memcpy(*vocab, c.vocab, c.vocab_len);
            (*vocab)[c.vocab_len] = '\0';
            if (vocab_len) *vocab_len = c.vocab_len;
        }
    }
    if (st == CLT_OK) {
        *model = c.model;
        c.model = NULL;
    }
    clt__checkpoint_free(&c);
    free(buf);
    return st;
}

clt_status clt_checkpoint_read_params(const char *path, clt_train_params *out)
{
    if (!path || !out)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_checkpoint_read_params: %s is NULL", !path ? "path" : "out");
    uint8_t *buf;
    clt__checkpoint c;
    clt_status st = read_parsed(path, &buf, &c);
    if (st == CLT_OK) {
        clt_train_params p = clt_train_params_default();
        p.loss = c.p.loss;
        p.optim = c.p.optim;
        p.schedule = c.p.schedule;
        p.clip_norm = c.p.clip_norm;
        p.accumulation = c.p.accumulation;
        p.seed = c.p.seed;
        p.decay = c.p.decay;
        *out = p;
        clt__checkpoint_free(&c);
        free(buf);
    }
    return st;
}
