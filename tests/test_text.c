/* Text data sets: the vocabulary, encoding and decoding (multi-byte characters, byte tokens),
 * the 90/10 split, the seeded windows (pinned start indexes), every error, the fortunes loader
 * on a folder made here and on Debian's fortunes when installed, and the generated text
 * (pinned hash). Needs no OpenCL device. Token ids are integers, compared exactly. */
#include "tap.h"
#include "scratch.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#define FORTUNES_DIR "/usr/share/games/fortunes"

static char tmpdir[256];

static bool write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    bool good = f && fwrite(data, 1, len, f) == len;
    if (f && fclose(f) != 0) good = false;
    if (!good) diag("cannot write %s", path);
    return good;
}

/* The whole text (training then validation part) decoded into a malloc'd string. */
static char *whole_text(const clt_text *t, size_t *len)
{
    size_t n0 = clt_text_tokens(t, CLT_TEXT_TRAIN), n1 = clt_text_tokens(t, CLT_TEXT_VAL);
    int32_t *ids = malloc((n0 + n1 + 1) * sizeof *ids);
    char *out = malloc(4 * (n0 + n1) + 1);
    if (n0) memcpy(ids, clt_text_ids(t, CLT_TEXT_TRAIN), n0 * sizeof *ids);
    if (n1) memcpy(ids + n0, clt_text_ids(t, CLT_TEXT_VAL), n1 * sizeof *ids);
    if (clt_text_decode(t, ids, n0 + n1, out, 4 * (n0 + n1) + 1, len) != CLT_OK) {
        diag("decode: %s", clt_last_error());
        free(out);
        out = NULL;
    }
    free(ids);
    return out;
}

/* Whether the vocabulary's characters are strictly ascending (UTF-8 byte order is code point
 * order, so a byte comparison of successive characters tells). */
static bool ascending_utf8(const char *v, size_t len)
{
    size_t prev = 0, prev_len = 0;
    for (size_t i = 0; i < len;) {
        unsigned char b = (unsigned char)v[i];
        size_t n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
        if (prev_len && (n < prev_len || (n == prev_len && memcmp(v + prev, v + i, n) >= 0)))
            return false;
        prev = i;
        prev_len = n;
        i += n;
    }
    return true;
}

static void vocabulary(void)
{
    static const char s[] = "hello world\nhello text";
    clt_text *t;
    ok_status(clt_text_from_memory(&t, s, strlen(s), NULL), "a short string loads");
    size_t len;
    const char *v = clt_text_vocabulary(t, &len);
    ok(len == 11 && !memcmp(v, "\n dehlortwx", 11) && v[11] == 0,
       "the vocabulary is the sorted set of its characters, \"\\n dehlortwx\" (got %zu bytes)",
       len);
    ok(clt_text_vocab_size(t) == 11 && !clt_text_byte_tokens(t),
       "11 code-point tokens (got %d, byte tokens %d)", clt_text_vocab_size(t),
       clt_text_byte_tokens(t));
    /* Every character of the string is in it, and its id is its place in the vocabulary. */
    int32_t ids[32];
    size_t count = 0;
    ok_status(clt_text_encode(t, s, strlen(s), ids, 32, &count), "the string encodes");
    bool placed = count == strlen(s);
    for (size_t i = 0; placed && i < count; i++)
        placed = ids[i] >= 0 && ids[i] < 11 && v[ids[i]] == s[i];
    ok(placed, "each of its %zu characters encodes to its index in the vocabulary", count);
    ok(ids[0] == 4 && ids[5] == 1 && ids[11] == 0, "'h' is 4, ' ' is 1, '\\n' is 0 (got %d %d %d)",
       ids[0], ids[5], ids[11]);
    clt_text_destroy(t);
}

