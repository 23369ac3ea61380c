/* The checkpoint loader's parser under a fuzzer: `make fuzz` builds this with clang's libFuzzer
 * and AddressSanitizer and runs it from the seed corpus in tests/corpus/checkpoint/. Built with
 * CLT_FUZZ_REPLAY it is an ordinary test instead (tests/test_checkpoint_corpus): it replays the
 * corpus, every truncation and a sweep of byte changes of each file, without a fuzzer. Files
 * named bad_* or *truncated* must be refused (bad_* are inputs the fuzzer once crashed on). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    clt__checkpoint c;
    if (clt__checkpoint_parse(data, size, "fuzz input", &c) != CLT_OK) return 0;
    /* a parse that succeeds promises nparams floats in each array: read them all */
    size_t n = c.model->nparams;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < n * 4; i++) {
        sink ^= c.params[i];
        for (int k = 0; k < c.nstate; k++) sink ^= c.state[k][i];
    }
    (void)sink;
    clt__checkpoint_free(&c);
    return 0;
}

#ifdef CLT_FUZZ_REPLAY
#include "tap.h"

#include <dirent.h>

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

int main(int argc, char **argv)
{
    const char *src = getenv("CLT_TEST_SRCDIR");
    char folder[1024];
    snprintf(folder, sizeof folder, "%s/tests/corpus/checkpoint", argc > 1 ? argv[1] : src ? src : ".");
    DIR *d = opendir(folder);
    if (!ok(d != NULL, "the corpus folder %s opens", folder)) return tap_done();
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strstr(e->d_name, ".ckpt")) continue;
        char path[1300];
        snprintf(path, sizeof path, "%s/%s", folder, e->d_name);
        size_t len = 0;
        uint8_t *b = slurp(path, &len);
        if (!ok(b != NULL, "%s reads", e->d_name)) continue;
        files++;
        clt__checkpoint c;
        bool valid = !strstr(e->d_name, "truncated") && strncmp(e->d_name, "bad_", 4);
        clt_status st = clt__checkpoint_parse(b, len, e->d_name, &c);
        if (st == CLT_OK) clt__checkpoint_free(&c);
        ok(valid ? st == CLT_OK : st == CLT_ERR_FORMAT, "%s (%zu bytes) %s: %s", e->d_name, len,
           valid ? "parses" : "is refused", st == CLT_OK ? "ok" : clt_last_error());
        /* every prefix, and every byte set to three other values: refused, never a crash */
        bool refused = true;
        for (size_t cut = 0; cut < len; cut++) {
            uint8_t *p = malloc(cut + 1);   /* exactly cut bytes: a sanitizer sees any overread */
            memcpy(p, b, cut);
            refused &= LLVMFuzzerTestOneInput(p, cut) == 0 &&
                       clt__checkpoint_parse(p, cut, "prefix", &c) != CLT_OK;
            free(p);
        }
        for (size_t i = 0; i < len && valid; i++) {
            uint8_t keep = b[i];
            static const uint8_t other[3] = {0x00, 0xFF, 0x80};
            for (int k = 0; k < 3; k++) {
                if (other[k] == keep) continue;
                b[i] = other[k];
                st = clt__checkpoint_parse(b, len, "changed", &c);
                if (st == CLT_OK) clt__checkpoint_free(&c);
                refused &= st == CLT_ERR_FORMAT;
            }
            b[i] = keep;
        }
        ok(refused, "%s: every truncation%s is refused without a crash", e->d_name,
           valid ? " and every changed byte" : "");
        free(b);
    }
    closedir(d);
    ok(files >= 3, "%d corpus files replayed", files);
    return tap_done();
}
#endif
