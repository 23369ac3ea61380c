/* cltrain: the command-line face of the library (info, selftest, bench). */
#include "commands.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cltrain COMMAND [OPTIONS]\n"
            "\n"
            "commands:\n"
            "  info [--devices SPEC] [--json]   list every OpenCL platform and device, and what SPEC selects\n"
            "  selftest [--devices SPEC]        build and run a kernel on every selected device, check it\n"
            "  train [--model seed-mlp|deep-mlp|cnn] [--epochs N] [--batch N] [--optim sgd|adam|adamw] [--lr X]\n"
            "        [--devices SPEC] [--data DIR] [--limit N] [--json]\n"
            "                                   train on Fashion-MNIST and report the test accuracy\n"
            "  bench dispatch [--devices SPEC] [--iters N] [--json]\n"
            "                                   host cost of handing work to the device threads\n"
            "  bench train [--model seed-mlp|deep-mlp|cnn] [--batch N] [--steps N] [--devices SPEC] [--json]\n"
            "              [--parallel none|data|model|tensor] (cltrain bench lists the rest)\n"
            "                                   samples/s of training steps, and the share in kernels\n"
            "  tune [--devices SPEC] [--budget SECONDS] [--seed N] [--batch N] [--json]\n"
            "                                   search CLBlast's GEMM parameters per device (bounded\n"
            "                                   time) and cache them; later runs apply them\n"
            "  bench gemm [--devices SPEC] [--batch N] [--iters N] [--json]\n"
            "                                   GFLOPS of the seed MLP's GEMMs: CLBlast's own parameters,\n"
            "                                   the cached tuning, and OpenBLAS on one thread\n"
            "  bench allreduce [--devices SPEC] [--min-bytes A] [--max-bytes B] [--iters N]\n"
            "                  [--algo ring|naive|staged|direct|all] [--chunk-bytes C] [--json]\n"
            "                                   clt_allreduce per size (nccl-tests style) next to a\n"
            "                                   host memcpy of the same size, every result checked\n"
            "  version                          print the version\n"
            "\n"
            "SPEC: all | gpu | cpu | accelerator | P:D | P:* | a name word (pocl, rusticl, nvidia,\n"
            "gfx1100; `cltrain info` lists each device's), comma-separated; an entry may repeat to\n"
            "open a device twice. Default: $CLT_DEVICES, else all.\n");
}

int tool_fail(const char *what, clt_status st)
{
    fprintf(stderr, "cltrain: %s: %s\n  %s\n", what, clt_status_str(st), clt_last_error());
    return 1;
}

const char *tool_opening(const char *spec)
{
    return spec ? "opening the devices --devices names" : "opening devices";
}

int tool_parse_weights(const char *text, float *out, int cap)
{
    int n = 0;
    for (int i = 0; i < cap; i++) out[i] = 0.0f;   /* missing weights are refused as 0 */
    while (*text && n < cap) {
        char *end;
        double v = strtod(text, &end);
        if (end == text || !(v > 0) || !isfinite(v) || (*end && *end != ',')) return -1;
        out[n++] = (float)v;
        text = *end ? end + 1 : end;
    }
    return *text ? -1 : n;
}

const char *tool_bytes(uint64_t bytes, char *buf, size_t cap)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) v /= 1024, u++;
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "info")) return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "selftest")) return cmd_selftest(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "tune")) return cmd_tune(argc - 1, argv + 1);
    if (!strcmp(cmd, "export")) return cmd_export(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("cltrain %s\n", clt_version());
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "cltrain: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
