/* Device discovery and the device spec language: on a synthetic mixed-vendor machine (so every
 * rule is checked whatever hardware runs the test), then on the real devices. */
#include "internal.h"
#include "tap.h"

#include <stdlib.h>

/* The fake machine the spec is resolved on: box[0 .. nbox). */
static clt__device box[8];
static size_t nbox;

static void fake_device(int p, int d, clt_device_type t, const char *name, const char *vendor,
                        const char *platform, const char *platform_vendor,
                        const char *platform_version)
{
    clt__device *f = &box[nbox++];
    memset(f, 0, sizeof *f);
    f->info.platform = p;
    f->info.device = d;
    f->info.type = t;
    snprintf(f->info.name, sizeof f->info.name, "%s", name);
    snprintf(f->info.vendor, sizeof f->info.vendor, "%s", vendor);
    snprintf(f->info.platform_name, sizeof f->info.platform_name, "%s", platform);
    snprintf(f->info.platform_vendor, sizeof f->info.platform_vendor, "%s", platform_vendor);
    snprintf(f->info.platform_version, sizeof f->info.platform_version, "%s", platform_version);
}

/* Resolves spec on the fake box and compares with the expected indices (-1 terminated). */
static void expect(const char *spec, const int *want, const char *what)
{
    int *sel = NULL;
    size_t n = 0;
    clt_status st = clt__spec_resolve(spec, box, nbox, &sel, &n);
    size_t nwant = 0;
    while (want[nwant] >= 0) nwant++;
    bool good = st == CLT_OK && n == nwant;
    for (size_t i = 0; good && i < n; i++) good = sel[i] == want[i];
    if (!good) {
        diag("spec '%s': status %s (%s), %zu selected:", spec ? spec : "(null)",
             clt_status_name(st), clt_last_error(), n);
        for (size_t i = 0; i < n; i++) diag("  %d", sel[i]);
    }
    ok(good, "spec '%s' selects %s", spec ? spec : "(null)", what);
    free(sel);
}

static void expect_error(const char *spec, clt_status want, const char *needle, const char *what)
{
    int *sel = (int *)1;
    size_t n = 99;
    ok_error(clt__spec_resolve(spec, box, nbox, &sel, &n), want, needle, "spec '%s' is refused: %s",
             spec ? spec : "(null)", what);
    ok(sel == NULL && n == 0, "spec '%s' leaves no selection behind", spec ? spec : "(null)");
}

