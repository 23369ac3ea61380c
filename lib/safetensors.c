/* Safetensors files: a model's parameters as PyTorch's torch.nn.Sequential names and shapes them,
 * in the format safetensors.torch.load_file reads (8-byte little-endian header length, a JSON
 * header, the raw little-endian data). The parser takes bytes, trusts none of them, and reads the
 * small JSON subset the format uses with no dependency. docs/CHECKPOINT.md describes the file. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    ST_MAX_HEADER = 100 << 20,     /* the reference implementation's limit */
    ST_MAX_TENSORS = 1 << 20
};

/* ---- the parser --------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *start, *p, *end;   /* the header's bytes */
    const char *name;                 /* the file, for messages */
} json;

__attribute__((format(printf, 2, 3))) static clt_status jfail(const json *j, const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return clt__fail(CLT_ERR_FORMAT, "safetensors %s: the header is not valid: at byte %zu of "
                     "the JSON: %s", j->name, (size_t)(j->p - j->start), msg);
}

static void skip_ws(json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

/* What is at the cursor, for messages. */
static const char *found(const json *j, char *buf, size_t cap)
{
    if (j->p >= j->end) return "the end of the header";
    if (*j->p >= 0x20 && *j->p < 0x7f) snprintf(buf, cap, "'%c'", *j->p);
    else snprintf(buf, cap, "byte 0x%02x", *j->p);
    return buf;
}

static clt_status expect(json *j, char c)
{
    skip_ws(j);
    char b[16];
    if (j->p >= j->end || *j->p != (uint8_t)c) return jfail(j, "expected '%c', found %s", c, found(j, b, sizeof b));
    j->p++;
    return CLT_OK;
}

/* Whether the next token is c (consumed when it is). */
static bool accept(json *j, char c)
{
    skip_ws(j);
    if (j->p < j->end && *j->p == (uint8_t)c) {
        j->p++;
        return true;
    }
    return false;
}

static int hex4(const uint8_t *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p[i], d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                        : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A JSON string, escapes decoded to UTF-8, into *out (malloc'ed, NUL-terminated; a \u0000 is
 * refused, so the result is a C string). The header was checked as UTF-8 before. */
static clt_status jstring(json *j, char **out)
{
    *out = NULL;
    clt_status st = expect(j, '"');
    if (st != CLT_OK) return st;
    const uint8_t *q = j->p;
    while (q < j->end && *q != '"') q += *q == '\\' && q + 1 < j->end ? 2 : 1;
    if (q >= j->end) return jfail(j, "a string does not end");
    char *s = malloc((size_t)(q - j->p) + 1);   /* decoding never grows a string */
    if (!s) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    size_t n = 0;
    while (*j->p != '"') {
        uint8_t c = *j->p;
        if (c < 0x20) {
            free(s);
            return jfail(j, "control character 0x%02x inside a string (it must be escaped)", c);
        }
        if (c != '\\') {
            s[n++] = (char)c;
            j->p++;
            continue;
        }
        uint8_t e = j->p[1];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char to[] = "\"\\/\b\f\n\r\t";
            s[n++] = to[simple - "\"\\/bfnrt"];
            j->p += 2;
            continue;
        }
        if (e != 'u') {
            free(s);
            return jfail(j, "unknown escape '\\%c' in a string", e >= 0x20 && e < 0x7f ? e : '?');
        }
        int cp = j->end - j->p >= 6 ? hex4(j->p + 2) : -1;
        int len = 6;
        if (cp >= 0xd800 && cp <= 0xdbff) {   /* a surrogate pair */
            int lo = j->end - j->p >= 12 && j->p[6] == '\\' && j->p[7] == 'u' ? hex4(j->p + 8) : -1;
            cp = lo >= 0xdc00 && lo <= 0xdfff ? 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00) : -2;
            len = 12;
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            cp = -2;
        }
        if (cp <= 0) {
            free(s);
            return jfail(j, cp == 0 ? "\\u0000 in a string" : cp == -2 ? "a lone UTF-16 surrogate "
                         "in a \\u escape" : "a \\u escape needs four hexadecimal digits");
        }
        if (cp < 0x80) {
            s[n++] = (char)cp;
        } else if (cp < 0x800) {
            s[n++] = (char)(0xc0 | cp >> 6);
            s[n++] = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            s[n++] = (char)(0xe0 | cp >> 12);
            s[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            s[n++] = (char)(0x80 | (cp & 0x3f));
        } else {
            s[n++] = (char)(0xf0 | cp >> 18);
            s[n++] = (char)(0x80 | ((cp >> 12) & 0x3f));
            s[n++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            s[n++] = (char)(0x80 | (cp & 0x3f));
        }
        j->p += len;
    }
    j->p++;
    s[n] = '\0';
    *out = s;
    return CLT_OK;
}

/* A non-negative JSON integer (no sign, fraction or exponent) below 2^63. */
static clt_status juint(json *j, uint64_t *out, const char *what)
{
    skip_ws(j);
    char b[16];
    if (j->p >= j->end || *j->p < '0' || *j->p > '9')
        return jfail(j, "%s: expected a non-negative integer, found %s", what, found(j, b, sizeof b));
    if (*j->p == '0' && j->p + 1 < j->end && j->p[1] >= '0' && j->p[1] <= '9')
        return jfail(j, "%s: a number with a leading zero", what);
    uint64_t v = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (v > (((uint64_t)1 << 63) - 10) / 10) return jfail(j, "%s: the number is too large", what);
        v = v * 10 + (uint64_t)(*j->p++ - '0');
    }
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
        return jfail(j, "%s: expected an integer, found a fraction or an exponent", what);
    *out = v;
    return CLT_OK;
}

/* [n, n, ...] of at most cap integers. */
static clt_status juint_array(json *j, uint64_t *out, int cap, int *n, const char *what)
{
    clt_status st = expect(j, '[');
    *n = 0;
    if (st != CLT_OK || accept(j, ']')) return st;
    do {
        if (*n == cap) return jfail(j, "%s: more than %d entries", what, cap);
        if ((st = juint(j, &out[(*n)++], what)) != CLT_OK) return st;
    } while (accept(j, ','));
    return expect(j, ']');
}

/* Every byte sequence a valid UTF-8 encoding of a code point (no overlong forms, no surrogates,
 * at most U+10FFFF): JSON text is UTF-8. Returns the offset of the first bad byte, or len. */
static size_t utf8_valid_prefix(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        int extra = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
        if (extra < 0 || len - i <= (size_t)extra) return i;
        uint32_t cp = extra == 0 ? c : extra == 1 ? c & 0x1fu : extra == 2 ? c & 0x0fu : c & 0x07u;
        for (int k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = cp << 6 | (s[i + k] & 0x3fu);
        }
        static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += (size_t)extra + 1;
    }
    return len;
}