static void multibyte(void)
{
    /* 2-, 3- and 4-byte characters, and a NUL inside the text. */
    static const char s[] = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x82\xac\xf0\x9f\x98\x80\n\0z";
    size_t slen = sizeof s - 1;
    clt_text *t;
    ok_status(clt_text_from_memory(&t, s, slen, NULL), "UTF-8 with 2-, 3-, 4-byte characters "
              "and a NUL loads");
    ok(!clt_text_byte_tokens(t), "its tokens are code points");
    ok(clt_text_vocab_size(t) == 14, "14 distinct characters (got %d)", clt_text_vocab_size(t));
    size_t vlen;
    const char *v = clt_text_vocabulary(t, &vlen);
    ok(vlen == 21 && v[0] == 0 && v[1] == '\n' && ascending_utf8(v, vlen) &&
           !memcmp(v + vlen - 4, "\xf0\x9f\x98\x80", 4),
       "the vocabulary (21 bytes, got %zu) starts with NUL and '\\n', ascends, ends with U+1F600",
       vlen);
    int32_t ids[32];
    size_t count, len;
    ok_status(clt_text_encode(t, s, slen, ids, 32, &count), "the text encodes");
    ok(count == 17, "17 tokens for 17 code points (got %zu)", count);
    char back[128];
    ok_status(clt_text_decode(t, ids, count, back, sizeof back, &len), "and decodes");
    ok(len == slen && !memcmp(back, s, slen) && back[len] == 0,
       "the round trip gives the same %zu bytes, NUL-terminated (got %zu)", slen, len);
    ok(ids[13] == clt_text_vocab_size(t) - 1 && ids[15] == 0,
       "U+1F600 has the last id, NUL id 0 (got %d, %d)", ids[13], ids[15]);

    /* The vocabulary gives the encoder back, for generation from a checkpoint. */
    clt_text *g;
    ok_status(clt_text_from_vocabulary(&g, v, vlen, 0), "the vocabulary rebuilds an encoder");
    int32_t ids2[32];
    size_t count2 = 0;
    ok_status(clt_text_encode(g, s, slen, ids2, 32, &count2), "which encodes the text");
    ok(count2 == count && !memcmp(ids, ids2, count * sizeof *ids) &&
           clt_text_vocab_size(g) == clt_text_vocab_size(t),
       "to the same ids as the corpus' own text");
    ok(clt_text_tokens(g, CLT_TEXT_TRAIN) == 0 && clt_text_tokens(g, CLT_TEXT_VAL) == 0 &&
           !clt_text_ids(g, CLT_TEXT_TRAIN),
       "and holds no corpus");
    size_t glen;
    const char *gv = clt_text_vocabulary(g, &glen);
    ok(glen == vlen && !memcmp(gv, v, vlen), "its vocabulary is the one it was given");
    clt_text_destroy(g);
    clt_text_destroy(t);
}

static void byte_tokens(void)
{
    /* 0xff never occurs in UTF-8; "\xc3(" is a lead byte without its continuation. */
    static const char bad[] = "ab\xff\xc3(a";
    clt_text *t;
    ok_status(clt_text_from_memory(&t, bad, sizeof bad - 1, NULL), "invalid UTF-8 loads");
    size_t vlen;
    const char *v = clt_text_vocabulary(t, &vlen);
    ok(clt_text_byte_tokens(t) && clt_text_vocab_size(t) == 5 && vlen == 5 &&
           !memcmp(v, "(ab\xc3\xff", 5),
       "as byte tokens: the 5 distinct bytes in ascending order (got %d tokens, %zu bytes)",
       clt_text_vocab_size(t), vlen);
    int32_t ids[8];
    size_t count, len;
    char back[16];
    ok_status(clt_text_encode(t, bad, sizeof bad - 1, ids, 8, &count), "the bytes encode");
    ok_status(clt_text_decode(t, ids, count, back, sizeof back, &len), "and decode");
    ok(count == 6 && len == 6 && !memcmp(back, bad, 6), "back to the same 6 bytes");
    clt_text *g;
    ok_status(clt_text_from_vocabulary(&g, v, vlen, 1), "a byte vocabulary rebuilds an encoder");
    ok(clt_text_byte_tokens(g) && clt_text_vocab_size(g) == 5, "of 5 byte tokens");
    clt_text_destroy(g);
    clt_text_destroy(t);

    /* Asked for bytes, valid UTF-8 becomes bytes too: 'é' is two tokens. */
    clt_text_options o = clt_text_options_default();
    o.bytes = 1;
    ok_status(clt_text_from_memory(&t, "\xc3\xa9t\xc3\xa9", 5, &o), "bytes = 1 on valid UTF-8");
    ok(clt_text_byte_tokens(t) && clt_text_vocab_size(t) == 3 &&
           clt_text_tokens(t, CLT_TEXT_TRAIN) + clt_text_tokens(t, CLT_TEXT_VAL) == 5,
       "gives 5 byte tokens of 3 kinds");
    clt_text_destroy(t);
}