/* A box with two GPUs of two vendors and PoCL's CPU device. */
static void synthetic(void)
{
    nbox = 0;
    fake_device(0, 0, CLT_DEVICE_GPU, "NVIDIA H100 PCIe", "NVIDIA Corporation", "NVIDIA CUDA",
                "NVIDIA Corporation", "OpenCL 3.0 CUDA 12.4.131");
    fake_device(0, 1, CLT_DEVICE_GPU, "NVIDIA GeForce RTX 4090", "NVIDIA Corporation",
                "NVIDIA CUDA", "NVIDIA Corporation", "OpenCL 3.0 CUDA 12.4.131");
    fake_device(1, 0, CLT_DEVICE_GPU, "gfx1100", "Advanced Micro Devices, Inc.",
                "AMD Accelerated Parallel Processing", "Advanced Micro Devices, Inc.",
                "OpenCL 2.1 AMD-APP (3590.0)");
    fake_device(2, 0, CLT_DEVICE_CPU, "cpu-haswell-Intel Xeon", "GenuineIntel",
                "Portable Computing Language", "The pocl project", "OpenCL 3.0 PoCL 1.8");

    expect("all", (int[]){0, 1, 2, 3, -1}, "every device in P:D order");
    expect("ALL", (int[]){0, 1, 2, 3, -1}, "every device (keywords ignore case)");
    expect("gpu", (int[]){0, 1, 2, -1}, "the GPUs of both vendors");
    expect("cpu", (int[]){3, -1}, "the CPU device");
    expect("1:0", (int[]){2, -1}, "one device by P:D");
    expect("1:0,0:1", (int[]){2, 1, -1}, "P:D pairs in the order given");
    expect("0:0,0:0", (int[]){0, 0, -1}, "the same device twice (opened twice)");
    expect("0:0,0:0,0:0", (int[]){0, 0, 0, -1}, "the same device three times");
    expect("0:*", (int[]){0, 1, -1}, "every device of platform 0");
    expect("nvidia", (int[]){0, 1, -1}, "a vendor substring, ignoring case");
    expect("4090", (int[]){1, -1}, "a device-name substring");
    expect("Portable", (int[]){3, -1}, "a platform-name substring");
    expect("gfx1100,cpu", (int[]){2, 3, -1}, "a name and a type together");
    expect("  0:1 , 2:0 ", (int[]){1, 3, -1}, "entries with spaces around them");
    expect("gpu,gpu", (int[]){0, 1, 2, 0, 1, 2, -1}, "a repeated type entry, repeats kept");
    expect("pocl", (int[]){3, -1}, "PoCL by its platform vendor");

    unsetenv("CLT_DEVICES");
    expect(NULL, (int[]){0, 1, 2, 3, -1}, "all by default");
    setenv("CLT_DEVICES", "cpu,0:1", 1);
    expect(NULL, (int[]){3, 1, -1}, "$CLT_DEVICES by default");
    unsetenv("CLT_DEVICES");

    expect_error("3:0", CLT_ERR_DEVICE_NOT_FOUND, "devices that exist: 0:0 'NVIDIA H100 PCIe'",
                 "a P:D that does not exist names what exists");
    expect_error("0:7", CLT_ERR_DEVICE_NOT_FOUND, "2:0 'cpu-haswell-Intel Xeon' (CPU",
                 "a device index past the platform's count");
    expect_error("accelerator", CLT_ERR_DEVICE_NOT_FOUND, "selects no device",
                 "a type with no device");
    expect_error("intel arc", CLT_ERR_DEVICE_NOT_FOUND, "'intel arc'",
                 "a name substring that matches nothing");
    expect_error("gpu,radeon vii", CLT_ERR_DEVICE_NOT_FOUND, "'radeon vii'",
                 "one entry of several matching nothing");
    expect_error("0:0,,1:0", CLT_ERR_BAD_SPEC, "empty entry", "an empty entry");
    expect_error(",", CLT_ERR_BAD_SPEC, "empty entry", "only a comma");
    expect_error("0:x", CLT_ERR_BAD_SPEC, "P:D", "a P:D with a non-number");
    expect_error("0:", CLT_ERR_BAD_SPEC, "P:D", "a P:D with no device");
    expect_error("0:1:2", CLT_ERR_BAD_SPEC, "P:D", "a P:D with three parts");
    expect_error("-1:0", CLT_ERR_BAD_SPEC, "name word", "a negative platform");
    expect_error("gpu;cpu", CLT_ERR_BAD_SPEC, "does not parse", "a semicolon separator");
    expect_error("99999999:0", CLT_ERR_BAD_SPEC, "P:D", "an absurd platform number");

    char *huge = malloc(10000);
    memset(huge, 'a', 9999);
    huge[9999] = '\0';
    expect_error(huge, CLT_ERR_BAD_SPEC, "4096 at most", "a spec 10000 characters long");
    expect_error(huge, CLT_ERR_BAD_SPEC, "device spec 'aaaaaaaa", "a long spec, cut in the message");
    ok(strlen(clt_last_error()) < 2000, "the message does not repeat 10000 characters (%zu)",
       strlen(clt_last_error()));
    free(huge);

    int *sel = NULL;
    size_t n = 0;
    ok_error(clt__spec_resolve("all", box, 0, &sel, &n), CLT_ERR_DEVICE_NOT_FOUND,
             "pocl-opencl-icd", "a machine with no device: the error says what to install");
}

/* Whether resolving spec on the box selects device i (among others or not). */
static bool word_selects(const char *spec, int i)
{
    int *sel = NULL;
    size_t n = 0;
    bool found = false;
    if (clt__spec_resolve(spec, box, nbox, &sel, &n) == CLT_OK)
        for (size_t k = 0; k < n; k++) found |= sel[k] == i;
    free(sel);
    return found;
}

