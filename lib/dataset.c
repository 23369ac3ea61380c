/* Data sets in host memory: from arrays, from IDX files (MNIST, Fashion-MNIST; gzipped or not),
 * or generated; seeded shuffling and mini-batches. Nothing here touches a device. */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

struct clt_dataset {
    size_t n;
    clt_shape shape;
    size_t numel;          /* floats per sample */
    int classes;
    float *x;              /* (n, numel) */
    int32_t *labels;       /* (n) */
};

/* ---- random numbers ---------------------------------------------------------------------------
 * xoshiro256** (Blackman and Vigna), its state filled from the seed by splitmix64: integer
 * arithmetic only, so a seed gives the same stream on every platform. */

typedef struct {
    uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Uniform in [0, bound), bound >= 1, without modulo bias: draws below 2^64 mod bound are
 * redrawn. */
static uint64_t rng_below(rng *r, uint64_t bound)
{
    uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        uint64_t x = rng_next(r);
        if (x >= threshold) return x % bound;
    }
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_unit(rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

static void permute(uint32_t *order, size_t n, rng *r)
{
    for (size_t i = 0; i < n; i++) order[i] = (uint32_t)i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)rng_below(r, (uint64_t)i + 1);
        uint32_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

clt_status clt_dataset_shuffle(uint32_t *order, size_t n, uint64_t seed)
{
    if (!order) return clt__fail(CLT_ERR_INVALID_ARG, "clt_dataset_shuffle: order is NULL");
    if (n == 0) return clt__fail(CLT_ERR_INVALID_ARG, "clt_dataset_shuffle: n is 0");
    if (n > UINT32_MAX)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_dataset_shuffle: n = %zu is past UINT32_MAX", n);
    rng r;
    rng_seed(&r, seed);
    permute(order, n, &r);
    return CLT_OK;
}

/* ---- the object --------------------------------------------------------------------------- */

clt_dataset_options clt_dataset_options_default(void)
{
    clt_dataset_options o = {.struct_size = sizeof o, .pad_to = 0, .normalize = 0, .limit = 0, .classes = 10};
    return o;
}

/* An empty data set of n samples of `shape`, its arrays allocated; `what` names the caller. */
static clt_status dataset_alloc(clt_dataset **out, size_t n, clt_shape shape, int classes,
                                const char *what)
{
    size_t numel = clt_shape_numel(shape), total, bytes;
    if (__builtin_mul_overflow(n, numel, &total) ||
        __builtin_mul_overflow(total, sizeof(float), &bytes))
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY,
                         "%s: %zu samples of %zu floats overflow size_t", what, n, numel);
    clt_dataset *d = calloc(1, sizeof *d);
    if (!d) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "%s: out of host memory", what);
    d->x = malloc(bytes);
    d->labels = malloc(n * sizeof *d->labels);
    if (!d->x || !d->labels) {
        clt_dataset_destroy(d);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY,
                         "%s: cannot allocate %zu samples of %zu floats", what, n, numel);
    }
    d->n = n;
    d->shape = shape;
    d->numel = numel;
    d->classes = classes;
    *out = d;
    return CLT_OK;
}

/* Checks a shape, naming the caller and its dims in the message. */
static clt_status check_shape(clt_shape shape, const char *what)
{
    if (shape.rank < 1 || shape.rank > CLT_MAX_RANK)
        return clt__fail(CLT_ERR_SHAPE, "%s: shape rank %d is outside 1..%d", what, shape.rank,
                         CLT_MAX_RANK);
    size_t numel = 1;
    for (int i = 0; i < shape.rank; i++) {
        if (shape.dims[i] <= 0)
            return clt__fail(CLT_ERR_SHAPE, "%s: shape dimension %d is %d", what, i, shape.dims[i]);
        if (__builtin_mul_overflow(numel, (size_t)shape.dims[i], &numel))
            return clt__fail(CLT_ERR_SHAPE, "%s: the shape's element count overflows size_t", what);
    }
    return CLT_OK;
}

/* The checks clt_dataset_from_arrays and clt_dataset_synthetic share. */
static clt_status check_sizes(size_t n, clt_shape shape, int classes, const char *what)
{
    if (n == 0) return clt__fail(CLT_ERR_INVALID_ARG, "%s: n is 0", what);
    if (n > UINT32_MAX)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: n = %zu is past UINT32_MAX", what, n);
    if (classes < 1) return clt__fail(CLT_ERR_INVALID_ARG, "%s: classes is %d", what, classes);
    return check_shape(shape, what);
}