static void split(void)
{
    static const struct { size_t n; double val; size_t train; } cases[] = {
        {1000, 0.1, 900}, {1001, 0.1, 900}, {10, 0.1, 9}, {1, 0.1, 0}, {10, 0.25, 7},
        {10, 0.0, 10}, {7, 0.5, 3},
    };
    char buf[1001];
    memset(buf, 'a', sizeof buf);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        clt_text_options o = clt_text_options_default();
        o.val_fraction = cases[c].val;
        clt_text *t = NULL;
        clt_status st = clt_text_from_memory(&t, buf, cases[c].n, &o);
        size_t tr = clt_text_tokens(t, CLT_TEXT_TRAIN), va = clt_text_tokens(t, CLT_TEXT_VAL);
        ok(st == CLT_OK && tr == cases[c].train && va == cases[c].n - cases[c].train,
           "%zu tokens, val_fraction %g: %zu train, %zu validation (int(n * (1 - f)), as "
           "nanoGPT; got %zu, %zu)", cases[c].n, cases[c].val, cases[c].train,
           cases[c].n - cases[c].train, tr, va);
        clt_text_destroy(t);
    }
    clt_text_options d = clt_text_options_default();
    ok(d.struct_size == sizeof d && d.bytes == 0 && d.val_fraction == 0.1 &&
           d.max_bytes == (size_t)256 << 20,
       "the defaults: code points, val_fraction 0.1, max_bytes 256 MiB");
}

/* Whether x (block) and y (block) are data[i .. i+block) and data[i+1 .. i+block] for some
 * i in [0, n - block - 1]. */
static bool window_inside(const int32_t *data, size_t n, const int32_t *x, const int32_t *y,
                          int block)
{
    for (size_t i = 0; i + (size_t)block < n; i++)
        if (!memcmp(data + i, x, (size_t)block * sizeof *x) &&
            !memcmp(data + i + 1, y, (size_t)block * sizeof *y))
            return true;
    return false;
}

