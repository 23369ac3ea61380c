/* Text for character-level language models: a vocabulary of the distinct characters (or bytes)
 * of a corpus, the corpus as token ids split 90/10, and seeded random windows. No device. */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CODE_POINTS 0x110000u               /* U+0000 .. U+10FFFF */
#define DEFAULT_MAX_BYTES ((size_t)256 << 20)
#define FORTUNES_DIR "/usr/share/games/fortunes"
#define READ_CHUNK ((size_t)1 << 20)

struct clt_text {
    int bytes;              /* tokens are bytes, not code points */
    int vocab_size;
    uint32_t *symbols;      /* (vocab_size) code points or bytes, ascending: id -> symbol */
    char *vocab;            /* (vocab_len + 1) the symbols as UTF-8 (or bytes), NUL after */
    size_t vocab_len;
    int32_t *ids;           /* (n) the corpus, the training part first */
    size_t n, n_train;
};

clt_text_options clt_text_options_default(void)
{
    clt_text_options o = {.struct_size = sizeof o, .bytes = 0, .val_fraction = 0.1,
                          .max_bytes = DEFAULT_MAX_BYTES};
    return o;
}

/* ---- UTF-8 -------------------------------------------------------------------------------- */

/* The code point at s[0 ..] (len >= 1 bytes left) into *cp; returns its length, or 0 when the
 * bytes there are not well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
 * past U+10FFFF). */
static int utf8_decode(const uint8_t *s, size_t len, uint32_t *cp)
{
    uint8_t b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    int n;
    uint8_t lo = 0x80, hi = 0xBF;   /* the range of the second byte */
    if (b >= 0xC2 && b <= 0xDF) n = 2;
    else if (b >= 0xE0 && b <= 0xEF) {
        n = 3;
        if (b == 0xE0) lo = 0xA0;        /* overlong */
        if (b == 0xED) hi = 0x9F;        /* surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        n = 4;
        if (b == 0xF0) lo = 0x90;        /* overlong */
        if (b == 0xF4) hi = 0x8F;        /* past U+10FFFF */
    } else
        return 0;
    if (len < (size_t)n || s[1] < lo || s[1] > hi) return 0;
    uint32_t v = b & (0x7Fu >> n);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3Fu);
    }
    *cp = v;
    return n;
}

/* Writes the UTF-8 of cp (at most U+10FFFF) to out; returns its length, 1..4. */
static int utf8_encode(uint32_t cp, uint8_t *out)
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    int n = cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    static const uint8_t lead[5] = {0, 0, 0xC0, 0xE0, 0xF0};
    for (int i = n - 1; i > 0; i--, cp >>= 6) out[i] = (uint8_t)(0x80 | (cp & 0x3F));
    out[0] = (uint8_t)(lead[n] | cp);
    return n;
}

/* The byte position of the first byte that is not well-formed UTF-8, or len when all are. */
static size_t utf8_invalid_at(const uint8_t *s, size_t len)
{
    uint32_t cp;
    for (size_t i = 0; i < len;) {
        int n = utf8_decode(s + i, len - i, &cp);
        if (!n) return i;
        i += (size_t)n;
    }
    return len;
}

/* The next token at s[*i] (valid input, *i < len) as a symbol; advances *i past it. */
static uint32_t next_symbol(const uint8_t *s, size_t len, size_t *i, int bytes)
{
    if (bytes) return s[(*i)++];
    uint32_t cp = 0;
    *i += (size_t)utf8_decode(s + *i, len - *i, &cp);
    return cp;
}

/* A symbol for a message: "'a' (U+0061)", "U+000A", "'a' (byte 0x61)", "byte 0x0a". */
static const char *describe(char buf[32], uint32_t sym, int bytes)
{
    bool printable = bytes ? sym >= 0x20 && sym < 0x7F
                           : sym >= 0x20 && sym != 0x7F && !(sym >= 0x80 && sym < 0xA0);
    char u[5] = {0};
    if (printable && bytes) u[0] = (char)sym;
    else if (printable) u[utf8_encode(sym, (uint8_t *)u)] = 0;
    if (printable && bytes) snprintf(buf, 32, "'%s' (byte 0x%02x)", u, (unsigned)sym);
    else if (printable) snprintf(buf, 32, "'%s' (U+%04X)", u, (unsigned)sym);
    else if (bytes) snprintf(buf, 32, "byte 0x%02x", (unsigned)sym);
    else snprintf(buf, 32, "U+%04X", (unsigned)sym);
    return buf;
}