clt_status clt_dataset_from_arrays(clt_dataset **out, const float *x, const int32_t *labels,
                                   size_t n, clt_shape shape, int classes)
{
    static const char what[] = "clt_dataset_from_arrays";
    if (!out) return clt__fail(CLT_ERR_INVALID_ARG, "%s: out is NULL", what);
    *out = NULL;
    if (!x || !labels)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: %s is NULL", what, !x ? "x" : "labels");
    clt_status st = check_sizes(n, shape, classes, what);
    if (st != CLT_OK) return st;
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= classes)
            return clt__fail(CLT_ERR_INVALID_ARG, "%s: labels[%zu] = %d is outside [0, %d)", what,
                             i, (int)labels[i], classes);
    size_t numel = clt_shape_numel(shape), total;
    if (__builtin_mul_overflow(n, numel, &total))
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: %zu samples of %zu floats overflow size_t",
                         what, n, numel);
    for (size_t i = 0; i < total; i++)
        if (!isfinite(x[i]))
            return clt__fail(CLT_ERR_NUMERIC, "%s: sample %zu, element %zu is %g", what,
                             i / numel, i % numel, (double)x[i]);
    clt_dataset *d;
    if ((st = dataset_alloc(&d, n, shape, classes, what)) != CLT_OK) return st;
    memcpy(d->x, x, n * d->numel * sizeof *d->x);
    memcpy(d->labels, labels, n * sizeof *d->labels);
    *out = d;
    return CLT_OK;
}

void clt_dataset_destroy(clt_dataset *d)
{
    if (!d) return;
    free(d->x);
    free(d->labels);
    free(d);
}

size_t clt_dataset_size(const clt_dataset *d) { return d ? d->n : 0; }

clt_shape clt_dataset_shape(const clt_dataset *d)
{
    clt_shape none = {0, {0, 0, 0, 0}};
    return d ? d->shape : none;
}

int clt_dataset_classes(const clt_dataset *d) { return d ? d->classes : 0; }
const float *clt_dataset_inputs(const clt_dataset *d) { return d ? d->x : NULL; }
const int32_t *clt_dataset_labels(const clt_dataset *d) { return d ? d->labels : NULL; }

clt_status clt_dataset_batch(const clt_dataset *d, const uint32_t *order, size_t start,
                             size_t count, float *x, int32_t *labels)
{
    static const char what[] = "clt_dataset_batch";
    if (!d || !x)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: %s is NULL", what, !d ? "the data set" : "x");
    if (count == 0) return clt__fail(CLT_ERR_INVALID_ARG, "%s: count is 0", what);
    if (start > d->n || count > d->n - start)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: start %zu + count %zu runs past the data "
                         "set's %zu samples", what, start, count, d->n);
    for (size_t i = 0; i < count; i++) {
        size_t s = order ? order[start + i] : start + i;
        if (s >= d->n)
            return clt__fail(CLT_ERR_INVALID_ARG, "%s: order[%zu] = %zu is past the data set's %zu",
                             what, start + i, s, d->n);
        memcpy(x + i * d->numel, d->x + s * d->numel, d->numel * sizeof *x);
        if (labels) labels[i] = d->labels[s];
    }
    return CLT_OK;
}

/* ---- synthetic ---------------------------------------------------------------------------- */