static void windows(void)
{
    enum { B = 16, T = 32 };
    clt_text *t;
    ok_status(clt_text_synthetic(&t, 20000, 7), "20000 generated characters");
    static int32_t x[B * T], y[B * T], x2[B * T], y2[B * T];
    for (int part = CLT_TEXT_TRAIN; part <= CLT_TEXT_VAL; part++) {
        const char *name = part == CLT_TEXT_TRAIN ? "training" : "validation";
        ok_status(clt_text_batch(t, part, B, T, 123, x, y), "a %s batch of %d x %d", name, B, T);
        bool shifted = true, inside = true;
        for (int b = 0; b < B; b++) {
            shifted = shifted && !memcmp(y + b * T, x + b * T + 1, (T - 1) * sizeof *x);
            inside = inside && window_inside(clt_text_ids(t, part), clt_text_tokens(t, part),
                                             x + b * T, y + b * T, T);
        }
        ok(shifted, "%s: every y row is its x row shifted left by one", name);
        ok(inside, "%s: every window lies inside the %s part", name, name);
        ok_status(clt_text_batch(t, part, B, T, 123, x2, y2), "the same seed again");
        ok(!memcmp(x, x2, sizeof x) && !memcmp(y, y2, sizeof y), "%s: gives the same windows",
           name);
        ok_status(clt_text_batch(t, part, B, T, 124, x2, y2), "another seed");
        ok(memcmp(x, x2, sizeof x) != 0, "%s: gives other windows", name);
    }
    clt_text_destroy(t);

    /* Pinned starts. A text of 1000 distinct characters U+0100 .. U+04E7, so the vocabulary's
     * order is the text's and a token's id is its position: x[b][0] is row b's start. With
     * val_fraction 0 the training part is all 1000 tokens; block 8 gives starts in [0, 991].
     * The algorithm: state = seed = 42; for each row, v = splitmix64(&state) (state +=
     * 0x9E3779B97F4A7C15; z = state; z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9; z = (z ^ z >> 27)
     * * 0x94D049BB133111EB; v = z ^ z >> 31, all mod 2^64), redrawn while v < 2^64 mod 992
     * (= 16, never here), start = v % 992. The first v is 0xbdd732262feb6e95, 149 mod 992;
     * then 803, 178, 788. */
    char text[2000];
    size_t len = 0;
    for (unsigned cp = 0x100; cp < 0x100 + 1000; cp++) {
        text[len++] = (char)(0xC0 | cp >> 6);
        text[len++] = (char)(0x80 | (cp & 0x3F));
    }
    clt_text_options o = clt_text_options_default();
    o.val_fraction = 0;
    ok_status(clt_text_from_memory(&t, text, len, &o), "1000 distinct characters");
    int32_t px[4 * 8], py[4 * 8];
    ok_status(clt_text_batch(t, CLT_TEXT_TRAIN, 4, 8, 42, px, py), "4 windows of 8, seed 42");
    static const int32_t want[4] = {149, 803, 178, 788};
    bool pinned = true;
    for (int b = 0; b < 4; b++) {
        for (int k = 0; k < 8; k++)
            pinned = pinned && px[b * 8 + k] == want[b] + k && py[b * 8 + k] == want[b] + k + 1;
        if (px[b * 8] != want[b]) diag("row %d starts at %d, wanted %d", b, px[b * 8], want[b]);
    }
    ok(pinned, "start at 149, 803, 178, 788, as the algorithm in the comment gives");
    clt_text_destroy(t);
}