static const struct {
    const char *name;
    int bytes;
} DTYPES[] = {
    {"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2},
    {"F16", 2}, {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4}, {"F64", 8}, {"I64", 8}, {"U64", 8},
};

static int dtype_bytes(const char *d)
{
    for (size_t i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++)
        if (!strcmp(d, DTYPES[i].name)) return DTYPES[i].bytes;
    return 0;
}

/* {"dtype": "F32", "shape": [...], "data_offsets": [b, e]}, each key once, no other. */
static clt_status parse_tensor(json *j, clt__st_tensor *t)
{
    clt_status st = expect(j, '{');
    bool have[3] = {false, false, false};
    static const char *const keys[3] = {"dtype", "shape", "data_offsets"};
    if (st == CLT_OK && accept(j, '}'))
        return jfail(j, "tensor '%s' has no dtype, shape or data_offsets", t->name);
    while (st == CLT_OK) {
        char *key;
        if ((st = jstring(j, &key)) != CLT_OK) break;
        int k = 0;
        while (k < 3 && strcmp(key, keys[k])) k++;
        if (k == 3 || have[k]) {
            st = jfail(j, "tensor '%s': %s key '%.40s' (it holds dtype, shape and data_offsets, "
                       "once each)", t->name, k == 3 ? "unknown" : "a second", key);
            free(key);
            break;
        }
        free(key);
        have[k] = true;
        if ((st = expect(j, ':')) != CLT_OK) break;
        if (k == 0) {
            char *d;
            if ((st = jstring(j, &d)) != CLT_OK) break;
            if (!dtype_bytes(d))
                st = jfail(j, "tensor '%s': unknown dtype '%.20s'", t->name, d);
            else
                snprintf(t->dtype, sizeof t->dtype, "%s", d);
            free(d);
        } else if (k == 1) {
            st = juint_array(j, t->dims, CLT__ST_MAX_RANK, &t->rank, "shape");
        } else {
            uint64_t off[3] = {0, 0, 0};
            int n;
            st = juint_array(j, off, 3, &n, "data_offsets");
            if (st == CLT_OK && n != 2)
                st = jfail(j, "tensor '%s': data_offsets holds %d numbers, not 2", t->name, n);
            t->begin = off[0], t->end = off[1];
        }
        if (st == CLT_OK && !accept(j, ',')) break;
    }
    if (st == CLT_OK) st = expect(j, '}');
    for (int k = 0; k < 3 && st == CLT_OK; k++)
        if (!have[k]) st = jfail(j, "tensor '%s' has no %s", t->name, keys[k]);
    return st;
}

/* {"key": "value", ...}: strings only, each key once. */
static clt_status parse_meta(json *j, clt__safetensors *s)
{
    clt_status st = expect(j, '{');
    if (st != CLT_OK || accept(j, '}')) return st;
    do {
        char *kv[2] = {NULL, NULL};
        if ((st = jstring(j, &kv[0])) == CLT_OK && (st = expect(j, ':')) == CLT_OK) {
            skip_ws(j);
            char b[16];
            st = j->p < j->end && *j->p == '"' ? jstring(j, &kv[1])
               : jfail(j, "__metadata__ '%.40s': values are strings, found %s", kv[0], found(j, b, sizeof b));
        }
        for (int i = 0; i < s->nmeta && st == CLT_OK; i++)
            if (!strcmp(s->meta[2 * i], kv[0])) st = jfail(j, "__metadata__ holds '%.40s' twice", kv[0]);
        char **g = st == CLT_OK ? realloc(s->meta, (size_t)(s->nmeta + 1) * 2 * sizeof *g) : NULL;
        if (st == CLT_OK && !g) st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
        if (st != CLT_OK) {
            free(kv[0]), free(kv[1]);
            return st;
        }
        s->meta = g;
        s->meta[2 * s->nmeta] = kv[0], s->meta[2 * s->nmeta + 1] = kv[1];
        s->nmeta++;
    } while (accept(j, ','));
    return expect(j, '}');
}

void clt__safetensors_free(clt__safetensors *s)
{
    if (!s) return;
    for (int i = 0; i < s->n; i++) free(s->t[i].name);
    for (int i = 0; i < 2 * s->nmeta; i++) free(s->meta[i]);
    free(s->t), free(s->meta);
    memset(s, 0, sizeof *s);
}

const clt__st_tensor *clt__safetensors_find(const clt__safetensors *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->t[i].name, name)) return &s->t[i];
    return NULL;
}