clt_status clt_dataset_synthetic(clt_dataset **out, size_t n, clt_shape shape, int classes,
                                 uint64_t seed)
{
    static const char what[] = "clt_dataset_synthetic";
    if (!out) return clt__fail(CLT_ERR_INVALID_ARG, "%s: out is NULL", what);
    *out = NULL;
    clt_status st = check_sizes(n, shape, classes, what);
    if (st != CLT_OK) return st;
    clt_dataset *d;
    if ((st = dataset_alloc(&d, n, shape, classes, what)) != CLT_OK) return st;
    size_t numel = d->numel, protos_size;
    float *protos = NULL;
    uint32_t *order = NULL;
    if (!__builtin_mul_overflow((size_t)classes, numel, &protos_size))
        protos = malloc(protos_size * sizeof *protos);
    order = malloc(n * sizeof *order);
    if (!protos || !order) {
        free(protos);
        free(order);
        clt_dataset_destroy(d);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY,
                         "%s: cannot allocate %d prototypes of %zu floats", what, classes, numel);
    }
    rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < protos_size; i++) protos[i] = (float)rng_unit(&r);
    /* Balanced labels in a random order: sample i gets class order[i] % classes. */
    permute(order, n, &r);
    /* Noise: the sum of four uniforms has variance 1/3, so scaling its centred value by
     * 0.5 * sqrt(3) gives a near-Gaussian of standard deviation 0.5 with no libm call. */
    const double noise_scale = 0.5 * 1.7320508075688772;
    for (size_t i = 0; i < n; i++) {
        int c = (int)(order[i] % (uint32_t)classes);
        d->labels[i] = c;
        const float *p = protos + (size_t)c * numel;
        float *xi = d->x + i * numel;
        for (size_t k = 0; k < numel; k++) {
            double u = rng_unit(&r) + rng_unit(&r) + rng_unit(&r) + rng_unit(&r) - 2.0;
            xi[k] = p[k] + (float)(u * noise_scale);
        }
    }
    free(protos);
    free(order);
    *out = d;
    return CLT_OK;
}

/* ---- IDX files ----------------------------------------------------------------------------
 * IDX: 00 00 TYPE RANK, then RANK big-endian uint32 dimensions, then the data, row-major.
 * zlib's gzread reads gzip streams and, when a file does not start with 1f 8b, the file as it
 * is; gzdirect() tells which it was. Sizes from a header are trusted for nothing until the
 * file proves to hold them: a plain file's size is checked first, and a gzipped one is read
 * into a buffer that grows with what actually decompresses. */

#define IDX_UBYTE 0x08
#define IDX_READ_CHUNK ((size_t)1 << 20)

typedef struct {
    const char *path;
    gzFile gz;
    bool plain;            /* not gzipped */
    long long file_bytes;  /* size on disk */
    size_t header_bytes;
    uint32_t dims[3];
    int rank;
} idx_file;

static const char *idx_type_name(int type)
{
    switch (type) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    }
    return "unknown";
}

/* Maps a short or failed gzread to a status: truncation when the data simply ended. */
static clt_status idx_read_failure(idx_file *f, size_t want, size_t got, const char *what)
{
    int zerr = Z_OK;
    const char *zmsg = gzerror(f->gz, &zerr);
    if (zerr == Z_ERRNO)
        return clt__fail(CLT_ERR_IO, "%s: read failed: %s", f->path, strerror(errno));
    if (zerr != Z_OK && zerr != Z_BUF_ERROR) {
        /* zlib's message repeats the path: "PATH: incorrect data check". */
        size_t plen = strlen(f->path);
        if (!strncmp(zmsg, f->path, plen) && !strncmp(zmsg + plen, ": ", 2)) zmsg += plen + 2;
        return clt__fail(CLT_ERR_FORMAT, "%s: corrupt gzip data: %s", f->path, zmsg);
    }
    return clt__fail(CLT_ERR_FORMAT, "%s: truncated: %s should be %zu bytes, the %s ends after %zu",
                     f->path, what, want, f->plain ? "file" : "decompressed data", got);
}

/* Reads exactly `want` bytes into a buffer that grows as data arrives. */
static clt_status idx_read(idx_file *f, size_t want, uint8_t **out, const char *what)
{
    *out = NULL;
    size_t cap = want < IDX_READ_CHUNK ? want : IDX_READ_CHUNK, got = 0;
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "%s: out of host memory", f->path);
    while (got < want) {
        if (got == cap) {
            size_t ncap = cap > want / 2 ? want : cap * 2;
            uint8_t *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "%s: cannot allocate %zu bytes for %s",
                                 f->path, ncap, what);
            }
            buf = nb;
            cap = ncap;
        }
        size_t ask = cap - got < IDX_READ_CHUNK ? cap - got : IDX_READ_CHUNK;
        int n = gzread(f->gz, buf + got, (unsigned)ask);
        if (n <= 0) {
            clt_status st = idx_read_failure(f, want, got, what);   /* before free() touches errno */
            free(buf);
            return st;
        }
        got += (size_t)n;
    }
    *out = buf;
    return CLT_OK;
}

static void idx_close(idx_file *f)
{
    if (f->gz) gzclose(f->gz);
    f->gz = NULL;
}