static void errors(void)
{
    clt_text *t = (clt_text *)&t, *a;
    clt_text_options o = clt_text_options_default();
    ok_error(clt_text_from_memory(NULL, "a", 1, NULL), CLT_ERR_INVALID_ARG, "out is NULL",
             "from_memory: out NULL");
    ok_error(clt_text_from_memory(&t, NULL, 1, NULL), CLT_ERR_INVALID_ARG, "data is NULL",
             "from_memory: data NULL");
    ok(t == NULL, "a failed call leaves *out NULL");
    ok_error(clt_text_from_memory(&t, "a", 0, NULL), CLT_ERR_INVALID_ARG, "len is 0",
             "from_memory: len 0");
    o.val_fraction = 1;
    ok_error(clt_text_from_memory(&t, "ab", 2, &o), CLT_ERR_INVALID_ARG, "val_fraction is 1",
             "val_fraction 1 is refused");
    o.val_fraction = NAN;
    ok_error(clt_text_from_memory(&t, "ab", 2, &o), CLT_ERR_INVALID_ARG, "val_fraction",
             "val_fraction NaN is refused");
    o.val_fraction = -0.1;
    ok_error(clt_text_from_memory(&t, "ab", 2, &o), CLT_ERR_INVALID_ARG, "val_fraction",
             "val_fraction -0.1 is refused");
    o = clt_text_options_default();
    o.bytes = 2;
    ok_error(clt_text_from_memory(&t, "ab", 2, &o), CLT_ERR_INVALID_ARG, "bytes is 2",
             "bytes 2 is refused");
    o = clt_text_options_default();
    o.max_bytes = 0;
    ok_error(clt_text_from_memory(&t, "ab", 2, &o), CLT_ERR_INVALID_ARG, "max_bytes is 0",
             "max_bytes 0 is refused");
    o.max_bytes = 3;
    ok_error(clt_text_from_memory(&t, "abcd", 4, &o), CLT_ERR_INVALID_ARG, "max_bytes = 3",
             "4 bytes past max_bytes 3 are refused");
    o = clt_text_options_default();
    o.struct_size = 0;
    ok_error(clt_text_from_memory(&t, "ab", 2, &o), CLT_ERR_INVALID_ARG,
             "clt_text_options.struct_size is 0", "an options struct not from _default()");

    /* Files. */
    ok_error(clt_text_load(&t, NULL, NULL), CLT_ERR_INVALID_ARG, "path is NULL", "load: path NULL");
    char *missing = test_path(tmpdir, "missing.txt");
    ok_error(clt_text_load(&t, missing, NULL), CLT_ERR_IO, missing, "load: a missing file, named");
    ok_error(clt_text_load(&t, tmpdir, NULL), CLT_ERR_IO, "directory", "load: a directory");
    char *empty = test_path(tmpdir, "empty.txt");
    write_file(empty, "", 0);
    ok_error(clt_text_load(&t, empty, NULL), CLT_ERR_FORMAT, "empty", "load: an empty file");
    char *big = test_path(tmpdir, "big.txt");
    write_file(big, "0123456789", 10);
    o = clt_text_options_default();
    o.max_bytes = 9;
    ok_error(clt_text_load(&t, big, &o), CLT_ERR_INVALID_ARG, "max_bytes = 9",
             "load: a 10-byte file past max_bytes 9");
    o.max_bytes = 10;
    ok_status(clt_text_load(&t, big, &o), "load: a 10-byte file at max_bytes 10");
    ok(clt_text_vocab_size(t) == 10 && clt_text_tokens(t, CLT_TEXT_TRAIN) == 9,
       "which has 10 tokens, 9 for training");
    clt_text_destroy(t);
    char *one = test_path(tmpdir, "one.txt");
    write_file(one, "x", 1);
    ok_status(clt_text_load(&t, one, NULL), "load: a file of one character");
    int32_t x[4], y[4];
    ok(clt_text_vocab_size(t) == 1 && clt_text_tokens(t, CLT_TEXT_TRAIN) == 0 &&
           clt_text_tokens(t, CLT_TEXT_VAL) == 1,
       "one token, in the validation part");
    ok_error(clt_text_batch(t, CLT_TEXT_TRAIN, 1, 1, 0, x, y), CLT_ERR_INVALID_ARG,
             "training part holds 0 tokens, fewer than block + 1 = 2",
             "a window from its empty training part is refused");
    clt_text_destroy(t);
    unlink(missing);
    unlink(empty);
    unlink(big);
    unlink(one);

    /* Encoding and decoding. */
    ok_status(clt_text_from_memory(&a, "abc\xc3\xa9", 5, NULL), "a text of a, b, c, e-acute");
    int32_t ids[8];
    size_t count = 0, len = 0;
    char out[16];
    ok_error(clt_text_encode(a, "abz", 3, ids, 8, &count), CLT_ERR_INVALID_ARG,
             "'z' (U+007A) at byte 2 is not in the vocabulary", "encode: 'z' is named with its "
             "byte position");
    ok_error(clt_text_encode(a, "\xc3\xa9\xe2\x82\xac", 5, ids, 8, &count), CLT_ERR_INVALID_ARG,
             "'\xe2\x82\xac' (U+20AC) at byte 2", "encode: a euro sign at byte 2");
    ok_error(clt_text_encode(a, "a\n", 2, ids, 8, &count), CLT_ERR_INVALID_ARG,
             "U+000A at byte 1", "encode: a newline is named by its code point");
    ok_error(clt_text_encode(a, "a\xff", 2, ids, 8, &count), CLT_ERR_INVALID_ARG,
             "not valid UTF-8 at byte 1", "encode: invalid UTF-8");
    ok_error(clt_text_encode(a, "abc", 3, ids, 2, &count), CLT_ERR_INVALID_ARG,
             "3 tokens but cap is 2", "encode: too small a cap");
    ok(count == 3, "sets count to the number needed (got %zu)", count);
    ok_error(clt_text_encode(a, "abc", 3, NULL, 8, &count), CLT_ERR_INVALID_ARG, "ids is NULL",
             "encode: ids NULL");
    ok_error(clt_text_encode(NULL, "abc", 3, ids, 8, &count), CLT_ERR_INVALID_ARG,
             "the text is NULL", "encode: the text NULL");
    ids[0] = 0, ids[1] = 3, ids[2] = 4;
    ok_error(clt_text_decode(a, ids, 3, out, sizeof out, &len), CLT_ERR_INVALID_ARG,
             "ids[2] = 4 is outside [0, 4)", "decode: an id past the vocabulary, named by index");
    ids[1] = -1;
    ok_error(clt_text_decode(a, ids, 2, out, sizeof out, &len), CLT_ERR_INVALID_ARG,
             "ids[1] = -1", "decode: a negative id");
    ids[0] = 3, ids[1] = 3;
    ok_error(clt_text_decode(a, ids, 2, out, 4, &len), CLT_ERR_INVALID_ARG,
             "takes 4 bytes and a NUL, but cap is 4", "decode: too small a cap");
    ok(len == 4 && out[0] == 0, "sets len to the length and leaves an empty string (got %zu)",
       len);
    ok_status(clt_text_decode(a, ids, 2, out, 5, &len), "decode: cap 5 for 4 bytes");
    ok(len == 4 && !strcmp(out, "\xc3\xa9\xc3\xa9"), "two e-acutes");
    ok_status(clt_text_decode(a, NULL, 0, out, 1, &len), "decode: no ids");
    ok(len == 0 && out[0] == 0, "gives the empty string");
    ok_error(clt_text_decode(a, ids, 2, NULL, 5, &len), CLT_ERR_INVALID_ARG, "out is NULL",
             "decode: out NULL");

    /* Windows. */
    ok_error(clt_text_batch(a, CLT_TEXT_TRAIN, 1, 4, 0, x, y), CLT_ERR_INVALID_ARG,
             "training part holds 3 tokens, fewer than block + 1 = 5",
             "batch: a part shorter than block + 1, both numbers given");
    ok_error(clt_text_batch(a, 2, 1, 1, 0, x, y), CLT_ERR_INVALID_ARG, "part is 2",
             "batch: an unknown part");
    ok_error(clt_text_batch(a, CLT_TEXT_TRAIN, 0, 1, 0, x, y), CLT_ERR_INVALID_ARG, "batch is 0",
             "batch: batch 0");
    ok_error(clt_text_batch(a, CLT_TEXT_TRAIN, 1, 0, 0, x, y), CLT_ERR_INVALID_ARG, "block is 0",
             "batch: block 0");
    ok_error(clt_text_batch(a, CLT_TEXT_TRAIN, 1, 1, 0, x, NULL), CLT_ERR_INVALID_ARG, "y is NULL",
             "batch: y NULL");
    ok_status(clt_text_batch(a, CLT_TEXT_TRAIN, 2, 2, 0, x, y), "batch: block 2 of 3 tokens");
    ok(x[0] == 0 && x[1] == 1 && y[0] == 1 && y[1] == 2 && x[2] == 0 && y[3] == 2,
       "both rows start at 0, the only start (got %d, %d)", x[0], x[2]);
    clt_text_destroy(a);

    /* A vocabulary alone. */
    ok_error(clt_text_from_vocabulary(&t, "ba", 2, 0), CLT_ERR_INVALID_ARG,
             "'a' (U+0061) at byte 1 does not come after 'b' (U+0062)",
             "from_vocabulary: out of order");
    ok_error(clt_text_from_vocabulary(&t, "abb", 3, 1), CLT_ERR_INVALID_ARG,
             "'b' (byte 0x62) at byte 2", "from_vocabulary: a repeat");
    ok_error(clt_text_from_vocabulary(&t, "a\xc3", 2, 0), CLT_ERR_INVALID_ARG,
             "not valid UTF-8 at byte 1", "from_vocabulary: invalid UTF-8");
    ok_error(clt_text_from_vocabulary(&t, "", 0, 0), CLT_ERR_INVALID_ARG, "len is 0",
             "from_vocabulary: empty");
    ok_error(clt_text_from_vocabulary(&t, NULL, 1, 0), CLT_ERR_INVALID_ARG, "vocab is NULL",
             "from_vocabulary: NULL");
    ok_error(clt_text_from_vocabulary(&t, "a", 1, 3), CLT_ERR_INVALID_ARG, "bytes is 3",
             "from_vocabulary: bytes 3");
    ok_error(clt_text_synthetic(&t, 0, 1), CLT_ERR_INVALID_ARG, "chars is 0", "synthetic: 0 chars");
    ok_error(clt_text_synthetic(NULL, 10, 1), CLT_ERR_INVALID_ARG, "out is NULL",
             "synthetic: out NULL");

    /* Getters on NULL. */
    size_t vlen = 1;
    ok(clt_text_vocab_size(NULL) == 0 && clt_text_byte_tokens(NULL) == 0 &&
           clt_text_vocabulary(NULL, &vlen) == NULL && vlen == 0 &&
           clt_text_tokens(NULL, CLT_TEXT_TRAIN) == 0 && clt_text_ids(NULL, CLT_TEXT_VAL) == NULL,
       "getters return 0 and NULL for NULL");
    clt_text_destroy(NULL);
}