typedef struct {
    uint64_t begin, end;
    int index;
} extent;

static int by_begin(const void *a, const void *b)
{
    const extent *x = a, *y = b;
    return x->begin != y->begin ? (x->begin < y->begin ? -1 : 1)
         : x->end != y->end ? (x->end < y->end ? -1 : 1) : 0;
}

/* Each tensor's bytes are its shape times its dtype; together they cover [0, data_len) once. */
static clt_status check_offsets(clt__safetensors *s, uint64_t data_len, const char *name)
{
    for (int i = 0; i < s->n; i++) {
        const clt__st_tensor *t = &s->t[i];
        uint64_t bytes = (uint64_t)dtype_bytes(t->dtype);
        for (int d = 0; d < t->rank; d++)
            if (t->dims[d] && bytes > UINT64_MAX / 4 / t->dims[d])
                return clt__fail(CLT_ERR_FORMAT, "safetensors %s: tensor '%s': its shape is too "
                                 "large", name, t->name);
            else
                bytes *= t->dims[d];
        if (t->begin > t->end || t->end > data_len)
            return clt__fail(CLT_ERR_FORMAT, "safetensors %s: tensor '%s': data_offsets [%llu, "
                             "%llu] are not a range inside the data section (%llu bytes)", name,
                             t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                             (unsigned long long)data_len);
        if (t->end - t->begin != bytes)
            return clt__fail(CLT_ERR_FORMAT, "safetensors %s: tensor '%s': data_offsets [%llu, "
                             "%llu] hold %llu bytes, its shape and dtype %s need %llu", name,
                             t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                             (unsigned long long)(t->end - t->begin), t->dtype,
                             (unsigned long long)bytes);
    }
    extent *order = malloc((s->n > 0 ? (size_t)s->n : 1) * sizeof *order);
    if (!order) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (int i = 0; i < s->n; i++) order[i] = (extent){s->t[i].begin, s->t[i].end, i};
    qsort(order, (size_t)s->n, sizeof *order, by_begin);
    clt_status st = CLT_OK;
    uint64_t at = 0;
    for (int k = 0; k < s->n && st == CLT_OK; k++) {
        const clt__st_tensor *t = &s->t[order[k].index];
        if (t->begin > at)
            st = clt__fail(CLT_ERR_FORMAT, "safetensors %s: bytes [%llu, %llu) of the data section "
                           "belong to no tensor (the format has no holes)", name,
                           (unsigned long long)at, (unsigned long long)t->begin);
        else if (t->begin < at)
            st = clt__fail(CLT_ERR_FORMAT, "safetensors %s: tensors '%s' and '%s' overlap (data_"
                           "offsets [.., %llu] and [%llu, %llu])", name, s->t[order[k - 1].index].name,
                           t->name, (unsigned long long)at, (unsigned long long)t->begin,
                           (unsigned long long)t->end);
        at = t->end;
    }
    if (st == CLT_OK && at != data_len)
        st = clt__fail(CLT_ERR_FORMAT, "safetensors %s: the data section holds %llu bytes, the "
                       "tensors cover %llu (the format has no trailing bytes)", name,
                       (unsigned long long)data_len, (unsigned long long)at);
    free(order);
    return st;
}

