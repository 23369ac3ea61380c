/* cltrain export: a checkpoint's parameters as a safetensors file for PyTorch, with no device
 * (the checkpoint describes its own model). */
#include "commands.h"

#include <getopt.h>
#include <stdio.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cltrain export --checkpoint FILE --safetensors OUT [--model NAME]\n"
            "\n"
            "Writes the parameters of a checkpoint (cltrain train --checkpoint) to OUT in the\n"
            "safetensors format, named and shaped as the state_dict of the matching\n"
            "torch.nn.Sequential (\"0.weight\", \"0.bias\", \"2.weight\", ...), float32. The\n"
            "checkpoint holds the model's description, so no device is needed.\n"
            "\n"
            "  --checkpoint FILE   the checkpoint to read\n"
            "  --safetensors OUT   the file to write (replaced atomically)\n"
            "  --model NAME        check that the checkpoint holds this model (seed-mlp, deep-mlp, cnn)\n"
            "  -h, --help          print this help\n");
}

int cmd_export(int argc, char **argv)
{
    static const struct option opts[] = {
        {"checkpoint", required_argument, NULL, 'c'},
        {"safetensors", required_argument, NULL, 's'},
        {"model", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *ckpt = NULL, *out = NULL, *model = NULL;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': ckpt = optarg; break;
        case 's': out = optarg; break;
        case 'm': model = optarg; break;
        case 'h': usage(stdout); return 0;
        case ':':
            fprintf(stderr, "cltrain export: %s needs a value\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        default:
            if (optopt) fprintf(stderr, "cltrain export: unknown option '-%c'\n", optopt);
            else fprintf(stderr, "cltrain export: unknown option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "cltrain export: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!ckpt || !*ckpt || !out || !*out) {
        fprintf(stderr, "cltrain export: --checkpoint FILE and --safetensors OUT are both needed\n");
        usage(stderr);
        return 2;
    }
    clt_model *m = NULL;
    if (model && tool_model_build(model, &m) != CLT_OK) return 2;
    clt_status st = clt_checkpoint_export_safetensors(ckpt, out, m);
    clt_model_destroy(m);
    if (st != CLT_OK) return tool_fail("exporting the checkpoint", st);
    printf("wrote %s: the parameters of %s as safetensors\n", out, ckpt);
    return 0;
}