/* The words users type for the implementations and vendors they have, on a box where each
 * appears once: PoCL (two basic devices on an Intel CPU), rusticl, Oclgrind, NVIDIA's CUDA
 * platform, Clover on an AMD GPU, Intel's GPU runtime, AMD's ROCm platform. */
static void words(void)
{
    nbox = 0;
    fake_device(0, 0, CLT_DEVICE_GPU, "Oclgrind Simulator", "Oclgrind", "Oclgrind", "Oclgrind",
                "OpenCL 1.2 (Oclgrind 21.10)");
    const char *pocl_version = "OpenCL 3.0 PoCL 3.1+debian  Linux, None+Asserts, RELOC, SPIR, "
                               "LLVM 15.0.6, SLEEF, DISTRO, POCL_DEBUG";
    fake_device(1, 0, CLT_DEVICE_CPU, "basic-skylake-avx512-Intel(R) Xeon(R) Processor",
                "GenuineIntel", "Portable Computing Language", "The pocl project", pocl_version);
    fake_device(1, 1, CLT_DEVICE_CPU, "basic-skylake-avx512-Intel(R) Xeon(R) Processor",
                "GenuineIntel", "Portable Computing Language", "The pocl project", pocl_version);
    fake_device(2, 0, CLT_DEVICE_CPU, "llvmpipe (LLVM 15.0.6, 256 bits)", "Mesa/X.org", "rusticl",
                "Mesa/X.org", "OpenCL 3.0 ");
    fake_device(3, 0, CLT_DEVICE_GPU, "NVIDIA GeForce RTX 4090", "NVIDIA Corporation",
                "NVIDIA CUDA", "NVIDIA Corporation", "OpenCL 3.0 CUDA 12.4.131");
    fake_device(4, 0, CLT_DEVICE_GPU, "AMD Radeon RX 6800 (navi21, LLVM 15.0.6, DRM 3.49)", "AMD",
                "Clover", "Mesa", "OpenCL 1.1 Mesa 22.3.6");
    fake_device(5, 0, CLT_DEVICE_GPU, "Intel(R) UHD Graphics 770", "Intel(R) Corporation",
                "Intel(R) OpenCL Graphics", "Intel(R) Corporation", "OpenCL 3.0 ");
    fake_device(6, 0, CLT_DEVICE_GPU, "gfx1100", "Advanced Micro Devices, Inc.",
                "AMD Accelerated Parallel Processing", "Advanced Micro Devices, Inc.",
                "OpenCL 2.1 AMD-APP (3590.0)");

    expect("pocl", (int[]){1, 2, -1}, "PoCL's devices (platform vendor 'The pocl project')");
    expect("PoCL", (int[]){1, 2, -1}, "PoCL's devices, whatever the case");
    expect("rusticl", (int[]){3, -1}, "rusticl's device (platform name)");
    expect("mesa", (int[]){3, 5, -1}, "both Mesa platforms, rusticl and Clover");
    expect("clover", (int[]){5, -1}, "Clover's device (platform name)");
    expect("oclgrind", (int[]){0, -1}, "the simulator");
    expect("nvidia", (int[]){4, -1}, "the NVIDIA GPU");
    expect("cuda", (int[]){4, -1}, "the NVIDIA GPU by its platform name");
    expect("amd", (int[]){5, 7, -1}, "both AMD GPUs, under Clover and under AMD's platform");
    /* Intel hardware under any implementation: PoCL's devices run on an Intel Xeon. */
    expect("intel", (int[]){1, 2, 6, -1}, "Intel's GPU and the Intel CPU under PoCL");
    expect("intel(r) opencl", (int[]){6, -1}, "Intel's own runtime by its platform name");
    expect("basic", (int[]){1, 2, -1}, "PoCL's basic devices by their name");
    expect("llvmpipe", (int[]){3, -1}, "rusticl's llvmpipe by its name");
    expect("AMD-APP", (int[]){7, -1}, "a platform-version word");
    expect("PoCL 3.1", (int[]){1, 2, -1}, "platform-version words with a space");
    expect("pocl,rusticl,pocl", (int[]){1, 2, 3, 1, 2, -1}, "words repeat as other entries do");
    expect_error("590", CLT_ERR_DEVICE_NOT_FOUND, "'590'",
                 "part of a version word ('3590.0') selects nothing");
    expect_error("debia", CLT_ERR_DEVICE_NOT_FOUND, "'debia'",
                 "part of a version word ('3.1+debian') selects nothing");

    /* Every device's words, each on its own, select it; the list is what was promised. */
    const char *want[8] = {"oclgrind, gpu",          "pocl, intel, cpu, basic",
                           "pocl, intel, cpu, basic", "rusticl, mesa, cpu, llvmpipe",
                           "nvidia, gpu",             "clover, mesa, amd, gpu",
                           "intel, gpu",              "amd, gpu, gfx1100"};
    for (size_t i = 0; i < nbox; i++) {
        char w[128];
        clt__device_words(&box[i].info, w, sizeof w);
        ok(!strcmp(w, want[i]), "%d:%d '%s': words '%s' (want '%s')", box[i].info.platform,
           box[i].info.device, box[i].info.name, w, want[i]);
        bool all = true;
        for (char *tok = strtok(w, ", "); tok; tok = strtok(NULL, ", "))
            if (!word_selects(tok, (int)i)) diag("'%s' does not select device %zu", tok, i), all = false;
        ok(all, "%d:%d: each of its words selects it", box[i].info.platform, box[i].info.device);
    }
    char w[16];
    clt__device_words(&box[1].info, w, sizeof w);
    ok(!strcmp(w, "pocl, intel"), "a short buffer keeps the words that fit whole: '%s'", w);
}