clt_status clt__safetensors_parse(const uint8_t *buf, size_t len, const char *name,
                                  clt__safetensors *out)
{
    memset(out, 0, sizeof *out);
    if (!buf || len < 8)
        return clt__fail(CLT_ERR_FORMAT, "safetensors %s: %zu bytes, shorter than the 8-byte header "
                         "length (truncated, or not a safetensors file)", name, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | buf[i];
    if (hlen > len - 8)
        return clt__fail(CLT_ERR_FORMAT, "safetensors %s: the header length is %llu bytes, the "
                         "file has %zu after it (truncated, or not a safetensors file)", name,
                         (unsigned long long)hlen, len - 8);
    if (hlen > ST_MAX_HEADER)
        return clt__fail(CLT_ERR_FORMAT, "safetensors %s: a %llu-byte header is over the %d-byte "
                         "limit", name, (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen < 2 || buf[8] != '{')
        return clt__fail(CLT_ERR_FORMAT, "safetensors %s: the header does not start with '{' (not "
                         "a safetensors file)", name);
    size_t bad = utf8_valid_prefix(buf + 8, (size_t)hlen);
    if (bad != hlen)
        return clt__fail(CLT_ERR_FORMAT, "safetensors %s: the header is not valid UTF-8 at byte %zu "
                         "of the JSON", name, bad);
    json j = {buf + 8, buf + 8, buf + 8 + hlen, name};
    clt_status st = expect(&j, '{');
    bool meta_seen = false;
    int cap = 0;
    if (st == CLT_OK && !accept(&j, '}')) {
        do {
            char *key;
            if ((st = jstring(&j, &key)) != CLT_OK) break;
            if ((st = expect(&j, ':')) != CLT_OK) {
                free(key);
                break;
            }
            if (!strcmp(key, "__metadata__")) {
                free(key);
                st = meta_seen ? jfail(&j, "__metadata__ appears twice") : parse_meta(&j, out);
                meta_seen = true;
                continue;
            }
            if (clt__safetensors_find(out, key)) {
                st = jfail(&j, "tensor '%.60s' appears twice", key);
                free(key);
                break;
            }
            if (out->n == cap) {
                int nc = cap ? cap * 2 : 16;
                clt__st_tensor *g = nc <= ST_MAX_TENSORS ? realloc(out->t, (size_t)nc * sizeof *g) : NULL;
                if (!g) {
                    free(key);
                    st = nc > ST_MAX_TENSORS ? jfail(&j, "over %d tensors", ST_MAX_TENSORS)
                                             : clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
                    break;
                }
                out->t = g, cap = nc;
            }
            clt__st_tensor *t = &out->t[out->n++];
            memset(t, 0, sizeof *t);
            t->name = key;
            st = parse_tensor(&j, t);
        } while (st == CLT_OK && accept(&j, ','));
        if (st == CLT_OK) st = expect(&j, '}');
    }
    skip_ws(&j);
    if (st == CLT_OK && j.p != j.end) st = jfail(&j, "bytes after the header's closing '}'");
    const uint8_t *data = buf + 8 + hlen;
    if (st == CLT_OK) st = check_offsets(out, len - 8 - hlen, name);
    for (int i = 0; i < out->n && st == CLT_OK; i++) out->t[i].data = data + out->t[i].begin;
    if (st != CLT_OK) clt__safetensors_free(out);
    return st;
}

/* ---- writing ------------------------------------------------------------------------------ */

/* s as a JSON string. */
static bool put_jstring(char **b, size_t *len, size_t *cap, const char *s)
{
    bool good = clt__sbuf_printf(b, len, cap, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p && good; p++) {
        if (*p == '"' || *p == '\\') good = clt__sbuf_printf(b, len, cap, "\\%c", *p);
        else if (*p < 0x20) good = clt__sbuf_printf(b, len, cap, "\\u%04x", *p);
        else good = clt__sbuf_printf(b, len, cap, "%c", *p);
    }
    return good && clt__sbuf_printf(b, len, cap, "\"");
}

clt_status clt__safetensors_write(const char *path, const clt__st_out *t, int n,
                                  const char *const *meta, int nmeta)
{
    char *h = NULL;
    size_t len = 0, cap = 0;
    bool good = clt__sbuf_printf(&h, &len, &cap, "{");
    if (nmeta) {
        good = good && clt__sbuf_printf(&h, &len, &cap, "\"__metadata__\":{");
        for (int i = 0; i < nmeta && good; i++)
            good = (!i || clt__sbuf_printf(&h, &len, &cap, ",")) && put_jstring(&h, &len, &cap, meta[2 * i]) &&
                   clt__sbuf_printf(&h, &len, &cap, ":") && put_jstring(&h, &len, &cap, meta[2 * i + 1]);
        good = good && clt__sbuf_printf(&h, &len, &cap, "}");
    }
    uint64_t at = 0;
    for (int i = 0; i < n && good; i++) {
        uint64_t bytes = 4;
        for (int d = 0; d < t[i].rank; d++) bytes *= t[i].dims[d];
        good = ((!nmeta && !i) || clt__sbuf_printf(&h, &len, &cap, ",")) &&
               put_jstring(&h, &len, &cap, t[i].name) &&
               clt__sbuf_printf(&h, &len, &cap, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t[i].rank && good; d++)
            good = clt__sbuf_printf(&h, &len, &cap, d ? ",%llu" : "%llu", (unsigned long long)t[i].dims[d]);
        good = good && clt__sbuf_printf(&h, &len, &cap, "],\"data_offsets\":[%llu,%llu]}",
                                        (unsigned long long)at, (unsigned long long)(at + bytes));
        at += bytes;
    }
    good = good && clt__sbuf_printf(&h, &len, &cap, "}");
    /* spaces pad the header so the data starts 8-byte aligned, as safetensors' writer does */
    while (good && len % 8) good = clt__sbuf_printf(&h, &len, &cap, " ");
    clt__chunk *chunks = good ? malloc((size_t)(n + 2) * sizeof *chunks) : NULL;
    if (!chunks) {
        free(h);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    uint8_t hlen[8];
    for (int i = 0; i < 8; i++) hlen[i] = (uint8_t)((uint64_t)len >> (8 * i));
    chunks[0] = (clt__chunk){hlen, 8};
    chunks[1] = (clt__chunk){h, len};
    at = 0;
    for (int i = 0; i < n; i++) {
        uint64_t bytes = 4;
        for (int d = 0; d < t[i].rank; d++) bytes *= t[i].dims[d];
        chunks[2 + i] = (clt__chunk){t[i].data_le, (size_t)bytes};
    }
    clt_status st = clt__file_write_atomic(path, "safetensors file", chunks, n + 2);
    free(chunks);
    free(h);
    return st;
}

/* ---- the model as nanoGPT's GPT ------------------------------------------------------------- */

/* A GPT's configuration read back from its layers, in nanoGPT's GPTConfig terms. */
typedef struct {
    int vocab, block, layers, heads, embd;
    float dropout, eps;
    bool tied;
} gpt_shape;

/* One transformer block as clt_model_create_gpt lays it out: each layer's kind and, for a
 * Linear, its width in embeddings. The Dropout layers are there when the model has dropout. */
static const struct {
    clt_layer_kind kind;
    int width;
} GPT_BLOCK[] = {
    {CLT_LAYER_RESIDUAL_BEGIN, 0}, {CLT_LAYER_LAYERNORM_LAST, 0}, {CLT_LAYER_LINEAR, 3},
    {CLT_LAYER_ATTENTION, 0},      {CLT_LAYER_LINEAR, 1},         {CLT_LAYER_DROPOUT, 0},
    {CLT_LAYER_RESIDUAL_END, 0},   {CLT_LAYER_RESIDUAL_BEGIN, 0}, {CLT_LAYER_LAYERNORM_LAST, 0},
    {CLT_LAYER_LINEAR, 4},         {CLT_LAYER_GELU_TANH, 0},      {CLT_LAYER_LINEAR, 1},
    {CLT_LAYER_DROPOUT, 0},        {CLT_LAYER_RESIDUAL_END, 0},
};

/* Whether layer l is what a GPT of g holds where a layer of that kind and width belongs: one
 * dropout, one eps and one head count for the whole model, as GPTConfig has. */
static bool gpt_layer_fits(const clt__layer *l, clt_layer_kind kind, int width, const gpt_shape *g)
{
    const clt_layer_desc *d = &l->desc;
    if (d->kind != kind) return false;
    switch (kind) {
    case CLT_LAYER_LINEAR: return d->bias && d->out == width * g->embd;
    case CLT_LAYER_LAYERNORM_LAST: return d->alpha == g->eps;
    case CLT_LAYER_DROPOUT: return d->alpha == g->dropout;
    case CLT_LAYER_ATTENTION: return d->count == g->heads && d->alpha == g->dropout;
    default: return true;
    }
}

/* Whether m is the model clt_model_create_gpt builds, with or without its Dropout layers, with
 * a tied or an untied head: recognised from the layer list, whoever built it. */
static bool gpt_recognise(const clt_model *m, gpt_shape *g)
{
    const clt__layer *L = m->layers;
    int n = m->nlayers, i = 2;
    memset(g, 0, sizeof *g);
    if (n < 3 || m->input.rank != 1 || L[0].desc.kind != CLT_LAYER_EMBEDDING ||
        L[1].desc.kind != CLT_LAYER_POSITION)
        return false;
    g->vocab = L[0].desc.count, g->embd = L[0].desc.out, g->block = m->input.dims[0];
    bool drop = L[i].desc.kind == CLT_LAYER_DROPOUT;
    if (drop) g->dropout = L[i++].desc.alpha;
    if (i + 3 >= n) return false;
    g->eps = L[i + 1].desc.alpha, g->heads = L[i + 3].desc.count;
    while (i < n - 2) {
        for (size_t k = 0; k < sizeof GPT_BLOCK / sizeof GPT_BLOCK[0]; k++) {
            if (GPT_BLOCK[k].kind == CLT_LAYER_DROPOUT && !drop) continue;
            if (i >= n - 2 || !gpt_layer_fits(&L[i++], GPT_BLOCK[k].kind, GPT_BLOCK[k].width, g))
                return false;
        }
        g->layers++;
    }
    const clt_layer_desc *head = &L[n - 1].desc;
    g->tied = head->kind == CLT_LAYER_LM_HEAD;
    return g->layers > 0 && gpt_layer_fits(&L[n - 2], CLT_LAYER_LAYERNORM_LAST, 0, g) &&
           (g->tied || (head->kind == CLT_LAYER_LINEAR && !head->bias && head->out == g->vocab));
}

/* nanoGPT's module for the j-th layer with parameters of a GPT of g: the order of its
 * state_dict is the order of cltrain's layers. */
static void gpt_module(int j, const gpt_shape *g, char *buf, size_t cap)
{
    static const char *const block[6] = {"ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc",
                                         "mlp.c_proj"};
    if (j < 2) snprintf(buf, cap, "transformer.%s", j ? "wpe" : "wte");
    else if (j < 2 + 6 * g->layers) snprintf(buf, cap, "transformer.h.%d.%s", (j - 2) / 6, block[(j - 2) % 6]);
    else snprintf(buf, cap, "%s", j == 2 + 6 * g->layers ? "transformer.ln_f" : "lm_head");
}

/* ---- the model as torch.nn.Sequential ------------------------------------------------------- */

/* Layer l as the JSON object of its torch.nn module: the class in "type", the constructor's
 * keyword arguments beside it. False when PyTorch's Sequential has no such module. */
static bool torch_module(const clt__layer *l, char **b, size_t *len, size_t *cap, bool *good)
{
    const clt_layer_desc *d = &l->desc;
    const int *in = l->in.dims;
    const char *tf = d->bias ? "true" : "false";
    switch (d->kind) {
    case CLT_LAYER_LINEAR:
        *good = *good && clt__sbuf_printf(b, len, cap, "{\"type\":\"Linear\",\"in_features\":%d,"
                                          "\"out_features\":%d,\"bias\":%s}", (int)l->in_feat, d->out, tf);
        return true;
    case CLT_LAYER_CONV2D:
        *good = *good && clt__sbuf_printf(b, len, cap, "{\"type\":\"Conv2d\",\"in_channels\":%d,"
                                          "\"out_channels\":%d,\"kernel_size\":%d,\"stride\":%d,"
                                          "\"padding\":%d,\"bias\":%s}", in[0], d->out, d->kernel,
                                          d->stride, d->padding, tf);
        return true;
    case CLT_LAYER_MAXPOOL2D:
    case CLT_LAYER_AVGPOOL2D:
        *good = *good && clt__sbuf_printf(b, len, cap, "{\"type\":\"%s\",\"kernel_size\":%d,"
                                          "\"stride\":%d}", d->kind == CLT_LAYER_MAXPOOL2D ?
                                          "MaxPool2d" : "AvgPool2d", d->kernel, d->stride);
        return true;
    case CLT_LAYER_FLATTEN:
    case CLT_LAYER_RELU:
    case CLT_LAYER_GELU:
    case CLT_LAYER_TANH:
    case CLT_LAYER_SIGMOID: {
        static const char *const names[] = {[CLT_LAYER_FLATTEN] = "Flatten", [CLT_LAYER_RELU] = "ReLU",
                                            [CLT_LAYER_GELU] = "GELU", [CLT_LAYER_TANH] = "Tanh",
                                            [CLT_LAYER_SIGMOID] = "Sigmoid"};
        *good = *good && clt__sbuf_printf(b, len, cap, "{\"type\":\"%s\"}", names[d->kind]);
        return true;
    }
    case CLT_LAYER_LEAKY_RELU:
        *good = *good && clt__sbuf_printf(b, len, cap, "{\"type\":\"LeakyReLU\",\"negative_slope\":"
                                          "%.9g}", (double)d->alpha);
        return true;
    case CLT_LAYER_DROPOUT:
        *good = *good && clt__sbuf_printf(b, len, cap, "{\"type\":\"Dropout\",\"p\":%.9g}", (double)d->alpha);
        return true;
    case CLT_LAYER_LAYERNORM:
        *good = *good && clt__sbuf_printf(b, len, cap, "{\"type\":\"LayerNorm\",\"normalized_shape\":[");
        for (int i = 0; i < l->in.rank; i++)
            *good = *good && clt__sbuf_printf(b, len, cap, i ? ",%d" : "%d", in[i]);
        *good = *good && clt__sbuf_printf(b, len, cap, "],\"eps\":%.9g}", (double)d->alpha);
        return true;
    case CLT_LAYER_LAYERNORM_LAST:
        *good = *good && clt__sbuf_printf(b, len, cap, "{\"type\":\"LayerNorm\",\"normalized_shape\":"
                                          "[%d],\"eps\":%.9g}", (int)l->in_feat, (double)d->alpha);
        return true;
    case CLT_LAYER_GELU_TANH:
        *good = *good && clt__sbuf_printf(b, len, cap, "{\"type\":\"GELU\",\"approximate\":\"tanh\"}");
        return true;
    case CLT_LAYER_EMBEDDING:
        *good = *good && clt__sbuf_printf(b, len, cap, "{\"type\":\"Embedding\",\"num_embeddings\":%d,"
                                          "\"embedding_dim\":%d}", d->count, d->out);
        return true;
    case CLT_LAYER_POSITION:   /* a sum with a table, attention, residuals and a tied head */
    case CLT_LAYER_ATTENTION:  /* have no module that Sequential can hold */
    case CLT_LAYER_RESIDUAL_BEGIN:
    case CLT_LAYER_RESIDUAL_END:
    case CLT_LAYER_LM_HEAD:
        return false;
    }
    return false;
}

/* The model as JSON (malloc'ed): a GPT as {"type": "gpt", GPTConfig's fields}, any other as
 * {"input": [...], "layers": [module, ...]}, or CLT_ERR_UNSUPPORTED naming the layer
 * nn.Sequential cannot hold. */
static clt_status model_json(const clt_model *m, const char *path, char **out)
{
    char *b = NULL;
    size_t len = 0, cap = 0;
    gpt_shape g;
    bool good;
    if (gpt_recognise(m, &g)) {
        good = clt__sbuf_printf(&b, &len, &cap, "{\"type\":\"gpt\",\"vocab_size\":%d,\"block_size\":%d,"
                                "\"n_layer\":%d,\"n_head\":%d,\"n_embd\":%d,\"dropout\":%.9g,\"bias\":true,"
                                "\"tied\":%s,\"eps\":%.9g}", g.vocab, g.block, g.layers, g.heads, g.embd,
                                (double)g.dropout, g.tied ? "true" : "false", (double)g.eps);
        goto done;
    }
    good = clt__sbuf_printf(&b, &len, &cap, "{\"input\":[");
    for (int i = 0; i < m->input.rank; i++) good = good && clt__sbuf_printf(&b, &len, &cap, i ? ",%d" : "%d", m->input.dims[i]);
    good = good && clt__sbuf_printf(&b, &len, &cap, "],\"layers\":[");
    for (int i = 0; i < m->nlayers; i++) {
        if (i) good = good && clt__sbuf_printf(&b, &len, &cap, ",");
        if (!torch_module(&m->layers[i], &b, &len, &cap, &good)) {
            free(b);
            return clt__fail(CLT_ERR_UNSUPPORTED, "safetensors %s: layer %d (%s) has no torch.nn "
                             "module that nn.Sequential could hold in its place", path, i,
                             clt__layer_kind_name(m->layers[i].desc.kind));
        }
    }
    good = good && clt__sbuf_printf(&b, &len, &cap, "]}");
done:
    if (!good) {
        free(b);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    *out = b;
    return CLT_OK;
}

/* The parameter tensors, in the flat order: layer i's weight then its bias, named "i.weight"
 * and "i.bias" as the Sequential's state_dict, or a GPT's as nanoGPT's, whose tied head adds
 * "lm_head.weight" at the end, a second name for the token embedding. */
typedef struct {
    char name[48];
    int layer;                      /* whose parameter it is */
    const char *param;              /* "weight" or "bias" */
    clt_shape shape;
    uint64_t dims[CLT_MAX_RANK];
    size_t off, count;
    int copy_of;                    /* the tensor this one must equal bit for bit (a tied head's
                                     * weight: the embedding's); -1 */
} param_tensor;

static void param_tensor_set(param_tensor *p, int layer, const clt__layer *l, int bias)
{
    p->layer = layer;
    p->param = bias ? "bias" : "weight";
    p->shape = bias ? l->b_shape : l->w_shape;
    for (int d = 0; d < p->shape.rank; d++) p->dims[d] = (uint64_t)p->shape.dims[d];
    p->off = l->param_off + (bias ? l->w_count : 0);
    p->count = bias ? l->b_count : l->w_count;
    p->copy_of = -1;
}

static clt_status param_tensors(const clt_model *m, param_tensor **out, int *n)
{
    *n = 0;
    *out = malloc((size_t)(2 * m->nlayers + 1) * sizeof **out);
    if (!*out) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    gpt_shape g;
    bool gpt = gpt_recognise(m, &g);
    char module[40];
    for (int i = 0, j = 0; i < m->nlayers; i++) {
        const clt__layer *l = &m->layers[i];
        if (!l->w_count && !l->b_count) continue;
        if (gpt) gpt_module(j++, &g, module, sizeof module);
        else snprintf(module, sizeof module, "%d", i);
        for (int k = 0; k < 2; k++) {
            if (!(k ? l->b_count : l->w_count)) continue;
            param_tensor *p = &(*out)[(*n)++];
            param_tensor_set(p, i, l, k);
            snprintf(p->name, sizeof p->name, "%s.%s", module, p->param);
        }
    }
    if (gpt && g.tied) {   /* nanoGPT's state_dict holds the shared weight under both names */
        param_tensor *p = &(*out)[(*n)++];
        param_tensor_set(p, 0, &m->layers[0], 0);
        p->layer = m->nlayers - 1;
        p->copy_of = 0;
        snprintf(p->name, sizeof p->name, "lm_head.weight");
    }
    return CLT_OK;
}

/* The model's parameters (nparams little-endian floats, the flat layout) to path. */
static clt_status save_params(const clt_model *m, const uint8_t *params_le, const char *path)
{
    char *mj = NULL;
    param_tensor *pt = NULL;
    clt__st_out *outs = NULL;
    int n = 0;
    clt_status st = model_json(m, path, &mj);
    if (st == CLT_OK) st = param_tensors(m, &pt, &n);
    if (st == CLT_OK && !(outs = malloc((size_t)(n ? n : 1) * sizeof *outs)))
        st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory");
    if (st == CLT_OK) {
        for (int i = 0; i < n; i++)
            outs[i] = (clt__st_out){pt[i].name, pt[i].shape.rank, pt[i].dims, params_le + pt[i].off * 4};
        char producer[64];
        snprintf(producer, sizeof producer, "cltrain %s", clt_version());
        const char *meta[] = {"format", "pt", "producer", producer, "cltrain.model", mj};
        st = clt__safetensors_write(path, outs, n, meta, 3);
    }
    free(outs), free(pt), free(mj);
    return st;
}

static const char *shape_text(int rank, const uint64_t *dims, char *buf, size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < rank && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, i ? ", %llu" : "%llu", (unsigned long long)dims[i]);
    if (len < cap) snprintf(buf + len, cap - len, rank == 1 ? ",)" : ")");
    return buf;
}

/* A tied head's weight and the embedding's are one: the two tensors hold the same bits (their
 * shapes were checked), else CLT_ERR_SHAPE naming both and the first difference. */
static clt_status same_tensor(const clt__st_tensor *a, const clt__st_tensor *b, const char *path)
{
    size_t n = (size_t)(a->end - a->begin) / 4, i = 0;
    while (i < n && !memcmp(a->data + 4 * i, b->data + 4 * i, 4)) i++;
    if (i == n) return CLT_OK;
    float x, y;
    clt__floats_from_le(&x, a->data + 4 * i, 1);
    clt__floats_from_le(&y, b->data + 4 * i, 1);
    return clt__fail(CLT_ERR_SHAPE, "safetensors %s: tensors '%s' and '%s' differ (element %zu: "
                     "%.9g and %.9g): the model's head is tied to its token embedding, so the two "
                     "names hold one weight", path, a->name, b->name, i, (double)x, (double)y);
}

/* The file's tensors are exactly the model's, F32 and of its shapes: the parameters into
 * params (nparams host floats). */
static clt_status match_tensors(const clt_model *m, const clt__safetensors *s, const char *path,
                                float *params)
{
    param_tensor *pt;
    int n;
    clt_status st = param_tensors(m, &pt, &n);
    char a[96], b[96];
    for (int i = 0; i < n && st == CLT_OK; i++) {
        const clt__st_tensor *t = clt__safetensors_find(s, pt[i].name);
        int layer = pt[i].layer;
        const char *kind = clt__layer_kind_name(m->layers[layer].desc.kind);
        bool same = t && t->rank == pt[i].shape.rank;
        for (int d = 0; same && d < t->rank; d++) same = t->dims[d] == pt[i].dims[d];
        if (!t)
            st = clt__fail(CLT_ERR_SHAPE, "safetensors %s: tensor '%s' (layer %d's %s %s, shape %s) "
                           "is missing", path, pt[i].name, layer, kind, pt[i].param,
                           shape_text(pt[i].shape.rank, pt[i].dims, a, sizeof a));
        else if (strcmp(t->dtype, "F32"))
            st = clt__fail(CLT_ERR_FORMAT, "safetensors %s: tensor '%s' is %s; cltrain reads F32 "
                           "only (convert with tensor.float())", path, t->name, t->dtype);
        else if (!same)
            st = clt__fail(CLT_ERR_SHAPE, "safetensors %s: tensor '%s' has shape %s, the model's "
                           "(layer %d, %s) is %s", path, t->name, shape_text(t->rank, t->dims, a, sizeof a),
                           layer, kind, shape_text(pt[i].shape.rank, pt[i].dims, b, sizeof b));
        else if (pt[i].copy_of < 0)
            clt__floats_from_le(params + pt[i].off, t->data, pt[i].count);
        else
            st = same_tensor(clt__safetensors_find(s, pt[pt[i].copy_of].name), t, path);
    }
    for (int i = 0; i < s->n && st == CLT_OK; i++) {
        int k = 0;
        while (k < n && strcmp(pt[k].name, s->t[i].name)) k++;
        if (k < n) continue;
        char *list = NULL;
        size_t len = 0, cap = 0;
        for (int j = 0; j < n && j < 8; j++) clt__sbuf_printf(&list, &len, &cap, j ? ", %s" : "%s", pt[j].name);
        if (n > 8) clt__sbuf_printf(&list, &len, &cap, ", ... (%d in all)", n);
        st = clt__fail(CLT_ERR_SHAPE, "safetensors %s: tensor '%.80s' is not one of the model's "
                       "(%s)", path, s->t[i].name, list ? list : "none");
        free(list);
    }
    free(pt);
    return st;
}

/* ---- the public calls ----------------------------------------------------------------------- */

static clt_status check_args(const void *a, const char *path, const char *fn, const char *what)
{
    if (!a || !path) return clt__fail(CLT_ERR_INVALID_ARG, "%s: %s is NULL", fn, !a ? what : "path");
    if (!*path) return clt__fail(CLT_ERR_INVALID_ARG, "%s: the path is empty", fn);
    return CLT_OK;
}

clt_status clt_trainer_save_safetensors(clt_trainer *t, const char *path)
{
    clt_status st = check_args(t, path, "clt_trainer_save_safetensors", "trainer");
    if (st != CLT_OK) return st;
    float *params[3] = {NULL, NULL, NULL};
    st = clt__trainer_state_read(t, 0, params);
    if (st == CLT_OK) {
        clt__floats_to_le(params[0], t->model->nparams);
        st = save_params(t->model, (const uint8_t *)params[0], path);
    }
    free(params[0]);
    return st;
}

clt_status clt_trainer_load_safetensors(clt_trainer *t, const char *path)
{
    clt_status st = check_args(t, path, "clt_trainer_load_safetensors", "trainer");
    if (st != CLT_OK) return st;
    uint8_t *buf;
    size_t len;
    char *mj = NULL;
    if ((st = model_json(t->model, path, &mj)) != CLT_OK) return st;   /* nothing to match */
    free(mj);
    if ((st = clt__file_read(path, "safetensors file", &buf, &len)) != CLT_OK) return st;
    clt__safetensors s;
    float *fresh[3] = {NULL, NULL, NULL};
    size_t np = t->model->nparams;
    st = clt__safetensors_parse(buf, len, path, &s);
    if (st == CLT_OK && !(fresh[0] = malloc((np ? np : 1) * sizeof(float))))
        st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "out of host memory (%zu parameters)", np);
    if (st == CLT_OK) st = match_tensors(t->model, &s, path, fresh[0]);
    if (st == CLT_OK) st = clt__trainer_state_replace(t, 0, fresh, path);
    free(fresh[0]);
    clt__safetensors_free(&s);
    free(buf);
    return st;
}

clt_status clt_checkpoint_export_safetensors(const char *checkpoint, const char *path,
                                             const clt_model *expect)
{
    clt_status st = check_args(checkpoint, path, "clt_checkpoint_export_safetensors", "checkpoint");
    if (st != CLT_OK) return st;
    if (!*checkpoint)
        return clt__fail(CLT_ERR_INVALID_ARG, "clt_checkpoint_export_safetensors: the checkpoint "
                         "path is empty");
    uint8_t *buf;
    size_t len;
    if ((st = clt__file_read(checkpoint, "checkpoint", &buf, &len)) != CLT_OK) return st;
    clt__checkpoint c;
    st = clt__checkpoint_parse(buf, len, checkpoint, &c);
    if (st == CLT_OK && expect) st = clt__model_match(expect, c.model, checkpoint, "the expected");
    /* the checkpoint's parameters are little-endian floats already */
    if (st == CLT_OK) st = save_params(c.model, c.params, path);
    clt__checkpoint_free(&c);
    free(buf);
    return st;
}