/* Opens an IDX file and reads its header; requires unsigned bytes and `rank` dimensions. */
static clt_status idx_open(idx_file *f, const char *path, int rank, const char *kind)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return clt__fail(CLT_ERR_IO, "cannot open %s file %s: %s", kind, path, strerror(errno));
    if (S_ISDIR(sb.st_mode))
        return clt__fail(CLT_ERR_IO, "cannot read %s file %s: it is a directory", kind, path);
    f->file_bytes = (long long)sb.st_size;
    errno = 0;
    f->gz = gzopen(path, "rb");
    if (!f->gz)
        return clt__fail(CLT_ERR_IO, "cannot open %s file %s: %s", kind, path,
                         errno ? strerror(errno) : "out of memory");
    gzbuffer(f->gz, 256 * 1024);

    uint8_t magic[4];
    int n = gzread(f->gz, magic, sizeof magic);
    f->plain = gzdirect(f->gz) == 1;
    if (n == 0) {
        int zerr = Z_OK;
        gzerror(f->gz, &zerr);
        if (zerr == Z_OK) {
            idx_close(f);
            return clt__fail(CLT_ERR_FORMAT, "%s: not an IDX %s file: it is empty", path, kind);
        }
    }
    /* A plain file shorter than the magic is truncated if what it holds starts like IDX. */
    bool idx_prefix = n >= 1 && magic[0] == 0 && (n < 2 || magic[1] == 0) &&
                      (n < 3 || magic[2] == IDX_UBYTE);
    if (n < 0 || (n < 4 && (!f->plain || idx_prefix))) {
        clt_status st = idx_read_failure(f, 4, n < 0 ? 0 : (size_t)n, "the IDX magic");
        idx_close(f);
        return st;
    }
    if (n < 4 || magic[0] != 0 || magic[1] != 0) {
        char seen[32] = "";
        for (int i = 0; i < n; i++)
            snprintf(seen + 3 * i, sizeof seen - 3 * (size_t)i, " %02x", magic[i]);
        idx_close(f);
        return clt__fail(CLT_ERR_FORMAT,
                         "%s: not an IDX %s file: it starts with%s, an IDX file with 00 00 08 %02x",
                         path, kind, seen, rank);
    }
    if (magic[2] != IDX_UBYTE) {
        idx_close(f);
        return clt__fail(CLT_ERR_FORMAT,
                         "%s: IDX data type 0x%02x (%s) is not supported: %s must be unsigned "
                         "bytes (0x08)", path, magic[2], idx_type_name(magic[2]), kind);
    }
    if (magic[3] != rank) {
        idx_close(f);
        return clt__fail(CLT_ERR_FORMAT, "%s: IDX %s must have %d dimension%s, this file has %d",
                         path, kind, rank, rank == 1 ? "" : "s", magic[3]);
    }
    uint8_t raw[12];
    size_t want = 4 * (size_t)rank;
    n = gzread(f->gz, raw, (unsigned)want);
    if (n != (int)want) {
        clt_status st = idx_read_failure(f, want, n < 0 ? 0 : (size_t)n, "the IDX dimensions");
        idx_close(f);
        return st;
    }
    f->rank = rank;
    for (int i = 0; i < rank; i++)
        f->dims[i] = (uint32_t)raw[4 * i] << 24 | (uint32_t)raw[4 * i + 1] << 16 |
                     (uint32_t)raw[4 * i + 2] << 8 | raw[4 * i + 3];
    f->header_bytes = 4 + want;
    return CLT_OK;
}

/* Checks that the header's payload fits size_t and, for a plain file, that the file holds
 * exactly that much. *payload gets the byte count. */
static clt_status idx_check_size(idx_file *f, size_t *payload, const char *desc)
{
    size_t p = 1;
    for (int i = 0; i < f->rank; i++)
        if (__builtin_mul_overflow(p, (size_t)f->dims[i], &p))
            return clt__fail(CLT_ERR_FORMAT,
                             "%s: absurd IDX dimensions %s: their product overflows", f->path,
                             desc);
    if (p > (size_t)LLONG_MAX - f->header_bytes)
        return clt__fail(CLT_ERR_FORMAT, "%s: absurd IDX dimensions %s", f->path, desc);
    *payload = p;
    if (!f->plain) return CLT_OK;
    long long expect = (long long)(f->header_bytes + p);
    if (f->file_bytes < expect)
        return clt__fail(CLT_ERR_FORMAT,
                         "%s: truncated: its header describes %s, %lld bytes with the header, "
                         "but the file holds %lld", f->path, desc, expect, f->file_bytes);
    if (f->file_bytes > expect)
        return clt__fail(CLT_ERR_FORMAT,
                         "%s: %lld bytes longer than its header describes (%s, %lld bytes with "
                         "the header)", f->path, f->file_bytes - expect, desc, expect);
    return CLT_OK;
}