/* ---- the object --------------------------------------------------------------------------- */

void clt_text_destroy(clt_text *t)
{
    if (!t) return;
    free(t->symbols);
    free(t->vocab);
    free(t->ids);
    free(t);
}

/* Fills t->vocab from t->symbols. */
static clt_status vocab_text(clt_text *t, const char *what)
{
    t->vocab = malloc((size_t)t->vocab_size * 4 + 1);
    if (!t->vocab) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "%s: out of host memory", what);
    size_t len = 0;
    for (int k = 0; k < t->vocab_size; k++) {
        if (t->bytes) t->vocab[len++] = (char)t->symbols[k];
        else len += (size_t)utf8_encode(t->symbols[k], (uint8_t *)t->vocab + len);
    }
    t->vocab[len] = 0;
    t->vocab_len = len;
    return CLT_OK;
}

/* Checks the options a corpus is read with (o already through clt__options_read). */
static clt_status check_options(const clt_text_options *o, const char *what)
{
    if (o->bytes != 0 && o->bytes != 1)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: clt_text_options.bytes is %d; 0 or 1", what,
                         o->bytes);
    if (!(o->val_fraction >= 0 && o->val_fraction < 1))
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: clt_text_options.val_fraction is %g; it must "
                         "be at least 0 and below 1", what, o->val_fraction);
    if (o->max_bytes == 0)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: clt_text_options.max_bytes is 0", what);
    return CLT_OK;
}

/* Reads the caller's options into *def and checks them. */
static clt_status read_options(clt_text_options *def, const clt_text_options *o, const char *what)
{
    *def = clt_text_options_default();
    clt_status st = clt__options_read(def, o, sizeof *def, CLT__TEXT_OPTIONS_V1, what,
                                      "clt_text_options");
    return st != CLT_OK ? st : check_options(def, what);
}

/* The text of len (>= 1) bytes: its vocabulary, its ids and its split. */
static clt_status text_build(clt_text **out, const uint8_t *data, size_t len,
                             const clt_text_options *o, const char *what)
{
    if (len > SIZE_MAX / sizeof(int32_t))
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "%s: the ids of %zu bytes of text overflow "
                         "size_t", what, len);
    clt_text *t = calloc(1, sizeof *t);
    if (!t) return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "%s: out of host memory", what);
    t->bytes = o->bytes || utf8_invalid_at(data, len) != len;
    /* A dense table over every possible symbol: 0 absent, else id + 1. */
    size_t space = t->bytes ? 256 : CODE_POINTS, n = 0;
    int32_t *table = calloc(space, sizeof *table);
    t->ids = malloc(len * sizeof *t->ids);   /* a token is at least one byte */
    if (!table || !t->ids) {
        free(table);
        clt_text_destroy(t);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "%s: cannot allocate the ids of %zu bytes "
                         "of text", what, len);
    }
    for (size_t i = 0; i < len; n++) table[next_symbol(data, len, &i, t->bytes)] = 1;
    for (size_t s = 0; s < space; s++)
        if (table[s]) table[s] = ++t->vocab_size;
    t->symbols = malloc((size_t)t->vocab_size * sizeof *t->symbols);
    if (!t->symbols) {
        free(table);
        clt_text_destroy(t);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "%s: out of host memory", what);
    }
    for (size_t s = 0; s < space; s++)
        if (table[s]) t->symbols[table[s] - 1] = (uint32_t)s;
    for (size_t i = 0, k = 0; i < len; k++) t->ids[k] = table[next_symbol(data, len, &i, t->bytes)] - 1;
    free(table);
    t->n = n;
    t->n_train = (size_t)((double)n * (1.0 - o->val_fraction));   /* nanoGPT: int(n * 0.9) */
    if (t->n_train > n) t->n_train = n;
    clt_status st = vocab_text(t, what);
    if (st != CLT_OK) {
        clt_text_destroy(t);
        return st;
    }
    *out = t;
    return CLT_OK;
}