static void fortunes_folder(void)
{
    char dirbuf[300], sub[320];
    snprintf(dirbuf, sizeof dirbuf, "%s/fortunes", tmpdir);
    snprintf(sub, sizeof sub, "%s/off", dirbuf);
    const char *dir = dirbuf;
    clt_text *t = NULL;
    ok_error(clt_text_load_fortunes(&t, dir, NULL), CLT_ERR_IO, dir,
             "fortunes: an absent folder, named");
    mkdir(dir, 0700);
    mkdir(sub, 0700);
    /* .dat index files hold bytes that are not UTF-8: read by mistake, they would turn the
     * whole text into byte tokens. */
    write_file(test_path(dir, "a.dat"), "\x00\x00\x00\x02\xff\xfe", 6);
    write_file(test_path(sub, "c"), "offensive\n%\n", 12);
    ok_error(clt_text_load_fortunes(&t, dir, NULL), CLT_ERR_IO, "holds no fortune file",
             "fortunes: a folder of only a .dat file and a subfolder");
    write_file(test_path(dir, "b"), "two\n%\nthree", 11);  /* no newline at the end */
    write_file(test_path(dir, "a"), "one\n%\n", 6);
    write_file(test_path(dir, ".hidden"), "hidden\n", 7);
    if (symlink("a", test_path(dir, "a.u8")) != 0) diag("cannot make the a.u8 link");
    if (symlink("b", test_path(dir, "link")) != 0) diag("cannot make the link");
    ok_status(clt_text_load_fortunes(&t, dir, NULL), "fortunes: a folder made here");
    size_t len;
    char *s = whole_text(t, &len);
    static const char want[] = "one\n\ntwo\n\nthree\n";
    ok(s && len == sizeof want - 1 && !memcmp(s, want, len),
       "a then b, '%%' lines made empty, a last newline added; .dat, .u8, links, hidden files "
       "and off/ skipped (%zu bytes)", len);
    ok(!clt_text_byte_tokens(t) && clt_text_vocab_size(t) == 8,
       "8 code-point tokens (got %d)", clt_text_vocab_size(t));
    free(s);
    clt_text_destroy(t);
    clt_text_options o = clt_text_options_default();
    o.max_bytes = 8;
    ok_error(clt_text_load_fortunes(&t, dir, &o), CLT_ERR_INVALID_ARG, "max_bytes = 8",
             "fortunes: a folder past max_bytes");
    static const char *names[] = {"a", "b", ".hidden", "a.u8", "link", "a.dat"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) unlink(test_path(dir, names[i]));
    unlink(test_path(sub, "c"));
    rmdir(sub);
    rmdir(dir);
}

