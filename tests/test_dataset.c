/* Data sets: IDX files written here (plain and gzipped) read back value by value, every way a
 * data file can be bad, arrays, batches, the seeded shuffle and the synthetic set; then the real
 * Fashion-MNIST when Debian's dataset-fashion-mnist is installed. Needs no OpenCL device.
 * Pixel values are compared with atol 1e-7, rtol 0: they are p / 255 computed in float. */
#include "tap.h"
#include "scratch.h"

#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"
#define ATOL 1e-7

/* ---- scratch files ------------------------------------------------------------------------ */

static char tmpdir[256];
static char written[64][320];
static int nwritten;

/* tmpdir/name, remembered for cleanup. */
static const char *scratch(const char *name)
{
    snprintf(written[nwritten], sizeof written[0], "%s/%s", tmpdir, name);
    return written[nwritten++];
}

static const char *write_file(const char *name, const uint8_t *data, size_t len, bool gz)
{
    const char *path = scratch(name);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        if (!f || gzwrite(f, data, (unsigned)len) != (int)len || gzclose(f) != Z_OK)
            diag("cannot write %s", path);
    } else {
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) diag("cannot write %s", path);
    }
    return path;
}

/* Reads a whole file (for cutting a gzip file short). */
static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    uint8_t *buf = malloc(*len);
    if (fread(buf, 1, *len, f) != *len) *len = 0;
    fclose(f);
    return buf;
}

/* An IDX file in memory: header (type, dims) followed by `payload` bytes. */
typedef struct {
    uint8_t *data;
    size_t len;
} blob;

static blob idx(uint8_t type, int rank, const uint32_t *dims, const uint8_t *payload, size_t n)
{
    blob b;
    b.len = 4 + 4 * (size_t)rank + n;
    b.data = calloc(1, b.len);
    b.data[2] = type;
    b.data[3] = (uint8_t)rank;
    for (int i = 0; i < rank; i++) {
        uint8_t *p = b.data + 4 + 4 * i;
        p[0] = (uint8_t)(dims[i] >> 24);
        p[1] = (uint8_t)(dims[i] >> 16);
        p[2] = (uint8_t)(dims[i] >> 8);
        p[3] = (uint8_t)dims[i];
    }
    if (n) memcpy(b.data + 4 + 4 * rank, payload, n);
    return b;
}

static uint8_t pixel(size_t i, size_t r, size_t c)
{
    return (uint8_t)(i * 97 + r * 13 + c * 5 + (r == c) * 128);
}

/* images n x rows x cols of pixel(), and labels i % 10 (or `labels`). */
static blob images_blob(uint32_t n, uint32_t rows, uint32_t cols)
{
    uint8_t *px = malloc((size_t)n * rows * cols);
    for (size_t i = 0; i < n; i++)
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < cols; c++) px[(i * rows + r) * cols + c] = pixel(i, r, c);
    blob b = idx(0x08, 3, (uint32_t[]){n, rows, cols}, px, (size_t)n * rows * cols);
    free(px);
    return b;
}

static blob labels_blob(uint32_t n, const uint8_t *labels)
{
    uint8_t *l = malloc(n);
    for (size_t i = 0; i < n; i++) l[i] = labels ? labels[i] : (uint8_t)(i % 10);
    blob b = idx(0x08, 1, (uint32_t[]){n}, l, n);
    free(l);
    return b;
}

/* What a load of pixel() images must give: n x out x out floats, padded centred. */
static float *expected(size_t n, size_t rows, size_t cols, size_t out_rows, size_t out_cols,
                       bool normalize)
{
    float *x = malloc(n * out_rows * out_cols * sizeof *x);
    size_t top = (out_rows - rows) / 2, left = (out_cols - cols) / 2;
    for (size_t i = 0; i < n; i++)
        for (size_t r = 0; r < out_rows; r++)
            for (size_t c = 0; c < out_cols; c++) {
                bool in = r >= top && r < top + rows && c >= left && c < left + cols;
                float v = in ? (float)pixel(i, r - top, c - left) / 255.0f : 0.0f;
                if (normalize) v = (v - 0.2860f) / 0.3530f;
                x[(i * out_rows + r) * out_cols + c] = v;
            }
    return x;
}

/* Compares a loaded set's inputs with expected(); a missing set fails the point. */
static void check_pixels(const clt_dataset *d, size_t n, size_t rows, size_t cols, size_t out_rows,
                         size_t out_cols, bool normalize, double atol, const char *what)
{
    float *ref = expected(n, rows, cols, out_rows, out_cols, normalize);
    if (clt_dataset_size(d) == n)
        ok_close(clt_dataset_inputs(d), ref, n * out_rows * out_cols, atol, 0, what);
    else
        ok(false, "%s: the data set has %zu samples, not %zu", what, clt_dataset_size(d), n);
}

static bool shape_is(clt_shape s, int c, int h, int w)
{
    return s.rank == 3 && s.dims[0] == c && s.dims[1] == h && s.dims[2] == w;
}

/* ---- IDX: values ---------------------------------------------------------------------------- */

static const char *img_plain, *img_gz, *lab_plain, *lab_gz;