clt_status clt_text_from_memory(clt_text **out, const void *data, size_t len,
                                const clt_text_options *o)
{
    static const char what[] = "clt_text_from_memory";
    if (!out) return clt__fail(CLT_ERR_INVALID_ARG, "%s: out is NULL", what);
    *out = NULL;
    if (!data) return clt__fail(CLT_ERR_INVALID_ARG, "%s: data is NULL", what);
    clt_text_options def;
    clt_status st = read_options(&def, o, what);
    if (st != CLT_OK) return st;
    if (len == 0) return clt__fail(CLT_ERR_INVALID_ARG, "%s: len is 0: no text", what);
    if (len > def.max_bytes)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: %zu bytes are more than "
                         "clt_text_options.max_bytes = %zu", what, len, def.max_bytes);
    return text_build(out, data, len, &def, what);
}

/* ---- files -------------------------------------------------------------------------------- */

/* Appends the whole file at path to *buf (*len bytes so far, *cap allocated), refusing to grow
 * it past max bytes. A pipe works as well as a regular file. */
static clt_status read_file(const char *path, size_t max, uint8_t **buf, size_t *len, size_t *cap,
                            const char *what)
{
    FILE *f = fopen(path, "rb");
    if (!f) return clt__fail(CLT_ERR_IO, "%s: cannot open %s: %s", what, path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(f);
        return clt__fail(CLT_ERR_IO, "%s: cannot read %s: it is a directory", what, path);
    }
    size_t before = *len;
    for (;;) {
        if (*cap - *len < READ_CHUNK) {
            size_t ncap = *cap ? *cap * 2 : READ_CHUNK;
            while (ncap - *len < READ_CHUNK) ncap *= 2;
            uint8_t *nb = realloc(*buf, ncap);
            if (!nb) {
                fclose(f);
                return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "%s: cannot allocate %zu bytes for "
                                 "%s", what, ncap, path);
            }
            *buf = nb;
            *cap = ncap;
        }
        size_t got = fread(*buf + *len, 1, READ_CHUNK, f);
        *len += got;
        if (*len > max) {
            fclose(f);
            if (before)
                return clt__fail(CLT_ERR_INVALID_ARG, "%s: %s takes the text past "
                                 "clt_text_options.max_bytes = %zu (%zu bytes before it)", what,
                                 path, max, before);
            return clt__fail(CLT_ERR_INVALID_ARG, "%s: %s is larger than "
                             "clt_text_options.max_bytes = %zu", what, path, max);
        }
        if (got < READ_CHUNK) break;
    }
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (err) return clt__fail(CLT_ERR_IO, "%s: cannot read %s: %s", what, path, strerror(err));
    return CLT_OK;
}

clt_status clt_text_load(clt_text **out, const char *path, const clt_text_options *o)
{
    static const char what[] = "clt_text_load";
    if (!out) return clt__fail(CLT_ERR_INVALID_ARG, "%s: out is NULL", what);
    *out = NULL;
    if (!path) return clt__fail(CLT_ERR_INVALID_ARG, "%s: path is NULL", what);
    clt_text_options def;
    clt_status st = read_options(&def, o, what);
    if (st != CLT_OK) return st;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    st = read_file(path, def.max_bytes, &buf, &len, &cap, what);
    if (st == CLT_OK && len == 0)
        st = clt__fail(CLT_ERR_FORMAT, "%s: %s is empty: no text", what, path);
    if (st == CLT_OK) st = text_build(out, buf, len, &def, what);
    free(buf);
    return st;
}

/* ---- Debian's fortunes -------------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names of dir's plain fortune files, sorted: *names (count) are the caller's to free. */
static clt_status fortune_files(const char *dir, char ***names, size_t *count, const char *what)
{
    *names = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d)
        return clt__fail(CLT_ERR_IO, "%s: cannot open the fortunes folder %s: %s%s", what, dir,
                         strerror(errno), strcmp(dir, FORTUNES_DIR) ? ""
                         : " (Debian's fortunes package installs it)");
    size_t cap = 0;
    clt_status st = CLT_OK;
    for (struct dirent *e; (e = readdir(d));) {
        const char *name = e->d_name;
        if (name[0] == '.' || ends_with(name, ".dat") || ends_with(name, ".u8")) continue;
        char path[4096];
        struct stat sb;
        if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
            st = clt__fail(CLT_ERR_INVALID_ARG, "%s: the path of %s in %s is too long", what,
                           name, dir);
            break;
        }
        /* lstat: a symbolic link is another name for a file read already (or a stray one). */
        if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        if (*count == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(*names, cap * sizeof *nn);
            if (!nn) {
                st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "%s: out of host memory", what);
                break;
            }
            *names = nn;
        }
        if (!((*names)[*count] = strdup(name))) {
            st = clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "%s: out of host memory", what);
            break;
        }
        ++*count;
    }
    closedir(d);
    if (st == CLT_OK && *count == 0)
        st = clt__fail(CLT_ERR_IO, "%s: the fortunes folder %s holds no fortune file (a plain "
                       "file not named .dat or .u8)", what, dir);
    if (st != CLT_OK) {
        for (size_t i = 0; i < *count; i++) free((*names)[i]);
        free(*names);
        *names = NULL;
        *count = 0;
        return st;
    }
    qsort(*names, *count, sizeof **names, by_name);
    return CLT_OK;
}