/* Every spec error says where the spec came from and lists the devices with their words. */
static void errors(void)
{
    const char *pocl = "1:0 'basic-skylake-avx512-Intel(R) Xeon(R) Processor' (CPU, Portable "
                       "Computing Language; select with pocl, intel, cpu, basic)";
    const char *specs[] = {"nvidia,tpu", "gpu;cpu", "pocl,,rusticl", "9:9", " "};
    const clt_status want[] = {CLT_ERR_DEVICE_NOT_FOUND, CLT_ERR_BAD_SPEC, CLT_ERR_BAD_SPEC,
                               CLT_ERR_DEVICE_NOT_FOUND, CLT_ERR_BAD_SPEC};
    for (size_t k = 0; k < sizeof specs / sizeof *specs; k++) {
        int *sel = NULL;
        size_t n = 0;
        unsetenv("CLT_DEVICES");
        ok_error(clt__spec_resolve(specs[k], box, nbox, &sel, &n), want[k], "given as an argument",
                 "'%s' as an argument: the message says so", specs[k]);
        ok(strstr(clt_last_error(), pocl) && strstr(clt_last_error(), "0:0 'Oclgrind Simulator'") &&
           strstr(clt_last_error(), "6:0 'gfx1100'"),
           "'%s': the message lists every device, P:D, name and words", specs[k]);
        setenv("CLT_DEVICES", specs[k], 1);
        ok_error(clt__spec_resolve(NULL, box, nbox, &sel, &n), want[k],
                 "from the CLT_DEVICES environment variable",
                 "'%s' in CLT_DEVICES: the message names the variable", specs[k]);
        ok(strstr(clt_last_error(), pocl) != NULL, "'%s' in CLT_DEVICES: the devices are listed",
           specs[k]);
        unsetenv("CLT_DEVICES");
    }

    /* An empty spec is an error, not "all": an empty variable is more often a mistake. */
    expect_error("", CLT_ERR_BAD_SPEC, "device spec '' (given as an argument) is empty",
                 "an empty string");
    expect_error("  \t", CLT_ERR_BAD_SPEC, "is empty", "only white space");
    setenv("CLT_DEVICES", "", 1);
    expect_error(NULL, CLT_ERR_BAD_SPEC, "(from the CLT_DEVICES environment variable) is empty",
                 "an empty CLT_DEVICES");
    ok(strstr(clt_last_error(), "unset CLT_DEVICES") != NULL,
       "the message says to unset the variable for the default");
    unsetenv("CLT_DEVICES");
    expect(NULL, (int[]){0, 1, 2, 3, 4, 5, 6, 7, -1}, "all when CLT_DEVICES is unset");
}