static void fortunes_real(void)
{
    struct stat sb;
    if (stat(FORTUNES_DIR, &sb) != 0) {
        skip("no " FORTUNES_DIR " (apt-get install fortunes)", "Debian's fortunes load");
        return;
    }
    clt_text *t;
    if (!ok_status(clt_text_load_fortunes(&t, NULL, NULL), "Debian's fortunes load")) return;
    size_t n0 = clt_text_tokens(t, CLT_TEXT_TRAIN), n1 = clt_text_tokens(t, CLT_TEXT_VAL);
    diag("fortunes: %zu + %zu tokens, %d characters", n0, n1, clt_text_vocab_size(t));
    ok(!clt_text_byte_tokens(t) && n0 + n1 > 1000000 && n0 == (size_t)((double)(n0 + n1) * 0.9),
       "as over a million code points, 90%% of them for training");
    size_t len;
    char *s = whole_text(t, &len);
    ok(s && !strstr(s, "\n%\n") && strstr(s, " the ") && strstr(s, "\n\n"),
       "English, fortunes apart as paragraphs, no '%%' separator left");
    free(s);
    int32_t x[12 * 64], y[12 * 64];
    ok_status(clt_text_batch(t, CLT_TEXT_VAL, 12, 64, 1, x, y),
              "nanoGPT's CPU batch (12 x 64) from the validation part");
    clt_text_destroy(t);
}