/* Rewrites the fortune file at buf[start .. *len) in place: each "%" line becomes an empty
 * line, and a missing last newline is added (cap has room for it). */
static void fortune_lines(uint8_t *buf, size_t start, size_t *len)
{
    size_t w = start;
    for (size_t i = start; i < *len;) {
        size_t e = i;
        while (e < *len && buf[e] != '\n') e++;
        bool separator = e - i == 1 && buf[i] == '%';
        if (!separator) {
            memmove(buf + w, buf + i, e - i);
            w += e - i;
        }
        buf[w++] = '\n';
        i = e + 1;
    }
    *len = w;
}

clt_status clt_text_load_fortunes(clt_text **out, const char *dir, const clt_text_options *o)
{
    static const char what[] = "clt_text_load_fortunes";
    if (!out) return clt__fail(CLT_ERR_INVALID_ARG, "%s: out is NULL", what);
    *out = NULL;
    if (!dir) dir = FORTUNES_DIR;
    clt_text_options def;
    clt_status st = read_options(&def, o, what);
    if (st != CLT_OK) return st;
    char **names;
    size_t count;
    if ((st = fortune_files(dir, &names, &count, what)) != CLT_OK) return st;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (size_t i = 0; i < count && st == CLT_OK; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);   /* fits: fortune_files checked */
        size_t start = len;
        /* read_file leaves at least READ_CHUNK bytes free: room for the added newline. */
        st = read_file(path, def.max_bytes, &buf, &len, &cap, what);
        if (st == CLT_OK) fortune_lines(buf, start, &len);
        if (st == CLT_OK && len > def.max_bytes)
            st = clt__fail(CLT_ERR_INVALID_ARG, "%s: %s takes the text past "
                           "clt_text_options.max_bytes = %zu", what, path, def.max_bytes);
    }
    if (st == CLT_OK && len == 0)
        st = clt__fail(CLT_ERR_FORMAT, "%s: the fortune files in %s are empty: no text", what, dir);
    if (st == CLT_OK) st = text_build(out, buf, len, &def, what);
    free(buf);
    for (size_t i = 0; i < count; i++) free(names[i]);
    free(names);
    return st;
}

/* ---- generated text ----------------------------------------------------------------------- */

