/* Reads the PyTorch reference files that tests/gen_reference.py writes (tests/data/NAME.ref),
 * and draws inputs from splitmix64 exactly as that script does. */
#ifndef CLT_REF_H
#define CLT_REF_H

#include <cltrain.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char name[64];
    int rank;
    int dims[8];
    size_t n;
    float *data;
} ref_entry;

typedef struct {
    int count;
    ref_entry *e;
} ref_file;

/* Loads $CLT_TEST_SRCDIR/tests/data/NAME.ref (or ./tests/data); returns 0 on success. */
static inline int ref_load(ref_file *r, const char *name)
{
    const char *dir = getenv("CLT_TEST_SRCDIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/%s.ref", dir ? dir : ".", name);
    memset(r, 0, sizeof *r);
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("# cannot open %s\n", path);
        return -1;
    }
    char magic[8];
    uint32_t count;
    int bad = fread(magic, 1, 8, f) != 8 || memcmp(magic, "CLTREF01", 8) || fread(&count, 4, 1, f) != 1 || count > 1000;
    if (!bad) r->e = calloc(count, sizeof *r->e);
    for (uint32_t i = 0; !bad && i < count; i++) {
        ref_entry *e = &r->e[i];
        uint32_t len, rank, d;
        bad = fread(&len, 4, 1, f) != 1 || len >= sizeof e->name || fread(e->name, 1, len, f) != len ||
              fread(&rank, 4, 1, f) != 1 || rank > 8;
        e->rank = (int)rank;
        e->n = 1;
        for (uint32_t k = 0; !bad && k < rank; k++) {
            bad = fread(&d, 4, 1, f) != 1;
            e->dims[k] = (int)d;
            e->n *= d;
        }
        if (!bad) bad = !(e->data = malloc((e->n ? e->n : 1) * 4)) || fread(e->data, 4, e->n, f) != e->n;
        r->count = (int)i + 1;
    }
    fclose(f);
    if (bad) printf("# %s is malformed\n", path);
    return bad ? -1 : 0;
}

static inline const ref_entry *ref_get(const ref_file *r, const char *name)
{
    for (int i = 0; i < r->count; i++)
        if (!strcmp(r->e[i].name, name)) return &r->e[i];
    printf("# reference entry '%s' missing\n", name);
    return NULL;
}

static inline void ref_free(ref_file *r)
{
    for (int i = 0; i < r->count; i++) free(r->e[i].data);
    free(r->e);
    memset(r, 0, sizeof *r);
}

/* splitmix64 as in tests/gen_reference.py */
typedef struct {
    uint64_t s;
} ref_rng;

static inline uint64_t ref_next(ref_rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* n values in [-scale, scale), rounded to float once, as the script does in double. */
static inline void ref_fill(ref_rng *r, float *out, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (float)(((double)(ref_next(r) >> 40) / 16777216.0 * 2.0 - 1.0) * scale);
}

/* The seed MLP, 1024-512-256-128-10 with ReLU, as tests/gen_reference.py builds it; with
 * dropout > 0, a Dropout(dropout) after the first ReLU. */
static const int ref_seed_sizes[5] = {1024, 512, 256, 128, 10};

static inline clt_model *ref_seed_mlp(float dropout)
{
    clt_model *m = NULL;
    clt_model_create(&m, clt_shape1(1024));
    for (int i = 0; i < 4; i++) {
        clt_model_add(m, clt_linear(ref_seed_sizes[i + 1]));
        if (i < 3) clt_model_add(m, clt_relu());
        if (i == 0 && dropout > 0) clt_model_add(m, clt_dropout(dropout));
    }
    return m;
}

/* Inputs (steps, batch, 1024) in [-1, 1) and labels (steps, batch) in 0..9, the batches the
 * parallel tests train on, drawn from seed 2024. */
static inline void ref_seed_batches(float *x, int32_t *y, int steps, int batch)
{
    ref_rng r = {2024};
    for (int s = 0; s < steps; s++) {
        ref_fill(&r, x + (size_t)s * (size_t)batch * 1024, (size_t)batch * 1024, 1.0);
        for (int i = 0; i < batch; i++) y[s * batch + i] = (int32_t)((ref_next(&r) >> 33) % 10);
    }
}

#endif
