/* Device discovery and the device spec language: on a synthetic mixed-vendor machine (so every
 * rule is checked whatever hardware runs the test), then on the real devices. */
#include "internal.h"
#include "tap.h"

#include <stdlib.h>

/* A box with two GPUs of two vendors and PoCL's CPU device. */
static clt__device fake[4];

static void fake_device(int i, int p, int d, clt_device_type t, const char *name,
                        const char *vendor, const char *platform)
{
    memset(&fake[i], 0, sizeof fake[i]);
    fake[i].info.platform = p;
    fake[i].info.device = d;
    fake[i].info.type = t;
    snprintf(fake[i].info.name, sizeof fake[i].info.name, "%s", name);
    snprintf(fake[i].info.vendor, sizeof fake[i].info.vendor, "%s", vendor);
    snprintf(fake[i].info.platform_name, sizeof fake[i].info.platform_name, "%s", platform);
}

/* Resolves spec on the fake box and compares with the expected indices (-1 terminated). */
static void expect(const char *spec, const int *want, const char *what)
{
    int *sel = NULL;
    size_t n = 0;
    clt_status st = clt__spec_resolve(spec, fake, 4, &sel, &n);
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
    ok_error(clt__spec_resolve(spec, fake, 4, &sel, &n), want, needle, "spec '%s' is refused: %s",
             spec, what);
    ok(sel == NULL && n == 0, "spec '%s' leaves no selection behind", spec);
}

static void synthetic(void)
{
    fake_device(0, 0, 0, CLT_DEVICE_GPU, "NVIDIA H100 PCIe", "NVIDIA Corporation", "NVIDIA CUDA");
    fake_device(1, 0, 1, CLT_DEVICE_GPU, "NVIDIA GeForce RTX 4090", "NVIDIA Corporation", "NVIDIA CUDA");
    fake_device(2, 1, 0, CLT_DEVICE_GPU, "gfx1100", "Advanced Micro Devices, Inc.", "AMD Accelerated Parallel Processing");
    fake_device(3, 2, 0, CLT_DEVICE_CPU, "cpu-haswell-Intel Xeon", "GenuineIntel", "Portable Computing Language");

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

    unsetenv("CLT_DEVICES");
    expect(NULL, (int[]){0, 1, 2, 3, -1}, "all by default");
    expect("", (int[]){0, 1, 2, 3, -1}, "all for an empty string");
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
    expect_error("-1:0", CLT_ERR_BAD_SPEC, "name substring", "a negative platform");
    expect_error("gpu;cpu", CLT_ERR_BAD_SPEC, "does not parse", "a semicolon separator");
    expect_error("99999999:0", CLT_ERR_BAD_SPEC, "P:D", "an absurd platform number");

    char *huge = malloc(10000);
    memset(huge, 'a', 9999);
    huge[9999] = '\0';
    expect_error(huge, CLT_ERR_BAD_SPEC, "4096 at most", "a spec 10000 characters long");
    free(huge);

    int *sel = NULL;
    size_t n = 0;
    ok_error(clt__spec_resolve("all", fake, 0, &sel, &n), CLT_ERR_DEVICE_NOT_FOUND,
             "pocl-opencl-icd", "a machine with no device: the error says what to install");
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

    int idx[8];
    size_t nsel = 0;
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
    tap_require_device();
    real();
    return tap_done();
}