/* After the whole payload of a gzipped file: nothing may follow. */
static clt_status idx_check_end(idx_file *f, const char *desc)
{
    uint8_t extra;
    int n = gzread(f->gz, &extra, 1);
    if (n == 0) return CLT_OK;
    if (n < 0) return idx_read_failure(f, 1, 0, "the end of the data");
    return clt__fail(CLT_ERR_FORMAT, "%s: the data continues past what its header describes (%s)",
                     f->path, desc);
}

clt_status clt_dataset_load_idx(clt_dataset **out, const char *images_path,
                                const char *labels_path, const clt_dataset_options *o)
{
    static const char what[] = "clt_dataset_load_idx";
    if (!out) return clt__fail(CLT_ERR_INVALID_ARG, "%s: out is NULL", what);
    *out = NULL;
    if (!images_path || !labels_path)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: %s is NULL", what,
                         !images_path ? "images_path" : "labels_path");
    clt_dataset_options def = clt_dataset_options_default();
    clt_status ost = clt__options_read(&def, o, sizeof def, CLT__DATASET_OPTIONS_V1, what, "clt_dataset_options");
    if (ost != CLT_OK) return ost;
    o = &def;
    if (o->pad_to < 0)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: pad_to is %d", what, o->pad_to);
    if (o->normalize != 0 && o->normalize != 1)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: normalize is %d; 0 or 1", what, o->normalize);
    if (o->classes < 1 || o->classes > 256)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: classes is %d; 1..256 for byte labels", what,
                         o->classes);

    idx_file img, lab;
    clt_status st = idx_open(&img, images_path, 3, "images");
    if (st != CLT_OK) return st;
    if ((st = idx_open(&lab, labels_path, 1, "labels")) != CLT_OK) {
        idx_close(&img);
        return st;
    }
    uint8_t *pixels = NULL, *bytes = NULL;
    clt_dataset *d = NULL;
    size_t n = img.dims[0], rows = img.dims[1], cols = img.dims[2], img_payload, lab_payload;
    char img_desc[96], lab_desc[64];
    snprintf(img_desc, sizeof img_desc, "%zu images of %zu x %zu", n, rows, cols);
    snprintf(lab_desc, sizeof lab_desc, "%u labels", lab.dims[0]);

    if ((st = idx_check_size(&img, &img_payload, img_desc)) != CLT_OK) goto done;
    if ((st = idx_check_size(&lab, &lab_payload, lab_desc)) != CLT_OK) goto done;
    if (n == 0 || rows == 0 || cols == 0) {
        st = clt__fail(CLT_ERR_FORMAT, "%s: holds %s: no pixels", images_path, img_desc);
        goto done;
    }
    if (lab.dims[0] != n) {
        st = clt__fail(CLT_ERR_FORMAT, "%s holds %zu images but %s holds %u labels", images_path,
                       n, labels_path, lab.dims[0]);
        goto done;
    }
    size_t side = (size_t)o->pad_to;
    if (side && (side < rows || side < cols)) {
        st = clt__fail(CLT_ERR_SHAPE, "%s: cannot pad %zu x %zu images to %zu x %zu", images_path,
                       rows, cols, side, side);
        goto done;
    }
    size_t out_rows = side ? side : rows, out_cols = side ? side : cols;
    if (out_rows > INT_MAX || out_cols > INT_MAX) {
        st = clt__fail(CLT_ERR_FORMAT, "%s: absurd IDX dimensions %s", images_path, img_desc);
        goto done;
    }
    size_t keep = o->limit && o->limit < n ? o->limit : n;
    bool whole = keep == n;

    if ((st = idx_read(&img, keep * rows * cols, &pixels, "the pixels")) != CLT_OK) goto done;
    if (whole && (st = idx_check_end(&img, img_desc)) != CLT_OK) goto done;
    if ((st = idx_read(&lab, keep, &bytes, "the labels")) != CLT_OK) goto done;
    if (whole && (st = idx_check_end(&lab, lab_desc)) != CLT_OK) goto done;
    for (size_t i = 0; i < keep; i++)
        if (bytes[i] >= o->classes) {
            st = clt__fail(CLT_ERR_FORMAT,
                           "%s: label %zu is %d, outside [0, %d) (clt_dataset_options.classes)",
                           labels_path, i, bytes[i], o->classes);
            goto done;
        }

    if ((st = dataset_alloc(&d, keep, clt_shape3(1, (int)out_rows, (int)out_cols), o->classes,
                            what)) != CLT_OK)
        goto done;
    /* One table for the 256 pixel values, so every sample gets bit-identical values. */
    float value[256];
    for (int v = 0; v < 256; v++) {
        float s = (float)v / 255.0f;
        value[v] = o->normalize ? (s - CLT_FASHION_MNIST_MEAN) / CLT_FASHION_MNIST_STD : s;
    }
    size_t top = (out_rows - rows) / 2, left = (out_cols - cols) / 2;
    for (size_t i = 0; i < keep; i++) {
        float *xi = d->x + i * d->numel;
        const uint8_t *pi = pixels + i * rows * cols;
        for (size_t k = 0; k < d->numel; k++) xi[k] = value[0];
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < cols; c++)
                xi[(top + r) * out_cols + left + c] = value[pi[r * cols + c]];
        d->labels[i] = bytes[i];
    }
    *out = d;
    d = NULL;