static uint64_t fnv1a(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3u;
    return h;
}

static void synthetic(void)
{
    clt_text *t, *u;
    ok_status(clt_text_synthetic(&t, 10000, 1), "10000 generated characters, seed 1");
    size_t len, len2;
    char *s = whole_text(t, &len);
    uint64_t h = s ? fnv1a(s, len) : 0;
    /* Pinned: a change of the word list, the generator or the layout changes it. */
    ok(len == 10000 && h == 0x26bc9adb3d8a4e3au,
       "10000 bytes, FNV-1a 0x26bc9adb3d8a4e3a (got %zu, 0x%016llx)", len, (unsigned long long)h);
    ok(s && !strncmp(s, "Develop hour problem big, wait over, figure, rest.\nLay way", 58),
       "starting \"Develop hour problem big, wait over, figure, rest.\\nLay way\"");
    ok(clt_text_tokens(t, CLT_TEXT_TRAIN) == 9000 && clt_text_vocab_size(t) == 55,
       "9000 training tokens, 55 characters (got %zu, %d)", clt_text_tokens(t, CLT_TEXT_TRAIN),
       clt_text_vocab_size(t));
    ok_status(clt_text_synthetic(&u, 10000, 1), "the same seed again");
    char *s2 = whole_text(u, &len2);
    ok(s && s2 && len2 == len && !memcmp(s, s2, len), "gives the same text");
    free(s2);
    clt_text_destroy(u);
    ok_status(clt_text_synthetic(&u, 10000, 2), "seed 2");
    s2 = whole_text(u, &len2);
    ok(s && s2 && len2 == len && memcmp(s, s2, len) != 0, "gives another text");
    free(s2);
    clt_text_destroy(u);
    free(s);
    clt_text_destroy(t);
}

int main(void)
{
    if (!test_scratch_dir(tmpdir, sizeof tmpdir, "text")) return 1;
    vocabulary();
    multibyte();
    byte_tokens();
    split();
    windows();
    errors();
    fortunes_folder();
    fortunes_real();
    synthetic();
    if (rmdir(tmpdir) != 0) diag("could not remove %s", tmpdir);
    return tap_done();
}