/* Common English words, lower case: the generator's whole vocabulary of words. */
static const char *const words[] = {
    "the", "of", "and", "to", "a", "in", "is", "it", "you", "that", "he", "was", "for", "on",
    "are", "with", "as", "his", "they", "be", "at", "one", "have", "this", "from", "or", "had",
    "by", "hot", "word", "but", "what", "some", "we", "can", "out", "other", "were", "all",
    "there", "when", "up", "use", "your", "how", "said", "an", "each", "she", "which", "do",
    "their", "time", "if", "will", "way", "about", "many", "then", "them", "write", "would",
    "like", "so", "these", "her", "long", "make", "thing", "see", "him", "two", "has", "look",
    "more", "day", "could", "go", "come", "did", "number", "sound", "no", "most", "people",
    "my", "over", "know", "water", "than", "call", "first", "who", "may", "down", "side",
    "been", "now", "find", "any", "new", "work", "part", "take", "get", "place", "made",
    "live", "where", "after", "back", "little", "only", "round", "man", "year", "came",
    "show", "every", "good", "me", "give", "our", "under", "name", "very", "through", "just",
    "form", "sentence", "great", "think", "say", "help", "low", "line", "differ", "turn",
    "cause", "much", "mean", "before", "move", "right", "boy", "old", "too", "same", "tell",
    "does", "set", "three", "want", "air", "well", "also", "play", "small", "end", "put",
    "home", "read", "hand", "port", "large", "spell", "add", "even", "land", "here", "must",
    "big", "high", "such", "follow", "act", "why", "ask", "men", "change", "went", "light",
    "kind", "off", "need", "house", "picture", "try", "us", "again", "animal", "point",
    "mother", "world", "near", "build", "self", "earth", "father", "head", "stand", "own",
    "page", "should", "country", "found", "answer", "school", "grow", "study", "still",
    "learn", "plant", "cover", "food", "sun", "four", "between", "state", "keep", "eye",
    "never", "last", "let", "thought", "city", "tree", "cross", "farm", "hard", "start",
    "might", "story", "saw", "far", "sea", "draw", "left", "late", "run", "while", "press",
    "close", "night", "real", "life", "few", "north", "open", "seem", "together", "next",
    "white", "children", "begin", "got", "walk", "example", "ease", "paper", "group",
    "always", "music", "those", "both", "mark", "often", "letter", "until", "mile", "river",
    "car", "feet", "care", "second", "book", "carry", "took", "science", "eat", "room",
    "friend", "began", "idea", "fish", "mountain", "stop", "once", "base", "hear", "horse",
    "cut", "sure", "watch", "color", "face", "wood", "main", "enough", "plain", "girl",
    "usual", "young", "ready", "above", "ever", "red", "list", "though", "feel", "talk",
    "bird", "soon", "body", "dog", "family", "direct", "pose", "leave", "song", "measure",
    "door", "product", "black", "short", "numeral", "class", "wind", "question", "happen",
    "complete", "ship", "area", "half", "rock", "order", "fire", "south", "problem", "piece",
    "told", "knew", "pass", "since", "top", "whole", "king", "space", "heard", "best", "hour",
    "better", "true", "during", "hundred", "five", "remember", "step", "early", "hold",
    "west", "ground", "interest", "reach", "fast", "verb", "sing", "listen", "six", "table",
    "travel", "less", "morning", "ten", "simple", "several", "vowel", "toward", "war", "lay",
    "against", "pattern", "slow", "center", "love", "person", "money", "serve", "appear",
    "road", "map", "rain", "rule", "govern", "pull", "cold", "notice", "voice", "unit",
    "power", "town", "fine", "certain", "fly", "fall", "lead", "cry", "dark", "machine",
    "note", "wait", "plan", "figure", "star", "box", "noun", "field", "rest", "correct",
    "able", "pound", "done", "beauty", "drive", "stood", "contain", "front", "teach", "week",
    "final", "gave", "green", "oh", "quick", "develop", "ocean", "warm", "free", "minute",
    "strong", "special", "mind", "behind", "clear", "tail", "produce", "fact", "street",
    "inch", "multiply", "nothing", "course", "stay", "wheel", "full", "force", "blue",
    "object", "decide", "surface", "deep", "moon", "island", "foot", "system", "busy",
    "test", "record", "boat", "common", "gold", "possible", "plane", "stead", "dry", "wonder",
    "laugh", "thousand", "ago", "ran", "check", "game", "shape", "equate", "miss", "brought",
    "heat", "snow", "tire", "bring", "yes", "distant", "fill", "east", "paint", "language",
    "among",
};
#define NWORDS (sizeof words / sizeof words[0])

typedef struct {
    char *buf;
    size_t len, cap;
} gen_out;

/* Appends s, as far as the buffer has room; c >= 0: one character instead. */
static void put(gen_out *g, const char *s, int c)
{
    if (c >= 0) {
        if (g->len < g->cap) g->buf[g->len++] = (char)c;
        return;
    }
    for (; *s && g->len < g->cap; s++) g->buf[g->len++] = *s;
}

clt_status clt_text_synthetic(clt_text **out, size_t chars, uint64_t seed)
{
    static const char what[] = "clt_text_synthetic";
    if (!out) return clt__fail(CLT_ERR_INVALID_ARG, "%s: out is NULL", what);
    *out = NULL;
    clt_text_options o = clt_text_options_default();
    if (chars == 0 || chars > o.max_bytes)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: chars is %zu; 1..%zu", what, chars,
                         o.max_bytes);
    gen_out g = {malloc(chars), 0, chars};
    if (!g.buf)
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "%s: cannot allocate %zu bytes", what, chars);
    uint64_t st = seed;
    while (g.len < g.cap) {
        int nw = 3 + (int)clt__splitmix64_below(&st, 10);   /* 3..12 words */
        for (int w = 0; w < nw; w++) {
            const char *word = words[clt__splitmix64_below(&st, NWORDS)];
            if (w > 0) put(&g, NULL, ' ');
            put(&g, NULL, w == 0 ? word[0] - 'a' + 'A' : word[0]);
            put(&g, word + 1, -1);
            if (w + 1 < nw && clt__splitmix64_below(&st, 8) == 0) put(&g, NULL, ',');
        }
        uint64_t end = clt__splitmix64_below(&st, 10);
        put(&g, NULL, end < 7 ? '.' : end < 9 ? '?' : '!');
        uint64_t gap = clt__splitmix64_below(&st, 8);   /* a space, a line or a paragraph */
        if (gap >= 2) put(&g, NULL, ' ');
        else put(&g, gap ? "\n" : "\n\n", -1);
    }
    clt_status s = text_build(out, (const uint8_t *)g.buf, g.len, &o, what);
    free(g.buf);
    return s;
}