static void idx_values(void)
{
    blob im = images_blob(4, 3, 2), lb = labels_blob(4, (const uint8_t[]){3, 0, 9, 7});
    img_plain = write_file("img", im.data, im.len, false);
    img_gz = write_file("img.gz", im.data, im.len, true);
    lab_plain = write_file("lab", lb.data, lb.len, false);
    lab_gz = write_file("lab.bin", lb.data, lb.len, true); /* gzipped, told by content */
    free(im.data);
    free(lb.data);

    clt_dataset *d = NULL, *g = NULL;
    ok_status(clt_dataset_load_idx(&d, img_plain, lab_plain, NULL), "plain IDX files load");
    ok(clt_dataset_size(d) == 4 && shape_is(clt_dataset_shape(d), 1, 3, 2) &&
           clt_dataset_classes(d) == 10,
       "4 samples of shape {1, 3, 2}, 10 classes");
    check_pixels(d, 4, 3, 2, 3, 2, false, ATOL, "every pixel is p / 255");
    const int32_t *l = clt_dataset_labels(d);
    ok(l && l[0] == 3 && l[1] == 0 && l[2] == 9 && l[3] == 7, "labels 3 0 9 7");

    ok_status(clt_dataset_load_idx(&g, img_gz, lab_gz, NULL),
              "gzipped IDX files load, one named without .gz");
    ok(g && d && clt_dataset_size(g) == 4 &&
           !memcmp(clt_dataset_inputs(g), clt_dataset_inputs(d), 24 * sizeof(float)) &&
           !memcmp(clt_dataset_labels(g), clt_dataset_labels(d), 4 * sizeof(int32_t)),
       "the gzipped files give the same values and labels");
    clt_dataset_destroy(g);
    g = NULL;
    ok_status(clt_dataset_load_idx(&g, img_gz, lab_plain, NULL),
              "a gzipped and a plain file mixed");
    clt_dataset_destroy(g);
    clt_dataset_destroy(d);

    /* Odd margins: 3 x 2 in 6 x 6 puts 1 row above, 2 below, 2 columns each side. */
    clt_dataset_options o = clt_dataset_options_default();
    o.pad_to = 6;
    ok_status(clt_dataset_load_idx(&d, img_plain, lab_plain, &o), "pad 3 x 2 to 6 x 6");
    ok(shape_is(clt_dataset_shape(d), 1, 6, 6), "the shape is {1, 6, 6}");
    check_pixels(d, 4, 3, 2, 6, 6, false, ATOL, "odd margins: 1 above, 2 below, 2 left and right");
    ok(d && clt_dataset_inputs(d)[36 + 0 * 6 + 2] == 0 &&
           clt_dataset_inputs(d)[36 + 1 * 6 + 2] == (float)pixel(1, 0, 0) / 255.0f,
       "sample 1: row 0 is padding, (1, 2) holds pixel (0, 0)");
    clt_dataset_destroy(d);

    o.normalize = 1;
    ok_status(clt_dataset_load_idx(&d, img_gz, lab_gz, &o), "pad and normalize");
    check_pixels(d, 4, 3, 2, 6, 6, true, 1e-6, "(p/255 - 0.2860) / 0.3530, padding as black");
    ok(d && fabsf(clt_dataset_inputs(d)[0] - (-0.2860f / 0.3530f)) < 1e-6f,
       "padding is -0.8102 (a black pixel) when normalized");
    clt_dataset_destroy(d);

    o = clt_dataset_options_default();
    o.limit = 2;
    ok_status(clt_dataset_load_idx(&d, img_gz, lab_gz, &o), "limit 2 on gzipped files");
    ok(clt_dataset_size(d) == 2, "limit 2 keeps 2 samples");
    check_pixels(d, 2, 3, 2, 3, 2, false, ATOL, "the first two samples");
    clt_dataset_destroy(d);
    o.limit = 1000;
    ok_status(clt_dataset_load_idx(&d, img_plain, lab_plain, &o), "limit past the count");
    ok(clt_dataset_size(d) == 4, "a limit past the count keeps every sample");
    clt_dataset_destroy(d);

    /* The seed model's case: 28 x 28 to 32 x 32, 2 on each side. */
    blob big = images_blob(3, 28, 28), bl = labels_blob(3, NULL);
    const char *bi = write_file("big.gz", big.data, big.len, true);
    const char *blp = write_file("big-labels", bl.data, bl.len, false);
    o = clt_dataset_options_default();
    o.pad_to = 32;
    ok_status(clt_dataset_load_idx(&d, bi, blp, &o), "pad 28 x 28 to 32 x 32");
    ok(shape_is(clt_dataset_shape(d), 1, 32, 32), "the shape is {1, 32, 32}");
    check_pixels(d, 3, 28, 28, 32, 32, false, ATOL, "28 x 28 centred with 2 zeros each side");
    ok(d && clt_dataset_inputs(d)[1024 + 2 * 32 + 2] == (float)pixel(1, 0, 0) / 255.0f &&
           clt_dataset_inputs(d)[1024 + 2 * 32 + 1] == 0 &&
           clt_dataset_inputs(d)[1024 + 1 * 32 + 2] == 0,
       "sample 1's pixel (0, 0) sits at (2, 2) with zeros left of and above it");
    clt_dataset_destroy(d);
    free(big.data);
    free(bl.data);

    /* Labels past the default 10 classes need classes set. */
    blob l11 = labels_blob(4, (const uint8_t[]){1, 2, 3, 11});
    const char *lp = write_file("lab11", l11.data, l11.len, false);
    free(l11.data);
    ok_error(clt_dataset_load_idx(&d, img_plain, lp, NULL), CLT_ERR_FORMAT, "label 3 is 11",
             "a label of 11 with 10 classes names the sample");
    ok(d == NULL, "a failed load leaves *out NULL");
    o = clt_dataset_options_default();
    o.classes = 12;
    ok_status(clt_dataset_load_idx(&d, img_plain, lp, &o), "the same labels with classes 12");
    ok(d && clt_dataset_classes(d) == 12 && clt_dataset_labels(d)[3] == 11,
       "12 classes, label 11 kept");
    clt_dataset_destroy(d);
}