static void real(void)
{
    size_t n = 0;
    ok_status(clt_devices_list(NULL, 0, &n), "clt_devices_list counts the devices");
    diag("%zu device(s) on this machine", n);
    ok(n >= 1, "at least one device exists");
    clt_device_info *infos = calloc(n, sizeof *infos);
    size_t n2 = 0;
    ok_status(clt_devices_list(infos, n, &n2), "clt_devices_list fills the array");
    ok(n2 == n, "the count is stable between calls");
    bool sane = true;
    for (size_t i = 0; i < n; i++) {
        clt_device_info *d = &infos[i];
        diag("%d:%d %s | %s | %s | %s | %llu MiB | %u CUs | OpenCL %d.%d", d->platform, d->device,
             d->name, d->vendor, d->platform_name, d->version,
             (unsigned long long)(d->global_mem_bytes >> 20), d->compute_units, d->opencl_major,
             d->opencl_minor);
        sane &= d->name[0] && d->platform_name[0] && d->global_mem_bytes > 0 &&
                d->compute_units > 0 && d->max_work_group_size > 0 && d->opencl_major >= 1 &&
                d->max_alloc_bytes > 0 && d->max_alloc_bytes <= d->global_mem_bytes;
        if (i > 0)
            sane &= d->platform > infos[i - 1].platform ||
                    (d->platform == infos[i - 1].platform && d->device == infos[i - 1].device + 1);
    }
    ok(sane, "every device reports a name, memory, compute units and version, in P:D order");

    /* A partial array: count still says the total. */
    if (n > 1) {
        clt_device_info one;
        ok_status(clt_devices_list(&one, 1, &n2), "clt_devices_list with a short array");
        ok(n2 == n && !strcmp(one.name, infos[0].name), "a short array gets the first entries");
    }

    /* The words `cltrain info` prints select each real device too. */
    bool words_select = true;
    for (size_t i = 0; i < n; i++) {
        char w[sizeof infos[i].words];
        snprintf(w, sizeof w, "%s", infos[i].words);
        words_select &= w[0] && infos[i].platform_vendor[0] && infos[i].platform_version[0];
        for (char *tok = strtok(w, ", "); tok; tok = strtok(NULL, ", ")) {
            int got[64];
            size_t ng = 0;
            bool found = false;
            if (clt_devices_select(tok, got, 64, &ng) == CLT_OK)
                for (size_t k = 0; k < ng && k < 64; k++) found |= got[k] == (int)i;
            if (!found) diag("%zu: word '%s' does not select it", i, tok), words_select = false;
        }
    }
    ok(words_select, "every device has words and a platform vendor and version; its words select it");

    int idx[8];
    size_t nsel = 0;
    ok_error(clt_devices_select("", idx, 8, &nsel), CLT_ERR_BAD_SPEC, "is empty",
             "clt_devices_select refuses an empty spec");
    ok_status(clt_devices_select("0:0,0:0", idx, 8, &nsel), "selecting one device twice");
    ok(nsel == 2 && idx[0] == 0 && idx[1] == 0, "a repeated entry selects the device twice");
    ok_error(clt_devices_select("0:99", idx, 8, &nsel), CLT_ERR_DEVICE_NOT_FOUND, infos[0].name,
             "a missing device's error lists the real devices");
    ok_error(clt_devices_select("all", NULL, 8, &nsel), CLT_ERR_INVALID_ARG, "NULL",
             "NULL indices with a capacity");
    ok_error(clt_devices_select("all", idx, 8, NULL), CLT_ERR_INVALID_ARG, "count is NULL",
             "NULL count");
    ok_error(clt_devices_list(NULL, 3, &n2), CLT_ERR_INVALID_ARG, "NULL", "NULL infos with a capacity");
    free(infos);
}

int main(void)
{
    synthetic();
    words();
    errors();
    tap_require_device();
    real();
    return tap_done();
}