/* ---- a vocabulary alone ------------------------------------------------------------------- */

clt_status clt_text_from_vocabulary(clt_text **out, const char *vocab, size_t len, int bytes)
{
    static const char what[] = "clt_text_from_vocabulary";
    if (!out) return clt__fail(CLT_ERR_INVALID_ARG, "%s: out is NULL", what);
    *out = NULL;
    if (!vocab) return clt__fail(CLT_ERR_INVALID_ARG, "%s: vocab is NULL", what);
    if (len == 0) return clt__fail(CLT_ERR_INVALID_ARG, "%s: len is 0: an empty vocabulary", what);
    if (bytes != 0 && bytes != 1)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: bytes is %d; 0 or 1", what, bytes);
    const uint8_t *s = (const uint8_t *)vocab;
    size_t bad = bytes ? len : utf8_invalid_at(s, len);
    if (bad != len)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: the vocabulary is not valid UTF-8 at byte %zu",
                         what, bad);
    clt_text *t = calloc(1, sizeof *t);
    if (t) t->symbols = malloc(len * sizeof *t->symbols);
    if (!t || !t->symbols) {
        clt_text_destroy(t);
        return clt__fail(CLT_ERR_OUT_OF_HOST_MEMORY, "%s: out of host memory", what);
    }
    t->bytes = bytes;
    for (size_t i = 0; i < len;) {
        size_t at = i;
        uint32_t sym = next_symbol(s, len, &i, bytes);
        if (t->vocab_size > 0 && sym <= t->symbols[t->vocab_size - 1]) {
            char a[32], b[32];
            clt_status st = clt__fail(CLT_ERR_INVALID_ARG, "%s: %s at byte %zu does not come "
                                      "after %s: a vocabulary is sorted and has no repeats", what,
                                      describe(a, sym, bytes), at,
                                      describe(b, t->symbols[t->vocab_size - 1], bytes));
            clt_text_destroy(t);
            return st;
        }
        t->symbols[t->vocab_size++] = sym;
    }
    clt_status st = vocab_text(t, what);
    if (st != CLT_OK) {
        clt_text_destroy(t);
        return st;
    }
    *out = t;
    return CLT_OK;
}

/* ---- accessors ---------------------------------------------------------------------------- */

int clt_text_vocab_size(const clt_text *t) { return t ? t->vocab_size : 0; }
int clt_text_byte_tokens(const clt_text *t) { return t ? t->bytes : 0; }

const char *clt_text_vocabulary(const clt_text *t, size_t *len)
{
    if (len) *len = t ? t->vocab_len : 0;
    return t ? t->vocab : NULL;
}

/* The first token of a part and the part's length; false for an unknown part. */
static bool part_range(const clt_text *t, clt_text_part part, size_t *first, size_t *n)
{
    if (part == CLT_TEXT_TRAIN) *first = 0, *n = t->n_train;
    else if (part == CLT_TEXT_VAL) *first = t->n_train, *n = t->n - t->n_train;
    else return false;
    return true;
}

size_t clt_text_tokens(const clt_text *t, clt_text_part part)
{
    size_t first, n;
    return t && part_range(t, part, &first, &n) ? n : 0;
}

const int32_t *clt_text_ids(const clt_text *t, clt_text_part part)
{
    size_t first, n;
    return t && part_range(t, part, &first, &n) && n ? t->ids + first : NULL;
}

/* ---- encoding, decoding, windows ---------------------------------------------------------- */

