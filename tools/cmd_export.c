/* cltrain export: a checkpoint's parameters as a safetensors file for PyTorch, with no device
 * (the checkpoint describes its own model). */
#include "commands.h"
#include "options.h"

#include <stdio.h>

int cmd_export(int argc, char **argv)
{
    const char *ckpt = NULL, *out = NULL;
    int model = -1;
    tool_opt opts[] = {
        TOOL_STRING("checkpoint", "FILE", &ckpt, "the checkpoint to read (cltrain train --checkpoint; required)"),
        TOOL_STRING("safetensors", "OUT", &out, "the file to write, replaced atomically (required)"),
        TOOL_CHOICE("model", tool_model_names, &model, "check that the checkpoint holds this model"),
        TOOL_END};
    const tool_cmd cmd = {"export", "--checkpoint FILE --safetensors OUT [--model NAME]",
                          "Writes the parameters of a checkpoint to OUT in the safetensors format, named\n"
                          "and shaped as the state_dict of the matching torch.nn.Sequential (\"0.weight\",\n"
                          "\"0.bias\", \"2.weight\", ...), float32. The checkpoint holds the model's\n"
                          "description, so no device is needed.",
                          NULL, opts};
    int rc = tool_parse(&cmd, argc, argv);
    if (rc >= 0) return rc;
    if (!ckpt || !*ckpt || !out || !*out)
        return tool_usage_error(&cmd, "--checkpoint FILE and --safetensors OUT are both needed");
    clt_model *m = NULL;
    clt_status st = model >= 0 ? tool_model_build(tool_model_names[model], 0, &m) : CLT_OK;
    if (st != CLT_OK) return tool_fail("building the model", st);
    st = clt_checkpoint_export_safetensors(ckpt, out, m);
    clt_model_destroy(m);
    if (st != CLT_OK) return tool_fail("exporting the checkpoint", st);
    printf("wrote %s: the parameters of %s as safetensors\n", out, ckpt);
    return 0;
}