done:
    clt_dataset_destroy(d);
    free(pixels);
    free(bytes);
    idx_close(&img);
    idx_close(&lab);
    return st;
}

/* ---- Fashion-MNIST ------------------------------------------------------------------------ */

#define CLT_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* DIR/NAME if it exists, else DIR/NAME.gz if that does; CLT_ERR_IO naming both otherwise. */
static clt_status find_file(char *path, size_t cap, const char *dir, const char *name)
{
    struct stat sb;
    int len = snprintf(path, cap, "%s/%s", dir, name);
    if (len < 0 || (size_t)len + 4 > cap)
        return clt__fail(CLT_ERR_INVALID_ARG,
                         "clt_dataset_load_fashion_mnist: folder name too long");
    if (stat(path, &sb) == 0) return CLT_OK;
    strcat(path, ".gz");
    if (stat(path, &sb) == 0) return CLT_OK;
    return clt__fail(CLT_ERR_IO, "no Fashion-MNIST file %s or %s.gz in %s", name, name, dir);
}

static clt_status load_split(clt_dataset **out, const char *dir, const char *prefix,
                             const clt_dataset_options *o)
{
    char names[2][64], paths[2][4096];
    snprintf(names[0], sizeof names[0], "%s-images-idx3-ubyte", prefix);
    snprintf(names[1], sizeof names[1], "%s-labels-idx1-ubyte", prefix);
    for (int i = 0; i < 2; i++) {
        clt_status st = find_file(paths[i], sizeof paths[i], dir, names[i]);
        if (st != CLT_OK) return st;
    }
    return clt_dataset_load_idx(out, paths[0], paths[1], o);
}

clt_status clt_dataset_load_fashion_mnist(clt_dataset **train, clt_dataset **test,
                                          const char *dir, const clt_dataset_options *o)
{
    static const char what[] = "clt_dataset_load_fashion_mnist";
    if (train) *train = NULL;
    if (test) *test = NULL;
    if (!train && !test)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: train and test are both NULL", what);
    if (!dir) dir = CLT_FASHION_MNIST_DIR;
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return clt__fail(CLT_ERR_IO, "%s: cannot open %s: %s%s", what, dir, strerror(errno),
                         strcmp(dir, CLT_FASHION_MNIST_DIR) ? ""
                         : " (Debian's dataset-fashion-mnist package installs it)");
    if (!S_ISDIR(sb.st_mode))
        return clt__fail(CLT_ERR_IO, "%s: %s is not a directory", what, dir);
    clt_status st = CLT_OK;
    if (train) st = load_split(train, dir, "train", o);
    if (st == CLT_OK && test) st = load_split(test, dir, "t10k", o);
    if (st != CLT_OK && train) {
        clt_dataset_destroy(*train);
        *train = NULL;
    }
    return st;
}