/* The id of a symbol, or -1: a binary search of the ascending symbols. */
static int32_t find_id(const clt_text *t, uint32_t sym)
{
    int lo = 0, hi = t->vocab_size;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (t->symbols[mid] < sym) lo = mid + 1;
        else hi = mid;
    }
    return lo < t->vocab_size && t->symbols[lo] == sym ? lo : -1;
}

clt_status clt_text_encode(const clt_text *t, const char *s, size_t len, int32_t *ids, size_t cap,
                           size_t *count)
{
    static const char what[] = "clt_text_encode";
    if (!t || !s || !ids || !count)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: %s is NULL", what,
                         !t ? "the text" : !s ? "s" : !ids ? "ids" : "count");
    const uint8_t *u = (const uint8_t *)s;
    size_t bad = t->bytes ? len : utf8_invalid_at(u, len);
    if (bad != len)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: the string is not valid UTF-8 at byte %zu "
                         "(this vocabulary's tokens are code points)", what, bad);
    size_t n = 0;
    for (size_t i = 0; i < len; n++) {
        size_t at = i;
        uint32_t sym = next_symbol(u, len, &i, t->bytes);
        int32_t id = find_id(t, sym);
        if (id < 0) {
            char d[32];
            return clt__fail(CLT_ERR_INVALID_ARG, "%s: %s at byte %zu is not in the vocabulary",
                             what, describe(d, sym, t->bytes), at);
        }
        if (n < cap) ids[n] = id;
    }
    *count = n;
    if (n > cap)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: the string holds %zu tokens but cap is %zu",
                         what, n, cap);
    return CLT_OK;
}

clt_status clt_text_decode(const clt_text *t, const int32_t *ids, size_t n, char *out, size_t cap,
                           size_t *len)
{
    static const char what[] = "clt_text_decode";
    if (!t || (!ids && n) || !out || !len)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: %s is NULL", what,
                         !t ? "the text" : !out ? "out" : !len ? "len" : "ids");
    size_t w = 0;
    uint8_t u[4];
    for (size_t k = 0; k < n; k++) {
        if (ids[k] < 0 || ids[k] >= t->vocab_size)
            return clt__fail(CLT_ERR_INVALID_ARG, "%s: ids[%zu] = %d is outside [0, %d)", what, k,
                             (int)ids[k], t->vocab_size);
        int m = t->bytes ? (u[0] = (uint8_t)t->symbols[ids[k]], 1)
                         : utf8_encode(t->symbols[ids[k]], u);
        if (w + (size_t)m < cap) memcpy(out + w, u, (size_t)m);
        w += (size_t)m;
    }
    *len = w;
    if (w >= cap) {
        if (cap) out[0] = 0;
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: the text takes %zu bytes and a NUL, but cap "
                         "is %zu", what, w, cap);
    }
    out[w] = 0;
    return CLT_OK;
}

clt_status clt_text_batch(const clt_text *t, clt_text_part part, size_t batch, int block,
                          uint64_t seed, int32_t *x, int32_t *y)
{
    static const char what[] = "clt_text_batch";
    if (!t || !x || !y)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: %s is NULL", what,
                         !t ? "the text" : !x ? "x" : "y");
    size_t first, n, cells;
    if (!part_range(t, part, &first, &n))
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: part is %d; CLT_TEXT_TRAIN (0) or "
                         "CLT_TEXT_VAL (1)", what, (int)part);
    if (batch == 0) return clt__fail(CLT_ERR_INVALID_ARG, "%s: batch is 0", what);
    if (block < 1) return clt__fail(CLT_ERR_INVALID_ARG, "%s: block is %d", what, block);
    if (__builtin_mul_overflow(batch, (size_t)block, &cells))
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: batch %zu x block %d overflows size_t", what,
                         batch, block);
    if (n < (size_t)block + 1)
        return clt__fail(CLT_ERR_INVALID_ARG, "%s: the %s part holds %zu tokens, fewer than "
                         "block + 1 = %zu", what, part == CLT_TEXT_TRAIN ? "training"
                         : "validation", n, (size_t)block + 1);
    const int32_t *data = t->ids + first;
    uint64_t state = seed;
    for (size_t b = 0; b < batch; b++) {
        size_t i = (size_t)clt__splitmix64_below(&state, n - (size_t)block);
        memcpy(x + b * (size_t)block, data + i, (size_t)block * sizeof *x);
        memcpy(y + b * (size_t)block, data + i + 1, (size_t)block * sizeof *y);
    }
    return CLT_OK;
}