/* ---- IDX: every way a file can be bad ------------------------------------------------------- */

static void idx_failures(void)
{
    clt_dataset *d = (clt_dataset *)1;
    const char *missing = scratch("no-such-file");
    ok_error(clt_dataset_load_idx(&d, missing, lab_plain, NULL), CLT_ERR_IO, missing,
             "a missing images file: CLT_ERR_IO with the path");
    ok(d == NULL, "*out is NULL after a failure");
    ok_error(clt_dataset_load_idx(&d, missing, lab_plain, NULL), CLT_ERR_IO, "No such file",
             "... and the system's reason");
    ok_error(clt_dataset_load_idx(&d, img_plain, missing, NULL), CLT_ERR_IO, missing,
             "a missing labels file");
    ok_error(clt_dataset_load_idx(&d, tmpdir, lab_plain, NULL), CLT_ERR_IO, "directory",
             "a directory instead of a file");

    blob im = images_blob(4, 3, 2), lb = labels_blob(4, NULL);
    const char *p;

    p = write_file("trunc", im.data, im.len - 5, false);
    ok_error(clt_dataset_load_idx(&d, p, lab_plain, NULL), CLT_ERR_FORMAT, "truncated",
             "a truncated plain file: CLT_ERR_FORMAT");
    ok_error(clt_dataset_load_idx(&d, p, lab_plain, NULL), CLT_ERR_FORMAT,
             "40 bytes with the header, but the file holds 35",
             "... saying what the header promises and what the file holds");
    ok_error(clt_dataset_load_idx(&d, p, lab_plain, NULL), CLT_ERR_FORMAT, p, "... with the path");
    p = write_file("trunc-header", im.data, 10, false);
    ok_error(clt_dataset_load_idx(&d, p, lab_plain, NULL), CLT_ERR_FORMAT, "truncated",
             "a plain file cut inside its header");
    p = write_file("trunc-magic", im.data, 3, false);
    ok_error(clt_dataset_load_idx(&d, p, lab_plain, NULL), CLT_ERR_FORMAT, "truncated",
             "a plain file cut inside its magic");

    p = write_file("trunc-inner.gz", im.data, im.len - 5, true);
    ok_error(clt_dataset_load_idx(&d, p, lab_plain, NULL), CLT_ERR_FORMAT,
             "the decompressed data ends after 19", "a gzipped file whose content is short");

    /* A gzip stream cut in the middle: zlib's "unexpected end of file". */
    blob many = images_blob(200, 28, 28);
    const char *full = write_file("many.gz", many.data, many.len, true);
    size_t glen = 0;
    uint8_t *gz = slurp(full, &glen);
    const char *cut = p = write_file("many-cut.gz", gz, glen / 2, false);
    blob ml = labels_blob(200, NULL);
    const char *mlp = write_file("many-labels", ml.data, ml.len, false);
    ok_status(clt_dataset_load_idx(&d, full, mlp, NULL), "the whole gzip file loads");
    clt_dataset_destroy(d);
    ok_error(clt_dataset_load_idx(&d, p, mlp, NULL), CLT_ERR_FORMAT, "truncated",
             "a gzip file cut in half: truncated");
    ok_error(clt_dataset_load_idx(&d, p, mlp, NULL), CLT_ERR_FORMAT, "156800 bytes",
             "... naming the size the header promises");
    /* Corrupt deflate data: zlib's own error, as CLT_ERR_FORMAT. */
    for (size_t i = glen / 3; i < glen / 3 + 64; i++) gz[i] ^= 0x5a;
    p = write_file("many-corrupt.gz", gz, glen, false);
    ok_error(clt_dataset_load_idx(&d, p, mlp, NULL), CLT_ERR_FORMAT, "corrupt gzip data",
             "a corrupt gzip stream");
    free(gz);
    free(many.data);
    free(ml.data);
    /* Limit reads a gzip file only as far as needed: a cut file still gives its first samples. */
    clt_dataset_options o = clt_dataset_options_default();
    o.limit = 10;
    ok_status(clt_dataset_load_idx(&d, cut, mlp, &o),
              "limit 10 on a cut gzip file reads only the start");
    clt_dataset_destroy(d);

    uint8_t *longer = malloc(im.len + 3);
    memcpy(longer, im.data, im.len);
    memset(longer + im.len, 7, 3);
    p = write_file("longer", longer, im.len + 3, false);
    ok_error(clt_dataset_load_idx(&d, p, lab_plain, NULL), CLT_ERR_FORMAT, "3 bytes longer",
             "a plain file with bytes past what its header describes");
    p = write_file("longer.gz", longer, im.len + 3, true);
    ok_error(clt_dataset_load_idx(&d, p, lab_plain, NULL), CLT_ERR_FORMAT, "continues past",
             "a gzipped file with bytes past what its header describes");
    free(longer);

    const char text[] = "PK\003\004 this is a zip file, not IDX";
    p = write_file("zip", (const uint8_t *)text, sizeof text, false);
    ok_error(clt_dataset_load_idx(&d, p, lab_plain, NULL), CLT_ERR_FORMAT,
             "not an IDX images file: it starts with 50 4b 03 04",
             "wrong magic: says what it found");
    p = write_file("zip.gz", (const uint8_t *)text, sizeof text, true);
    ok_error(clt_dataset_load_idx(&d, p, lab_plain, NULL), CLT_ERR_FORMAT, "not an IDX",
             "wrong magic inside a gzip stream");
    p = write_file("empty", (const uint8_t *)"", 0, false);
    ok_error(clt_dataset_load_idx(&d, p, lab_plain, NULL), CLT_ERR_FORMAT, "empty",
             "an empty file");

    blob fl = idx(0x0D, 3, (uint32_t[]){1, 1, 1}, (const uint8_t[]){0, 0, 0, 0}, 4);
    p = write_file("float", fl.data, fl.len, false);
    free(fl.data);
    ok_error(clt_dataset_load_idx(&d, p, lab_plain, NULL), CLT_ERR_FORMAT,
             "0x0d (float) is not supported", "the float type byte 0x0D is refused");
    ok_error(clt_dataset_load_idx(&d, lab_plain, lab_plain, NULL), CLT_ERR_FORMAT,
             "must have 3 dimensions, this file has 1",
             "a labels file given as images: wrong rank");
    ok_error(clt_dataset_load_idx(&d, img_plain, img_plain, NULL), CLT_ERR_FORMAT,
             "must have 1 dimension, this file has 3", "an images file given as labels");

    blob l5 = labels_blob(5, NULL);
    p = write_file("lab5", l5.data, l5.len, true);
    free(l5.data);
    ok_error(clt_dataset_load_idx(&d, img_plain, p, NULL), CLT_ERR_FORMAT, "holds 4 images but",
             "4 images and 5 labels: count mismatch");

    blob ab = idx(0x08, 3, (uint32_t[]){0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, NULL, 0);
    p = write_file("absurd", ab.data, ab.len, false);
    ok_error(clt_dataset_load_idx(&d, p, lab_plain, NULL), CLT_ERR_FORMAT, "absurd",
             "dims whose product overflows");
    p = write_file("absurd.gz", ab.data, ab.len, true);
    ok_error(clt_dataset_load_idx(&d, p, lab_plain, NULL), CLT_ERR_FORMAT, "absurd",
             "dims whose product overflows, gzipped");
    free(ab.data);
    /* 4e9 images of 1000 x 1000 (4e15 bytes) in a small file: refused before any allocation. */
    ab = idx(0x08, 3, (uint32_t[]){4000000000u, 1000, 1000}, (const uint8_t[]){1, 2, 3}, 3);
    p = write_file("huge", ab.data, ab.len, false);
    ok_error(clt_dataset_load_idx(&d, p, lab_plain, NULL), CLT_ERR_FORMAT, "but the file holds 19",
             "a header promising 4e15 bytes in a 19-byte file");
    p = write_file("huge.gz", ab.data, ab.len, true);
    blob hl = idx(0x08, 1, (uint32_t[]){4000000000u}, (const uint8_t[]){1, 2}, 2);
    const char *hlp = write_file("huge-labels.gz", hl.data, hl.len, true);
    free(hl.data);
    ok_error(clt_dataset_load_idx(&d, p, hlp, NULL), CLT_ERR_FORMAT, "ends after 3",
             "the same gzipped: read as it comes, truncated, no 4e15-byte allocation");
    free(ab.data);
    ab = idx(0x08, 3, (uint32_t[]){4, 0, 2}, NULL, 0);
    p = write_file("zero", ab.data, ab.len, false);
    ok_error(clt_dataset_load_idx(&d, p, lab_plain, NULL), CLT_ERR_FORMAT, "no pixels",
             "0-row images");
    free(ab.data);

    o = clt_dataset_options_default();
    o.pad_to = 2;
    ok_error(clt_dataset_load_idx(&d, img_plain, lab_plain, &o), CLT_ERR_SHAPE, "cannot pad 3 x 2",
             "pad_to smaller than the images");
    o = clt_dataset_options_default();
    o.pad_to = -1;
    ok_error(clt_dataset_load_idx(&d, img_plain, lab_plain, &o), CLT_ERR_INVALID_ARG, "pad_to",
             "pad_to -1");
    o = clt_dataset_options_default();
    o.normalize = 2;
    ok_error(clt_dataset_load_idx(&d, img_plain, lab_plain, &o), CLT_ERR_INVALID_ARG, "normalize",
             "normalize 2");
    o = clt_dataset_options_default();
    o.classes = 0;
    ok_error(clt_dataset_load_idx(&d, img_plain, lab_plain, &o), CLT_ERR_INVALID_ARG, "classes",
             "classes 0");
    o.classes = 257;
    ok_error(clt_dataset_load_idx(&d, img_plain, lab_plain, &o), CLT_ERR_INVALID_ARG, "classes",
             "classes 257");
    ok_error(clt_dataset_load_idx(NULL, img_plain, lab_plain, NULL), CLT_ERR_INVALID_ARG, "out",
             "NULL out");
    ok_error(clt_dataset_load_idx(&d, NULL, lab_plain, NULL), CLT_ERR_INVALID_ARG, "images_path",
             "NULL images path");
    ok_error(clt_dataset_load_idx(&d, img_plain, NULL, NULL), CLT_ERR_INVALID_ARG, "labels_path",
             "NULL labels path");
    free(im.data);
    free(lb.data);
}

/* ---- arrays and batches ---------------------------------------------------------------------- */

static void arrays_and_batches(void)
{
    float x[5 * 3];
    int32_t y[5] = {0, 1, 2, 1, 0};
    for (int i = 0; i < 15; i++) x[i] = (float)i * 0.5f - 2.0f;
    clt_dataset *d = NULL;
    ok_status(clt_dataset_from_arrays(&d, x, y, 5, clt_shape1(3), 3), "5 samples of 3 from arrays");
    x[0] = 99.0f;
    y[0] = 2;
    ok(d && clt_dataset_inputs(d)[0] == -2.0f && clt_dataset_labels(d)[0] == 0,
       "the data set holds its own copy");
    ok(clt_dataset_size(d) == 5 && clt_dataset_shape(d).rank == 1 &&
           clt_dataset_shape(d).dims[0] == 3 && clt_dataset_classes(d) == 3,
       "size 5, shape {3}, 3 classes");

    float bx[3 * 3];
    int32_t by[3];
    ok_status(clt_dataset_batch(d, NULL, 1, 3, bx, by), "a batch without an order: samples 1..3");
    float ref[9] = {-0.5f, 0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 2.5f, 3.0f, 3.5f};
    ok_close(bx, ref, 9, 0, 0, "samples 1..3 copied in order");
    ok(by[0] == 1 && by[1] == 2 && by[2] == 1, "their labels");
    uint32_t order[5] = {4, 0, 3, 1, 2};
    ok_status(clt_dataset_batch(d, order, 2, 2, bx, NULL), "a batch through an order, labels NULL");
    float ref2[6] = {2.5f, 3.0f, 3.5f, -0.5f, 0.0f, 0.5f};
    ok_close(bx, ref2, 6, 0, 0, "order[2..3] = samples 3 and 1");
    float all[15];
    int32_t all_y[5];
    ok_status(clt_dataset_batch(d, order, 0, 5, all, all_y), "a batch of the whole set");
    ok(all[0] == 4.0f && all_y[0] == 0 && all[14] == 2.0f && all_y[4] == 2,
       "the whole set in the order's order");
    ok_error(clt_dataset_batch(d, NULL, 3, 3, bx, by), CLT_ERR_INVALID_ARG,
             "runs past the data set's 5 samples", "start + count past n");
    ok_error(clt_dataset_batch(d, NULL, SIZE_MAX, 2, bx, by), CLT_ERR_INVALID_ARG, "runs past",
             "a start that would overflow");
    ok_error(clt_dataset_batch(d, NULL, 6, 1, bx, by), CLT_ERR_INVALID_ARG, "runs past",
             "start past n");
    uint32_t bad[5] = {0, 1, 7, 2, 3};
    ok_error(clt_dataset_batch(d, bad, 1, 3, bx, by), CLT_ERR_INVALID_ARG, "order[2] = 7",
             "an order entry past n names its position");
    ok_error(clt_dataset_batch(d, NULL, 0, 0, bx, by), CLT_ERR_INVALID_ARG, "count is 0",
             "count 0");
    ok_error(clt_dataset_batch(NULL, NULL, 0, 1, bx, by), CLT_ERR_INVALID_ARG, "NULL",
             "NULL data set");
    ok_error(clt_dataset_batch(d, NULL, 0, 1, NULL, by), CLT_ERR_INVALID_ARG, "x is NULL",
             "NULL x");
    clt_dataset_destroy(d);

    clt_dataset *e = (clt_dataset *)1;
    int32_t yb[5] = {0, 1, 3, 1, 0};
    ok_error(clt_dataset_from_arrays(&e, x, yb, 5, clt_shape1(3), 3), CLT_ERR_INVALID_ARG,
             "labels[2] = 3", "a label out of range names its index");
    ok(e == NULL, "*out is NULL after a failure");
    yb[2] = -1;
    ok_error(clt_dataset_from_arrays(&e, x, yb, 5, clt_shape1(3), 3), CLT_ERR_INVALID_ARG,
             "labels[2] = -1", "a negative label");
    x[7] = NAN;
    ok_error(clt_dataset_from_arrays(&e, x, y, 5, clt_shape1(3), 3), CLT_ERR_NUMERIC,
             "sample 2, element 1", "a NaN input names its sample");
    x[7] = 0;
    ok_error(clt_dataset_from_arrays(&e, NULL, y, 5, clt_shape1(3), 3), CLT_ERR_INVALID_ARG,
             "x is NULL", "NULL x");
    ok_error(clt_dataset_from_arrays(&e, x, NULL, 5, clt_shape1(3), 3), CLT_ERR_INVALID_ARG,
             "labels is NULL", "NULL labels");
    ok_error(clt_dataset_from_arrays(NULL, x, y, 5, clt_shape1(3), 3), CLT_ERR_INVALID_ARG,
             "out is NULL", "NULL out");
    ok_error(clt_dataset_from_arrays(&e, x, y, 0, clt_shape1(3), 3), CLT_ERR_INVALID_ARG, "n is 0",
             "n = 0");
    ok_error(clt_dataset_from_arrays(&e, x, y, 5, clt_shape1(0), 3), CLT_ERR_SHAPE,
             "dimension 0 is 0", "a 0 dimension");
    clt_shape r9 = {9, {1, 1, 1, 1}};
    ok_error(clt_dataset_from_arrays(&e, x, y, 5, r9, 3), CLT_ERR_SHAPE, "rank 9", "rank 9");
    ok_error(clt_dataset_from_arrays(&e, x, y, 5, clt_shape1(3), 0), CLT_ERR_INVALID_ARG,
             "classes is 0", "0 classes");

    ok(clt_dataset_size(NULL) == 0 && clt_dataset_inputs(NULL) == NULL &&
           clt_dataset_labels(NULL) == NULL && clt_dataset_classes(NULL) == 0 &&
           clt_dataset_shape(NULL).rank == 0,
       "accessors of NULL give 0 / NULL");
    clt_dataset_destroy(NULL);
    ok(1, "clt_dataset_destroy(NULL) is fine");
}

/* ---- shuffle ----------------------------------------------------------------------------------
 */

static bool is_permutation(const uint32_t *o, size_t n)
{
    bool *seen = calloc(n, sizeof *seen);
    bool good = true;
    for (size_t i = 0; i < n && good; i++) {
        good = o[i] < n && !seen[o[i]];
        if (good) seen[o[i]] = true;
    }
    free(seen);
    return good;
}

static void shuffle(void)
{
    enum { N = 1000 };
    static uint32_t a[N], b[N], c[N];
    ok_status(clt_dataset_shuffle(a, N, 42), "shuffle 1000 with seed 42");
    ok(is_permutation(a, N), "every index once");
    clt_dataset_shuffle(b, N, 42);
    ok(!memcmp(a, b, sizeof a), "the same seed gives the same order");
    clt_dataset_shuffle(c, N, 43);
    size_t same = 0, fixed = 0;
    for (size_t i = 0; i < N; i++) {
        same += a[i] == c[i];
        fixed += a[i] == i;
    }
    ok(same < 20, "seeds 42 and 43 differ (%zu of 1000 positions agree)", same);
    ok(fixed < 20, "seed 42 moves nearly everything (%zu fixed points)", fixed);
    /* Known answers: xoshiro256** seeded by splitmix64, Fisher-Yates from the end, bounded
     * draws by rejection (checked against an independent Python implementation). */
    ok(a[0] == 797 && a[1] == 495 && a[2] == 81 && a[3] == 273 && a[4] == 300 && a[5] == 60,
       "seed 42, n 1000 starts 797 495 81 273 300 60 (got %u %u %u %u %u %u)", a[0], a[1], a[2],
       a[3], a[4], a[5]);
    uint32_t t[10], want[10] = {7, 3, 8, 9, 5, 6, 4, 1, 0, 2};
    clt_dataset_shuffle(t, 10, 42);
    ok(!memcmp(t, want, sizeof t), "seed 42, n 10 is 7 3 8 9 5 6 4 1 0 2");
    uint32_t one = 5;
    ok_status(clt_dataset_shuffle(&one, 1, 9), "n 1");
    ok(one == 0, "n 1 gives {0}");
    ok_error(clt_dataset_shuffle(NULL, 3, 1), CLT_ERR_INVALID_ARG, "order is NULL", "NULL order");
    ok_error(clt_dataset_shuffle(t, 0, 1), CLT_ERR_INVALID_ARG, "n is 0", "n 0");
}

/* ---- synthetic --------------------------------------------------------------------------------
 */

static void synthetic(void)
{
    clt_dataset *a = NULL, *b = NULL, *c = NULL;
    clt_shape s = clt_shape3(1, 8, 8);
    ok_status(clt_dataset_synthetic(&a, 1003, s, 10, 7), "1003 synthetic samples of 1 x 8 x 8");
    ok_status(clt_dataset_synthetic(&b, 1003, s, 10, 7), "again with the same seed");
    ok_status(clt_dataset_synthetic(&c, 1003, s, 10, 8), "with another seed");
    if (!a || !b || !c) return;
    ok(clt_dataset_size(a) == 1003 && shape_is(clt_dataset_shape(a), 1, 8, 8) &&
           clt_dataset_classes(a) == 10,
       "size, shape and classes as asked");
    ok(!memcmp(clt_dataset_inputs(a), clt_dataset_inputs(b), 1003 * 64 * sizeof(float)) &&
           !memcmp(clt_dataset_labels(a), clt_dataset_labels(b), 1003 * sizeof(int32_t)),
       "deterministic for a seed");
    ok(memcmp(clt_dataset_inputs(a), clt_dataset_inputs(c), 1003 * 64 * sizeof(float)) != 0,
       "another seed gives other data");
    int count[10] = {0};
    bool in_range = true, finite = true;
    const int32_t *l = clt_dataset_labels(a);
    for (size_t i = 0; i < 1003; i++) {
        in_range &= l[i] >= 0 && l[i] < 10;
        if (l[i] >= 0 && l[i] < 10) count[l[i]]++;
    }
    for (size_t i = 0; i < 1003 * 64; i++) finite &= isfinite(clt_dataset_inputs(a)[i]) != 0;
    ok(in_range && finite, "labels in [0, 10), inputs finite");
    bool balanced = true;
    for (int k = 0; k < 10; k++) balanced &= count[k] == 100 || count[k] == 101;
    ok(balanced, "balanced: every class 100 or 101 times of 1003 (class 0: %d)", count[0]);
    bool shuffled = false;
    for (size_t i = 1; i < 20; i++) shuffled |= l[i] != (l[i - 1] + 1) % 10;
    ok(shuffled, "labels come in a random order, not 0 1 2 ...");

    /* Learnable: class means from the first half classify the second half (nearest mean). */
    const float *x = clt_dataset_inputs(a);
    static double mean[10][64];
    int seen[10] = {0};
    for (size_t i = 0; i < 500; i++) {
        seen[l[i]]++;
        for (int k = 0; k < 64; k++) mean[l[i]][k] += x[i * 64 + k];
    }
    for (int c2 = 0; c2 < 10; c2++)
        for (int k = 0; k < 64; k++) mean[c2][k] /= seen[c2] ? seen[c2] : 1;
    int right = 0;
    for (size_t i = 500; i < 1003; i++) {
        int best = 0;
        double best_d = INFINITY;
        for (int c2 = 0; c2 < 10; c2++) {
            double dd = 0;
            for (int k = 0; k < 64; k++)
                dd += (x[i * 64 + k] - mean[c2][k]) * (x[i * 64 + k] - mean[c2][k]);
            if (dd < best_d) best_d = dd, best = c2;
        }
        right += best == l[i];
    }
    ok(right > 0.9 * 503, "learnable: nearest class mean gets %d of 503 right (> 90%%)", right);
    clt_dataset_destroy(a);
    clt_dataset_destroy(b);
    clt_dataset_destroy(c);

    clt_dataset *e = (clt_dataset *)1;
    ok_error(clt_dataset_synthetic(&e, 0, s, 10, 1), CLT_ERR_INVALID_ARG, "n is 0", "n 0");
    ok(e == NULL, "*out is NULL after a failure");
    ok_error(clt_dataset_synthetic(&e, 10, clt_shape1(-4), 10, 1), CLT_ERR_SHAPE, "is -4",
             "a negative dimension");
    ok_error(clt_dataset_synthetic(&e, 10, s, 0, 1), CLT_ERR_INVALID_ARG, "classes is 0",
             "0 classes");
    ok_error(clt_dataset_synthetic(NULL, 10, s, 10, 1), CLT_ERR_INVALID_ARG, "out is NULL",
             "NULL out");
}

/* ---- Fashion-MNIST ----------------------------------------------------------------------------
 */

/* The standard names in a folder of our own: the loader finds them, plain or gzipped. */
static void fashion_names(void)
{
    char sub[300];
    snprintf(sub, sizeof sub, "%s/fm", tmpdir);
    mkdir(sub, 0700);
    clt_dataset *tr = (clt_dataset *)1, *te = (clt_dataset *)1;
    ok_error(clt_dataset_load_fashion_mnist(&tr, &te, sub, NULL), CLT_ERR_IO,
             "train-images-idx3-ubyte.gz",
             "an empty folder: CLT_ERR_IO naming the file looked for");
    ok(tr == NULL && te == NULL, "both outputs NULL after a failure");
    blob im = images_blob(4, 28, 28), lb = labels_blob(4, NULL), im2 = images_blob(2, 28, 28),
         lb2 = labels_blob(2, NULL);
    write_file("fm/train-images-idx3-ubyte.gz", im.data, im.len, true);
    write_file("fm/train-labels-idx1-ubyte", lb.data, lb.len, false);
    write_file("fm/t10k-images-idx3-ubyte", im2.data, im2.len, false);
    ok_error(clt_dataset_load_fashion_mnist(&tr, &te, sub, NULL), CLT_ERR_IO,
             "t10k-labels-idx1-ubyte", "a missing test labels file");
    ok(tr == NULL, "the train set is not left behind when the test set fails");
    write_file("fm/t10k-labels-idx1-ubyte.gz", lb2.data, lb2.len, true);
    clt_dataset_options o = clt_dataset_options_default();
    o.pad_to = 32;
    ok_status(clt_dataset_load_fashion_mnist(&tr, &te, sub, &o), "the four files, some gzipped");
    ok(clt_dataset_size(tr) == 4 && clt_dataset_size(te) == 2 &&
           shape_is(clt_dataset_shape(te), 1, 32, 32),
       "train 4, test 2, shape {1, 32, 32}");
    clt_dataset_destroy(tr);
    clt_dataset_destroy(te);
    ok_status(clt_dataset_load_fashion_mnist(NULL, &te, sub, NULL), "the test set alone");
    ok(clt_dataset_size(te) == 2, "test 2");
    clt_dataset_destroy(te);
    free(im.data);
    free(lb.data);
    free(im2.data);
    free(lb2.data);

    const char *nodir = scratch("absent");
    ok_error(clt_dataset_load_fashion_mnist(&tr, &te, nodir, NULL), CLT_ERR_IO, nodir,
             "a missing folder");
    ok_error(clt_dataset_load_fashion_mnist(NULL, NULL, sub, NULL), CLT_ERR_INVALID_ARG,
             "both NULL", "neither train nor test asked for");
}

/* The real data, from FASHION_DIR (passed as NULL, the default) or $CLT_TEST_FASHION_DIR. */
static void fashion_real(void)
{
    const char *env = getenv("CLT_TEST_FASHION_DIR");
    const char *dir = env && *env ? env : FASHION_DIR;
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        diag("%s is absent (Debian's dataset-fashion-mnist): skipping the real data", dir);
        char why[300];
        snprintf(why, sizeof why, "no %s", dir);
        skip(why, "Fashion-MNIST loads");
        skip(why, "60000 + 10000 samples of {1, 32, 32}");
        skip(why, "labels in 0..9, 6000 / 1000 of each");
        skip(why, "known first labels");
        skip(why, "the first image's pixel sum and zero border");
        return;
    }
    clt_dataset *tr = NULL, *te = NULL;
    clt_dataset_options o = clt_dataset_options_default();
    o.pad_to = 32;
    double t0 = (double)clock() / CLOCKS_PER_SEC;
    ok_status(clt_dataset_load_fashion_mnist(&tr, &te, strcmp(dir, FASHION_DIR) ? dir : NULL, &o),
              "Fashion-MNIST loads from %s", dir);
    diag("loaded in %.2f s of CPU", (double)clock() / CLOCKS_PER_SEC - t0);
    if (!tr || !te) return;
    ok(clt_dataset_size(tr) == 60000 && clt_dataset_size(te) == 10000 &&
           shape_is(clt_dataset_shape(tr), 1, 32, 32) &&
           shape_is(clt_dataset_shape(te), 1, 32, 32) && clt_dataset_classes(tr) == 10,
       "60000 + 10000 samples of {1, 32, 32}, 10 classes");
    int ctr[10] = {0}, cte[10] = {0};
    bool range = true;
    for (size_t i = 0; i < 60000; i++) {
        int32_t v = clt_dataset_labels(tr)[i];
        range &= v >= 0 && v < 10;
        if (v >= 0 && v < 10) ctr[v]++;
    }
    for (size_t i = 0; i < 10000; i++) {
        int32_t v = clt_dataset_labels(te)[i];
        range &= v >= 0 && v < 10;
        if (v >= 0 && v < 10) cte[v]++;
    }
    bool each = true;
    for (int k = 0; k < 10; k++) each &= ctr[k] == 6000 && cte[k] == 1000;
    ok(range && each, "labels in 0..9, each class 6000 times in train and 1000 in test");
    const int32_t *l = clt_dataset_labels(tr), *lt = clt_dataset_labels(te);
    ok(l[0] == 9 && l[1] == 0 && l[2] == 0 && l[3] == 3 && lt[0] == 9 && lt[1] == 2 && lt[2] == 1,
       "train starts 9 0 0 3 (ankle boot, T-shirt ...), test 9 2 1");
    /* The first training image's pixels sum to 76247 (over 255); its border is padding. */
    const float *x = clt_dataset_inputs(tr);
    double sum = 0, border = 0;
    for (int r = 0; r < 32; r++)
        for (int c = 0; c < 32; c++) {
            sum += x[r * 32 + c];
            if (r < 2 || r >= 30 || c < 2 || c >= 30) border += fabs(x[r * 32 + c]);
        }
    ok(fabs(sum - 76247.0 / 255.0) <= 1e-3 && border == 0,
       "the first image sums to 76247 / 255 = %.4f (got %.4f), its 2-pixel border is 0",
       76247.0 / 255.0, sum);
    clt_dataset_destroy(tr);
    clt_dataset_destroy(te);
}

static void cleanup(void)
{
    for (int i = nwritten - 1; i >= 0; i--) unlink(written[i]);
    char sub[300];
    snprintf(sub, sizeof sub, "%s/fm", tmpdir);
    rmdir(sub);
    if (rmdir(tmpdir) != 0) diag("could not remove %s", tmpdir);
}

int main(void)
{
    if (!test_scratch_dir(tmpdir, sizeof tmpdir, "dataset")) return 1;
    idx_values();
    idx_failures();
    arrays_and_batches();
    shuffle();
    synthetic();
    fashion_names();
    fashion_real();
    cleanup();
    return tap_done();
}
