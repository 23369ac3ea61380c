/* cltrain: train neural networks on several OpenCL devices of any vendor in one process.
 *
 * Overview
 * --------
 * A runtime opens a set of OpenCL devices, from any number of platforms (NVIDIA, AMD, Intel,
 * PoCL on the CPU), chosen by a device spec string. Each device gets one host worker thread
 * that owns its context, command queue and kernels; everything that touches a device runs on
 * its worker, so the library's calls are safe to make from any thread.
 *
 * Example: open three devices and run your own code on each one's worker thread.
 *
 *     #include <cltrain.h>
 *
 *     static clt_status fill(const clt_device_ctx *d, void *user) {
 *         float v = (float)d->index;           // runs on device d's worker thread
 *         return clEnqueueFillBuffer(d->queue, ((cl_mem *)user)[d->index], &v, sizeof v,
 *                                    0, 1024 * sizeof v, 0, NULL, NULL) == CL_SUCCESS
 *                    ? CLT_OK : CLT_ERR_OPENCL;
 *     }
 *
 *     clt_runtime *rt;
 *     if (clt_runtime_create(&rt, "cpu,cpu,cpu") != CLT_OK) {
 *         fprintf(stderr, "cltrain: %s\n", clt_last_error());
 *         return 1;
 *     }
 *     printf("%d devices\n", clt_runtime_device_count(rt));
 *     clt_runtime_exec_all(rt, fill, bufs);     // in parallel, one call per device
 *     clt_runtime_destroy(rt);
 *
 * Conventions
 * -----------
 * - Every call that can fail returns clt_status; CLT_OK is 0. The values shared with OpenCL use
 *   OpenCL's numbers, so a driver error and a library error speak one language. Getters that
 *   cannot fail return their value, and say what they return for a NULL object (0, NULL).
 * - clt_last_error() returns a thread-local message for the last failure on the calling thread:
 *   what failed, on which device, the OpenCL error by name, and where. Read it, never free it.
 * - A call that creates an object returns it through its first parameter, `**out` (two of
 *   them for clt_dataset_load_fashion_mnist's train and test); the object is the caller's and is
 *   freed with the matching `_destroy`, which accepts NULL. On failure *out is NULL.
 * - Other results (a loss, a slice, statistics) come through pointer parameters after the
 *   inputs, a single value last. An array the caller provides for results is followed by its
 *   length (clt_trainer_get_param's count, clt_trainer_split's n) or by its capacity and the
 *   count written back (clt_devices_list). Three calls differ: clt_runtime_device_stats takes
 *   its reset flag after out, and clt_devices_list and clt_dataset_shuffle, which act on no
 *   object, take their output array first.
 * - Callbacks (clt_log_fn, clt_device_fn, clt_progress_fn) take what the library passes first
 *   and the caller's `void *user` last; the call that registers or runs a callback takes the
 *   function and then that user pointer, as its last two parameters (clt_log_set_callback
 *   takes its level filter between them).
 * - Option structs (clt_runtime_options, clt_train_params, clt_dataset_options,
 *   clt_text_options, clt_tune_options, clt_collective_options) open with
 *   `size_t struct_size`, which their _default() function sets to the struct's size in the
 *   header the program was compiled with.
 *   Start every one from _default() and then set the fields you need: the library reads only
 *   the fields that fit in struct_size, so later versions can add fields without breaking a
 *   compiled program, and a struct_size of 0 (a struct made some other way) or one the library
 *   does not know is CLT_ERR_INVALID_ARG naming the struct. A NULL options pointer means the
 *   defaults wherever one is taken.
 * - The library never exits, aborts or prints on its own. Logging goes to a callback set with
 *   clt_log_set_callback(), or to stderr when the environment sets CLT_LOG=error|warn|info|debug.
 */
#ifndef CLTRAIN_H
#define CLTRAIN_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CLT_BUILDING_LIBRARY) && defined(CLT_HAVE_VISIBILITY)
#define CLT_API __attribute__((visibility("default")))
#else
#define CLT_API
#endif

/* ---------------------------------------------------------------------------------------------
 * Status codes. X(name, value, description): values shared with OpenCL reuse its numbers;
 * the library's own start at -2000.
 */
#define CLT_STATUS_LIST(X)                                                                       \
    X(CLT_OK, 0, "success")                                                                      \
    X(CLT_ERR_DEVICE_NOT_FOUND, -1, "no device matches")                                         \
    X(CLT_ERR_DEVICE_NOT_AVAILABLE, -2, "device not available")                                  \
    X(CLT_ERR_OUT_OF_DEVICE_MEMORY, -4, "out of device memory")                                  \
    X(CLT_ERR_OUT_OF_RESOURCES, -5, "out of device resources")                                   \
    X(CLT_ERR_OUT_OF_HOST_MEMORY, -6, "out of host memory")                                      \
    X(CLT_ERR_BUILD_PROGRAM, -11, "kernel build failed")                                         \
    X(CLT_ERR_INVALID_ARG, -30, "invalid argument")                                              \
    X(CLT_ERR_INVALID_CONTEXT, -34, "buffer or object from a foreign context")                   \
    X(CLT_ERR_INVALID_BUFFER, -38, "invalid buffer")                                             \
    X(CLT_ERR_INVALID_BUFFER_SIZE, -61, "invalid buffer size")                                   \
    X(CLT_ERR_OPENCL, -2000, "OpenCL call failed")                                               \
    X(CLT_ERR_BAD_SPEC, -2001, "device spec does not parse")                                     \
    X(CLT_ERR_BLAS, -2002, "CLBlast call failed")                                                \
    X(CLT_ERR_THREAD, -2003, "thread creation or synchronisation failed")                        \
    X(CLT_ERR_IO, -2004, "file input/output failed")                                             \
    X(CLT_ERR_FORMAT, -2005, "malformed file or data")                                           \
    X(CLT_ERR_SHAPE, -2006, "shape mismatch")                                                    \
    X(CLT_ERR_NUMERIC, -2007, "NaN or Inf detected")                                             \
    X(CLT_ERR_TIMEOUT, -2008, "operation timed out")                                             \
    X(CLT_ERR_ABORTED, -2009, "aborted because another device failed")                           \
    X(CLT_ERR_UNSUPPORTED, -2010, "not supported")                                               \
    X(CLT_ERR_STATE, -2011, "call not valid in the current state")                               \
    X(CLT_ERR_MPI, -2012, "MPI call failed")

typedef enum {
#define CLT__STATUS_ENUM(name, value, text) name = value,
    CLT_STATUS_LIST(CLT__STATUS_ENUM)
#undef CLT__STATUS_ENUM
} clt_status;

/* A short constant description of a status ("out of device memory"); never NULL. */
CLT_API const char *clt_status_str(clt_status s);
/* The enum name of a status ("CLT_ERR_OUT_OF_DEVICE_MEMORY"); never NULL. */
CLT_API const char *clt_status_name(clt_status s);
/* The calling thread's message for its last failed call; "" when none. Owned by the library. */
CLT_API const char *clt_last_error(void);
/* The name of an OpenCL error code ("CL_INVALID_VALUE"); never NULL. */
CLT_API const char *clt_cl_error_name(cl_int err);
/* The package version, "MAJOR.MINOR.PATCH". */
CLT_API const char *clt_version(void);

/* ---------------------------------------------------------------------------------------------
 * Logging. Off by default. CLT_LOG=error|warn|info|debug in the environment sends messages at
 * that level and above to stderr; a callback, when set, receives them instead.
 */
typedef enum { CLT_LOG_ERROR = 0, CLT_LOG_WARN = 1, CLT_LOG_INFO = 2, CLT_LOG_DEBUG = 3 } clt_log_level;
typedef void (*clt_log_fn)(clt_log_level level, const char *message, void *user);
/* Process-wide: set fn = NULL to go back to the CLT_LOG behaviour. max_level filters. */
CLT_API void clt_log_set_callback(clt_log_fn fn, clt_log_level max_level, void *user);

/* Fault injection for tests: CLT_FAULT=device=D[,step=N][,op=forward|backward|allreduce|copy|
 * optimizer|any][,at=K][,code=lost|resources] makes runtime device D fail (as a lost device does:
 * CL_DEVICE_NOT_AVAILABLE, or CL_OUT_OF_RESOURCES) at that point of update N. Read by
 * clt_runtime_create (and again by clt_trainer_create for a runtime without opts.fault); a
 * malformed value is CLT_ERR_INVALID_ARG there. The grammar in full is at the top of
 * lib/fault.c; docs/FAULTS.md says what happens. */

/* ---------------------------------------------------------------------------------------------
 * Shapes of one sample, without the batch dimension: {1024} for a vector, {C, H, W} for an image
 * (row-major, W fastest, as PyTorch's NCHW without N).
 */
#define CLT_MAX_RANK 4
typedef struct {
    int rank;                     /* 1..CLT_MAX_RANK */
    int dims[CLT_MAX_RANK];
} clt_shape;

static inline clt_shape clt_shape1(int n) { clt_shape s = {1, {n, 0, 0, 0}}; return s; }
static inline clt_shape clt_shape2(int t, int f) { clt_shape s = {2, {t, f, 0, 0}}; return s; }
static inline clt_shape clt_shape3(int c, int h, int w) { clt_shape s = {3, {c, h, w, 0}}; return s; }
/* Number of elements of one sample; 0 for an invalid shape. */
static inline size_t clt_shape_numel(clt_shape s)
{
    if (s.rank < 1 || s.rank > CLT_MAX_RANK) return 0;
    size_t n = 1;
    for (int i = 0; i < s.rank; i++) {
        if (s.dims[i] <= 0) return 0;
        n *= (size_t)s.dims[i];
    }
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Data sets: samples of one shape (floats) with integer class labels, held in host memory.
 * From arrays, from IDX files (the format of MNIST and Fashion-MNIST, gzipped or not), or
 * generated. A data set is immutable once made; clt_dataset_shuffle and clt_dataset_batch
 * give the order and the mini-batches of an epoch.
 *
 *     clt_dataset *train, *test;
 *     clt_dataset_options o = clt_dataset_options_default();
 *     o.pad_to = 32;                                   // 28x28 -> 32x32: 1024 inputs
 *     if (clt_dataset_load_fashion_mnist(&train, &test, NULL, &o) == CLT_ERR_IO)
 *         clt_dataset_synthetic(&train, 60000, clt_shape3(1, 32, 32), 10, 1);  // none found
 *     uint32_t *order = malloc(clt_dataset_size(train) * sizeof *order);
 *     clt_dataset_shuffle(order, clt_dataset_size(train), epoch_seed);
 *     for (size_t i = 0; i + 256 <= clt_dataset_size(train); i += 256)
 *         clt_dataset_batch(train, order, i, 256, x, labels);   // x (256, 1024), labels (256)
 */
typedef struct clt_dataset clt_dataset;

/* Fashion-MNIST's training-set pixel mean and standard deviation, after scaling to [0, 1]. */
#define CLT_FASHION_MNIST_MEAN 0.2860f
#define CLT_FASHION_MNIST_STD 0.3530f

typedef struct {
    size_t struct_size;           /* set by clt_dataset_options_default(): start there */
    /* 0: images keep their size. N > 0: each rows x cols image is centred in an N x N image
     * of black pixels (28x28 -> 32x32 adds 2 on each side; an odd margin puts the extra row
     * or column at the bottom or right). N smaller than rows or cols is CLT_ERR_SHAPE. */
    int pad_to;
    /* 0: pixel / 255, in [0, 1]. 1: then (v - CLT_FASHION_MNIST_MEAN) / CLT_FASHION_MNIST_STD,
     * fixed constants rather than statistics of the file, so that a training and a test set
     * get the same transform. Padding is black before this step, so it gets the value a black
     * pixel gets (-0.8102 with 1), as torchvision's Pad then Normalize would give. */
    int normalize;
    /* 0: every sample; else the first `limit` (all of them when the file holds fewer). A
     * gzipped file is then decompressed only as far as needed. */
    size_t limit;
    /* The number of classes, 1..256; a label >= classes is CLT_ERR_FORMAT naming the sample.
     * Given rather than inferred from the largest label, so a corrupt label file is caught
     * instead of silently becoming a 200-class problem. */
    int classes;
} clt_dataset_options;

/* pad_to 0, normalize 0, limit 0, classes 10 (MNIST, Fashion-MNIST). */
CLT_API clt_dataset_options clt_dataset_options_default(void);

/* Copies n samples of clt_shape_numel(shape) floats each, x (n, numel), and their labels (n)
 * in [0, classes). A label out of range is CLT_ERR_INVALID_ARG naming its index, a NaN or
 * infinite input CLT_ERR_NUMERIC naming the sample. n is at most UINT32_MAX. */
CLT_API clt_status clt_dataset_from_arrays(clt_dataset **out, const float *x,
                                           const int32_t *labels, size_t n, clt_shape shape,
                                           int classes);

/* Reads IDX images (unsigned bytes, 3 dimensions: n x rows x cols) and IDX labels (unsigned
 * bytes, 1 dimension: n); each file may be gzipped, told by its first bytes (1f 8b), not its
 * name. The samples get shape {1, rows, cols}, or {1, pad_to, pad_to}. o NULL: the defaults.
 * Errors: CLT_ERR_IO for a file that is missing or unreadable (with the path and the system's
 * reason); CLT_ERR_FORMAT with the path for one that is not IDX, of another data type or
 * rank, truncated (what the header promises against what the file holds), longer than its
 * header says, or a label out of range; also when the two files' counts differ. */
CLT_API clt_status clt_dataset_load_idx(clt_dataset **out, const char *images_path,
                                        const char *labels_path, const clt_dataset_options *o);

/* Fashion-MNIST (or MNIST) from dir, NULL meaning /usr/share/datasets/fashion-mnist (Debian's
 * dataset-fashion-mnist): train-{images-idx3,labels-idx1}-ubyte and t10k-... with or without
 * .gz (the plain file wins when both exist). Either of train or test may be NULL to skip it.
 * Files that are absent give CLT_ERR_IO, so a caller can fall back to clt_dataset_synthetic;
 * files that are present but bad give CLT_ERR_FORMAT. On failure both outputs are NULL. */
CLT_API clt_status clt_dataset_load_fashion_mnist(clt_dataset **train, clt_dataset **test,
                                                  const char *dir,
                                                  const clt_dataset_options *o);

/* A learnable synthetic set: one random prototype in [0, 1) per class, and each sample its
 * class's prototype plus noise of standard deviation 0.5, drawn from the seed. Labels are
 * balanced (each class n/classes times, give or take one) in a seeded random order. The same
 * seed gives the same bits on every platform (integer arithmetic and IEEE float only). */
CLT_API clt_status clt_dataset_synthetic(clt_dataset **out, size_t n, clt_shape shape,
                                         int classes, uint64_t seed);

/* NULL is fine. */
CLT_API void clt_dataset_destroy(clt_dataset *d);
/* Number of samples; 0 for NULL. */
CLT_API size_t clt_dataset_size(const clt_dataset *d);
/* The shape of one sample; rank 0 for NULL. */
CLT_API clt_shape clt_dataset_shape(const clt_dataset *d);
/* Number of classes; 0 for NULL. */
CLT_API int clt_dataset_classes(const clt_dataset *d);
/* The samples, (n, numel(shape)), owned by the data set; NULL for NULL. */
CLT_API const float *clt_dataset_inputs(const clt_dataset *d);
/* The labels, (n), in [0, classes); NULL for NULL. */
CLT_API const int32_t *clt_dataset_labels(const clt_dataset *d);

/* Writes a random permutation of 0..n-1 into order (n): Fisher-Yates driven by xoshiro256**
 * seeded through splitmix64, bounded draws by rejection, so a seed gives the same order on
 * every platform. n is 1..UINT32_MAX. */
CLT_API clt_status clt_dataset_shuffle(uint32_t *order, size_t n, uint64_t seed);

/* Copies samples order[start .. start+count) (order NULL: start .. start+count) into x
 * (count, numel) and their labels into labels (count; NULL to skip them). start + count must
 * not pass clt_dataset_size(d), and every order entry used must be below it. */
CLT_API clt_status clt_dataset_batch(const clt_dataset *d, const uint32_t *order, size_t start,
                                     size_t count, float *x, int32_t *labels);

/* ---------------------------------------------------------------------------------------------
 * Text: a corpus of tokens for character-level language models, held in host memory. A file,
 * a buffer, Debian's fortunes or generated English-like text becomes a vocabulary (the sorted
 * set of the distinct characters, as nanoGPT's shakespeare_char does it) and the corpus as
 * int32 token ids, split into a training part (the first 90%) and a validation part (the
 * rest). A text is immutable once made; clt_text_batch hands out random windows from a seed.
 * Tokens are Unicode code points when the whole input is valid UTF-8, bytes otherwise.
 *
 *     clt_text *t;
 *     if (clt_text_load_fortunes(&t, NULL, NULL) == CLT_ERR_IO)   // no fortunes installed
 *         clt_text_synthetic(&t, 1 << 20, 1);
 *     int vocab = clt_text_vocab_size(t);                         // the embedding's rows
 *     clt_text_batch(t, CLT_TEXT_TRAIN, 12, 64, step_seed, x, y); // x, y (12, 64)
 *     size_t len;
 *     const char *v = clt_text_vocabulary(t, &len);   // store it; clt_text_from_vocabulary
 *                                                     // gives the encoder back for generation
 */
typedef struct clt_text clt_text;

/* The two parts of a text: the first (1 - val_fraction) of its tokens, and the rest. */
typedef enum { CLT_TEXT_TRAIN = 0, CLT_TEXT_VAL = 1 } clt_text_part;

typedef struct {
    size_t struct_size;  /* set by clt_text_options_default(): start there */
    /* 0: tokens are code points when the whole input is valid UTF-8 (strict: no overlong
     * forms, no surrogates, nothing past U+10FFFF), bytes otherwise. 1: always bytes. */
    int bytes;
    /* The share of the tokens, at the end, that form the validation part: the training part
     * is the first (size_t)(n * (1 - val_fraction)) tokens, as nanoGPT's int(n * 0.9).
     * 0 <= val_fraction < 1. */
    double val_fraction;
    /* Inputs larger than this many bytes are refused (CLT_ERR_INVALID_ARG): the corpus takes
     * four bytes a token in memory. At least 1. */
    size_t max_bytes;
} clt_text_options;

/* bytes 0, val_fraction 0.1, max_bytes 256 MiB. */
CLT_API clt_text_options clt_text_options_default(void);

/* Reads a whole file (a regular file or a pipe). CLT_ERR_IO with the path and the system's
 * reason for one that cannot be read or is a directory; CLT_ERR_FORMAT for an empty file;
 * CLT_ERR_INVALID_ARG for one past o->max_bytes. o NULL: the defaults. */
CLT_API clt_status clt_text_load(clt_text **out, const char *path, const clt_text_options *o);

/* The same from len bytes at data, which are copied (len 0 is CLT_ERR_INVALID_ARG). */
CLT_API clt_status clt_text_from_memory(clt_text **out, const void *data, size_t len,
                                        const clt_text_options *o);

/* The English text of Debian's fortunes package: every plain fortune file in dir (NULL: /usr/
 * share/games/fortunes), in the order of their names (strcmp), one after another. Skipped:
 * the .dat index files, the .u8 names, symbolic links, names starting with '.', and folders
 * such as off/. The "%" line that separates two fortunes becomes an empty line, so fortunes
 * stand apart as paragraphs; a file that does not end with a newline gets one. CLT_ERR_IO
 * naming the folder when it is absent or holds no such file. o->max_bytes bounds the whole. */
CLT_API clt_status clt_text_load_fortunes(clt_text **out, const char *dir,
                                          const clt_text_options *o);

/* A generated English-like stand-in of `chars` bytes (ASCII, so as many code points):
 * sentences of 3 to 12 words drawn from a built-in list of common English words, capitalised,
 * with commas, full stops, question and exclamation marks, spaces and newlines, all drawn from
 * the seed with integer arithmetic (clt__splitmix64), so a seed gives the same text on every
 * platform. chars is 1..256 MiB; the split is the default 90/10. */
CLT_API clt_status clt_text_synthetic(clt_text **out, size_t chars, uint64_t seed);

/* An encoder and decoder with no corpus (both parts empty), from a vocabulary that
 * clt_text_vocabulary gave: len bytes, code points in UTF-8 (bytes 0) or bytes (bytes 1),
 * strictly ascending. Anything else is CLT_ERR_INVALID_ARG naming the byte position. */
CLT_API clt_status clt_text_from_vocabulary(clt_text **out, const char *vocab, size_t len,
                                            int bytes);

/* NULL is fine. */
CLT_API void clt_text_destroy(clt_text *t);
/* The number of distinct tokens, ids 0..size-1; 0 for NULL. */
CLT_API int clt_text_vocab_size(const clt_text *t);
/* 1 when the tokens are bytes, 0 when they are code points (and for NULL). */
CLT_API int clt_text_byte_tokens(const clt_text *t);
/* The vocabulary in id order: the UTF-8 of its code points, or its bytes; *len (may be NULL)
 * gets its length in bytes. NUL-terminated, but a NUL token is part of it, so use *len.
 * Owned by the text; NULL (and *len 0) for NULL. */
CLT_API const char *clt_text_vocabulary(const clt_text *t, size_t *len);
/* The number of tokens in a part; 0 for NULL or another part number. */
CLT_API size_t clt_text_tokens(const clt_text *t, clt_text_part part);
/* A part's token ids, (clt_text_tokens(t, part)), owned by the text; NULL for NULL, another
 * part number, or a part with no tokens. */
CLT_API const int32_t *clt_text_ids(const clt_text *t, clt_text_part part);

/* Encodes len bytes of s into ids (cap of them) and writes their number to *count. In code
 * point mode s must be valid UTF-8, and cap = len is always enough. A character (or byte) not
 * in the vocabulary is CLT_ERR_INVALID_ARG naming it and its byte position; too small a cap
 * is CLT_ERR_INVALID_ARG with *count set to the number needed. */
CLT_API clt_status clt_text_encode(const clt_text *t, const char *s, size_t len, int32_t *ids,
                                   size_t cap, size_t *count);

/* Decodes n ids into out (cap bytes), NUL-terminated, and writes the length without the NUL to
 * *len; cap = 4 * n + 1 is always enough. An id outside [0, vocab size) is CLT_ERR_INVALID_ARG
 * naming its index; too small a cap is CLT_ERR_INVALID_ARG with *len set to the length. */
CLT_API clt_status clt_text_decode(const clt_text *t, const int32_t *ids, size_t n, char *out,
                                   size_t cap, size_t *len);

/* `batch` random windows of `block` tokens from a part, as nanoGPT's get_batch: for each row
 * b, a start i uniform in [0, n - block - 1] (n the part's tokens), x[b] = data[i .. i+block)
 * and y[b] = data[i+1 .. i+block], x and y (batch, block). The starts come from
 * clt__splitmix64 seeded with `seed` alone, bounded by rejection (no modulo bias), one draw a
 * row in row order: the same seed gives the same windows on every platform. A part of fewer
 * than block + 1 tokens is CLT_ERR_INVALID_ARG giving both numbers. */
CLT_API clt_status clt_text_batch(const clt_text *t, clt_text_part part, size_t batch, int block,
                                  uint64_t seed, int32_t *x, int32_t *y);

/* ---------------------------------------------------------------------------------------------
 * Devices. Discovery covers every platform of the ICD loader. A device spec selects devices:
 *
 *   all | gpu | cpu | accelerator    every device (of that type), platform by platform
 *   P:D                              device D of platform P, as `cltrain info` numbers them
 *   P:*                              every device of platform P
 *   any other word                   devices whose name, vendor, platform name or platform
 *                                    vendor contains it, or whose platform version has it as
 *                                    a word, case-insensitively ("pocl", "rusticl", "nvidia",
 *                                    "gfx1100")
 *
 * P:D numbers follow the ICD loader's order and shift when an implementation is installed;
 * words do not. clt_device_info.words lists the stable words that select a device. A word
 * names hardware or software wherever it appears: "intel" selects Intel's own runtime and
 * also PoCL's CPU device on an Intel processor (its vendor is GenuineIntel); "pocl" selects
 * only PoCL's devices.
 *
 * Entries are separated by commas and taken in order. An entry may repeat ("0:0,0:0"): each
 * occurrence opens the device again as a separate runtime device, with its own worker thread
 * and queue, so multi-device code runs on a one-device machine. NULL means $CLT_DEVICES, and
 * "all" where it is unset. A spec that is empty (given as "" or as an empty CLT_DEVICES), has
 * an empty entry or does not parse is CLT_ERR_BAD_SPEC; one with an entry that selects nothing
 * is CLT_ERR_DEVICE_NOT_FOUND. Either message says where the spec came from and lists the
 * devices that exist with their P:D and words.
 */
typedef enum {
    CLT_DEVICE_CPU = 1,
    CLT_DEVICE_GPU = 2,
    CLT_DEVICE_ACCELERATOR = 4,
    CLT_DEVICE_OTHER = 8
} clt_device_type;

typedef struct {
    int platform;              /* P in "P:D" */
    int device;                /* D in "P:D" */
    clt_device_type type;
    char name[128];
    char vendor[128];
    char platform_name[128];
    char version[96];          /* CL_DEVICE_VERSION, "OpenCL 3.0 ..." */
    char driver_version[64];
    int opencl_major, opencl_minor;   /* parsed from version */
    uint64_t global_mem_bytes;
    uint64_t max_alloc_bytes;
    uint64_t local_mem_bytes;
    unsigned compute_units;
    unsigned max_clock_mhz;
    size_t max_work_group_size;
    int has_fp16, has_fp64;
    int unified_memory;        /* host and device share memory (CPUs, integrated GPUs) */
    char platform_vendor[128]; /* CL_PLATFORM_VENDOR: "The pocl project", "Mesa/X.org" */
    char platform_version[128];/* CL_PLATFORM_VERSION: "OpenCL 3.0 PoCL 3.1+debian ..." */
    char words[128];           /* spec words that select this device, stable when ICDs come
                                * and go: "pocl, intel, cpu, basic" */
} clt_device_info;

/* Every device on every platform, in "P:D" order. With infos = NULL only *count is set; else up
 * to cap entries are written and *count is the total. No platform at all gives *count = 0 and
 * CLT_OK; a broken ICD gives an error. */
CLT_API clt_status clt_devices_list(clt_device_info *infos, size_t cap, size_t *count);

/* Resolves a spec (NULL: $CLT_DEVICES, else "all") to indices into clt_devices_list()'s order,
 * repeats included; same cap/count convention. */
CLT_API clt_status clt_devices_select(const char *spec, int *indices, size_t cap, size_t *count);

/* ---------------------------------------------------------------------------------------------
 * Runtime: a set of opened devices, each with its worker thread.
 */
typedef struct clt_runtime clt_runtime;

typedef enum {
    /* One context per platform holding all its selected devices: copies between devices of one
     * platform use clEnqueueCopyBuffer. The default. */
    CLT_CONTEXT_PER_PLATFORM = 0,
    /* One context per runtime device: every inter-device copy goes through host staging. */
    CLT_CONTEXT_PER_DEVICE = 1
} clt_context_mode;

typedef struct {
    size_t struct_size;           /* set by clt_runtime_options_default(): start there */
    const char *devices;           /* spec; NULL: $CLT_DEVICES, else "all" */
    clt_context_mode context_mode;
    int profiling;                 /* queues with CL_QUEUE_PROFILING_ENABLE */
    /* Record a timeline of every kernel, transfer and host phase of every device (profiling is
     * then on) and write it to this file as Chrome trace JSON at clt_runtime_destroy. NULL:
     * $CLT_TRACE, else no timeline. */
    const char *trace_path;
    /* Span every process of MPI_COMM_WORLD: the runtime's collectives and data-parallel trainers
     * then act on the devices of all processes, device ranks being (process, local device).
     * Every process must create it (a collective call) with the same number of devices. MPI is
     * initialised with MPI_THREAD_MULTIPLE when the program has not done it (and finalised at
     * exit); a program that has must have asked for MPI_THREAD_MULTIPLE. A communicator of
     * your own: clt_runtime_create_mpi() in cltrain_mpi.h. The MPI layer is its own library,
     * libcltrain-mpi (libcltrain never loads libmpi otherwise): a program that does not link it
     * gets it loaded here with dlopen, and CLT_ERR_UNSUPPORTED naming it when it is not
     * installed (docs/INSTALL.md). CLT_ERR_UNSUPPORTED in a build without MPI (see
     * clt_have_mpi). */
    int mpi;
    /* For tests of device failures: make one device of this runtime fail as a lost device does,
     * in CLT_FAULT's grammar, "device=D[,step=N][,op=OP][,at=K][,code=lost|resources]"
     * (docs/FAULTS.md). NULL: $CLT_FAULT, read again by each clt_trainer_create; "": none, whatever
     * $CLT_FAULT says. Each runtime has its own: a fault armed for one never touches another.
     * A malformed value, or a device the runtime does not have, is CLT_ERR_INVALID_ARG. */
    const char *fault;
} clt_runtime_options;

/* Defaults: devices NULL, CLT_CONTEXT_PER_PLATFORM, no profiling, no MPI, fault NULL. */
CLT_API clt_runtime_options clt_runtime_options_default(void);

/* Opens the devices that spec selects (NULL: $CLT_DEVICES, else "all"). */
CLT_API clt_status clt_runtime_create(clt_runtime **out, const char *spec);
CLT_API clt_status clt_runtime_create_ex(clt_runtime **out, const clt_runtime_options *opts);
/* Stops the workers and releases everything. NULL is fine. */
CLT_API void clt_runtime_destroy(clt_runtime *rt);

/* Number of runtime devices (repeats counted); 0 for NULL. Under MPI: this process's own. */
CLT_API int clt_runtime_device_count(const clt_runtime *rt);
/* Under MPI (opts.mpi or clt_runtime_create_mpi): the processes the runtime spans and this
 * one's rank among them; 1 and 0 otherwise (and for NULL). */
CLT_API int clt_runtime_process_count(const clt_runtime *rt);
CLT_API int clt_runtime_process_rank(const clt_runtime *rt);
/* 1 when the library was built with MPI (configure --with-mpi, which also builds
 * libcltrain-mpi), else 0. */
CLT_API int clt_have_mpi(void);
CLT_API clt_status clt_runtime_device_info(const clt_runtime *rt, int device, clt_device_info *out);
/* The context that runtime device `device` lives in, for creating your own buffers there.
 * The runtime owns it: retain it if you keep it past clt_runtime_destroy. NULL on bad input. */
CLT_API cl_context clt_runtime_context(const clt_runtime *rt, int device);

/* Time the device spent on the library's commands, from OpenCL profiling events: only counted
 * when the runtime was created with profiling on (otherwise no event is even asked for); and
 * the activation memory in use. */
typedef struct {
    uint64_t kernels;          /* kernels run, CLBlast's included */
    double kernel_s;           /* their device time, start to end */
    uint64_t transfers;        /* host-device copies of batches and results */
    double transfer_s;
    /* Bytes of activation storage the device's trainers hold allocated now (counted with or
     * without profiling, never reset): a stage's input, every layer's output and saved state,
     * and the activation gradients, for the micro-batches its pipeline schedule can have in
     * flight there. Parameters, their gradients, optimizer state, workspace, labels and the
     * host staging of transfers are not counted. Every mode reports it. */
    uint64_t activation_bytes;
    /* CPU seconds the device's worker thread used (counted with or without profiling; reset
     * like the totals). On a CPU device that runs kernels on that thread (PoCL 'basic') this is
     * the device's compute, whatever else the machine runs: a busy machine stretches the wall
     * clock, not this. */
    double worker_cpu_s;
} clt_device_stats;

/* Writes the timeline recorded so far (see trace_path) to path; recording goes on. Not while
 * another thread is training on the runtime. */
CLT_API clt_status clt_runtime_trace_write(clt_runtime *rt, const char *path);

/* Reads (and with reset, zeroes) a device's totals, after its queued work has finished. */
CLT_API clt_status clt_runtime_device_stats(clt_runtime *rt, int device, clt_device_stats *out,
                                            int reset);

/* What a callback run on a device's worker thread may use. Valid during the call only. */
typedef struct {
    int index;                 /* runtime device index */
    cl_context context;
    cl_device_id device;
    cl_command_queue queue;    /* in order; the worker's own: do not release it */
} clt_device_ctx;

typedef clt_status (*clt_device_fn)(const clt_device_ctx *d, void *user);

/* Runs fn on device `device`'s worker thread and waits for it. The callback's status is
 * returned; its clt_last_error() message is carried over to the calling thread. */
CLT_API clt_status clt_runtime_exec(clt_runtime *rt, int device, clt_device_fn fn, void *user);
/* Runs fn on every device's worker at once and waits for all of them. Returns CLT_OK or the
 * error of the lowest-numbered device that failed. */
CLT_API clt_status clt_runtime_exec_all(clt_runtime *rt, clt_device_fn fn, void *user);

/* Builds OpenCL C source for one runtime device (from inside or outside a worker callback).
 * Programs are cached per (device, source, options); the runtime owns *out. A build failure
 * returns CLT_ERR_BUILD_PROGRAM with the device name and the compiler's log in the message. */
CLT_API clt_status clt_runtime_build(clt_runtime *rt, int device, const char *source,
                                     const char *options, cl_program *out);

/* ---------------------------------------------------------------------------------------------
 * GEMM tuning. CLBlast ships tuned parameters for the devices in its database and falls back to
 * defaults elsewhere (PoCL's CPU device, newer GPUs). clt_gemm_tune searches CLBlast's Xgemm
 * parameters for one device, timed on the seed MLP's GEMM shapes, and stores the result in the
 * per-user cache ($CLT_CACHE_DIR, else $XDG_CACHE_HOME/cltrain, else ~/.cache/cltrain), keyed
 * by device name, driver version, platform and CLBlast version. Every runtime applies a cached
 * result when its workers start (CLT_GEMM_TUNING=0 turns that off); a bad cache file is ignored
 * with a warning (CLT_LOG=warn shows it). Tuning never runs by itself inside a training step.
 */
typedef struct {
    size_t struct_size;           /* set by clt_tune_options_default(): start there */
    double budget_s;      /* seconds the search may take on the device, closing phase included
                           * (the last candidate may run past it); 0 measures CLBlast's own
                           * parameters only */
    uint64_t seed;        /* random sampling of candidates */
    size_t batch;         /* batch of the seed-MLP shapes timed */
} clt_tune_options;

typedef struct {
    int stored;               /* 1: tuned parameters beat CLBlast's by > 5% and were stored and
                               * applied; 0: CLBlast's own are kept (the cache file says so) */
    int candidates, failed;   /* parameter sets timed, and those CLBlast refused */
    double default_gflops;    /* CLBlast's own parameters, on all the shapes together */
    double tuned_gflops;      /* what the device uses now */
    char path[4200];          /* the cache file written */
} clt_tune_result;

/* One GEMM of the seed MLP: row-major C (m, n) = op(A) (m, k) op(B) (k, n). */
typedef struct {
    const char *what;         /* "forward", "grad_w" or "grad_x" */
    int layer;                /* Linear layer 0..3 */
    int trans_a, trans_b;
    size_t m, n, k;
} clt_gemm_shape;

/* budget 120 s, seed 1, batch 256. */
CLT_API clt_tune_options clt_tune_options_default(void);
/* Tunes runtime device `device` (o NULL: the defaults), stores the result and leaves it applied. */
CLT_API clt_status clt_gemm_tune(clt_runtime *rt, int device, const clt_tune_options *o,
                                 clt_tune_result *out);
/* Applies the cached tuning of a device now (what worker start does); *applied (may be NULL) is 1
 * when a valid file with tuned parameters was found. A bad file is not an error. */
CLT_API clt_status clt_gemm_tuning_load(clt_runtime *rt, int device, int *applied);
/* The seed MLP's GEMMs at a batch (forward, weight and input gradients of each Linear): writes up
 * to cap shapes and returns how many there are (12). */
CLT_API int clt_gemm_seed_shapes(size_t batch, clt_gemm_shape *out, int cap);
/* Which SGEMM runs: what the library picks (cltrain's own kernel on CPU devices for the shapes
 * it covers, CLBlast otherwise; CLT_GEMM_KERNEL=clblast|cltrain overrides), or one of the two. */
typedef enum { CLT_GEMM_AUTO = 0, CLT_GEMM_CLBLAST, CLT_GEMM_CLTRAIN } clt_gemm_kernel;
/* Seconds per SGEMM of shape s on a device with the parameters in use: the best of iters calls
 * after an untimed one. CLT_GEMM_CLTRAIN on a shape the own kernel does not cover (M not a
 * multiple of 8, N of 16, both transposed) is CLT_ERR_INVALID_ARG. */
CLT_API clt_status clt_gemm_time(clt_runtime *rt, int device, const clt_gemm_shape *s,
                                 clt_gemm_kernel kernel, int iters, double *seconds);
/* 1 when CLT_GEMM_AUTO runs cltrain's own kernel for shape s on the device. */
CLT_API int clt_gemm_uses_own_kernel(clt_runtime *rt, int device, const clt_gemm_shape *s);

/* ---------------------------------------------------------------------------------------------
 * Models: a sequential stack of layers, described on the host. Shapes are per sample (no batch
 * dimension); the batch size may change from call to call.
 *
 *     clt_model *m;
 *     clt_model_create(&m, clt_shape1(1024));
 *     clt_model_add(m, clt_linear(512));   clt_model_add(m, clt_relu());
 *     clt_model_add(m, clt_linear(10));
 *
 * Sequences are (time, features) per sample: Linear, the activations, Dropout and
 * clt_layernorm_last act on the last dimension of such a shape, position by position, as
 * PyTorch's do on (batch, time, features). A residual block, y = x + f(x), is the run of layers
 * between clt_residual_begin() and clt_residual_end(); blocks nest. A GPT-2 block is
 *
 *     clt_model_add(m, clt_residual_begin());
 *     clt_model_add(m, clt_layernorm_last(1e-5f));
 *     clt_model_add(m, clt_linear(3 * C));                    // the QKV projection
 *     clt_model_add(m, clt_causal_attention(heads, 0.0f));    // (T, 3C) -> (T, C)
 *     clt_model_add(m, clt_linear(C));                        // the output projection
 *     clt_model_add(m, clt_residual_end());
 *     clt_model_add(m, clt_residual_begin());
 *     clt_model_add(m, clt_layernorm_last(1e-5f));
 *     clt_model_add(m, clt_linear(4 * C));   clt_model_add(m, clt_gelu_tanh());
 *     clt_model_add(m, clt_linear(C));
 *     clt_model_add(m, clt_residual_end());
 *
 * after clt_model_create(&m, clt_shape1(T)), clt_embedding(V, C) and clt_position_embedding();
 * a language model ends with clt_layernorm_last and clt_lm_head(V, tied). Such a model takes
 * token ids (clt_trainer_step_tokens). clt_model_add_gpt builds the whole model.
 */
typedef enum {
    CLT_LAYER_LINEAR = 1,      /* y = x W^T + b; W (out, in) as PyTorch's nn.Linear; on the last
                                  dimension of a (T, in) sequence */
    CLT_LAYER_CONV2D,          /* (C, H, W) -> (out, H', W'); W (out, C, k, k) */
    CLT_LAYER_MAXPOOL2D,
    CLT_LAYER_AVGPOOL2D,
    CLT_LAYER_FLATTEN,         /* any shape -> (numel) */
    CLT_LAYER_RELU,
    CLT_LAYER_LEAKY_RELU,      /* alpha: negative slope */
    CLT_LAYER_GELU,            /* exact (erf) form, PyTorch's default */
    CLT_LAYER_TANH,
    CLT_LAYER_SIGMOID,
    CLT_LAYER_DROPOUT,         /* alpha: drop probability; inverted scaling; identity in eval */
    CLT_LAYER_LAYERNORM,       /* over the whole sample; alpha: eps; affine weight and bias */
    CLT_LAYER_GELU_TANH,       /* GELU's tanh approximation (GPT-2's; approximate='tanh') */
    CLT_LAYER_LAYERNORM_LAST,  /* over the last dimension (nn.LayerNorm(features)); alpha: eps */
    CLT_LAYER_EMBEDDING,       /* token ids (T) -> (T, out); weight (count, out), count the
                                  vocabulary, as nn.Embedding(count, out) */
    CLT_LAYER_POSITION,        /* (T, C) + a learned (T, C) table, row t added at position t
                                  (GPT-2's wpe; the block size is T) */
    CLT_LAYER_ATTENTION,       /* (T, 3C) -> (T, C): causal scaled dot-product attention over
                                  count heads of C / count features; the input is Q, K, V side
                                  by side (nanoGPT's c_attn output), the output the heads side
                                  by side; alpha: dropout on the attention weights */
    CLT_LAYER_RESIDUAL_BEGIN,  /* identity; opens a block whose input is added back at its end */
    CLT_LAYER_RESIDUAL_END,    /* y = x + the block's input; the shapes must agree */
    CLT_LAYER_LM_HEAD          /* (T, C) -> (T, V): logits with the weight of the model's token
                                  embedding (tied, no bias, as GPT-2) */
} clt_layer_kind;

typedef struct {
    clt_layer_kind kind;
    int out;          /* linear: out features; conv2d: out channels; embedding: features */
    int kernel;       /* conv2d, pools: square kernel size */
    int stride;       /* conv2d, pools (0: pools default to kernel) */
    int padding;      /* conv2d: zero padding on each side */
    int bias;         /* linear, conv2d: 1 with a bias (the default), 0 without */
    float alpha;      /* leaky relu slope, dropout probability (also attention's), layernorm eps */
    int count;        /* embedding: vocabulary size; attention: heads */
} clt_layer_desc;

static inline clt_layer_desc clt_linear(int out)
{ clt_layer_desc d = {CLT_LAYER_LINEAR, out, 0, 0, 0, 1, 0.0f, 0}; return d; }
static inline clt_layer_desc clt_linear_nobias(int out)
{ clt_layer_desc d = {CLT_LAYER_LINEAR, out, 0, 0, 0, 0, 0.0f, 0}; return d; }
static inline clt_layer_desc clt_conv2d(int out_channels, int kernel, int stride, int padding)
{ clt_layer_desc d = {CLT_LAYER_CONV2D, out_channels, kernel, stride, padding, 1, 0.0f, 0}; return d; }
static inline clt_layer_desc clt_maxpool2d(int kernel, int stride)
{ clt_layer_desc d = {CLT_LAYER_MAXPOOL2D, 0, kernel, stride, 0, 0, 0.0f, 0}; return d; }
static inline clt_layer_desc clt_avgpool2d(int kernel, int stride)
{ clt_layer_desc d = {CLT_LAYER_AVGPOOL2D, 0, kernel, stride, 0, 0, 0.0f, 0}; return d; }
static inline clt_layer_desc clt_flatten(void)
{ clt_layer_desc d = {CLT_LAYER_FLATTEN, 0, 0, 0, 0, 0, 0.0f, 0}; return d; }
static inline clt_layer_desc clt_relu(void)
{ clt_layer_desc d = {CLT_LAYER_RELU, 0, 0, 0, 0, 0, 0.0f, 0}; return d; }
static inline clt_layer_desc clt_leaky_relu(float negative_slope)
{ clt_layer_desc d = {CLT_LAYER_LEAKY_RELU, 0, 0, 0, 0, 0, negative_slope, 0}; return d; }
static inline clt_layer_desc clt_gelu(void)
{ clt_layer_desc d = {CLT_LAYER_GELU, 0, 0, 0, 0, 0, 0.0f, 0}; return d; }
static inline clt_layer_desc clt_gelu_tanh(void)
{ clt_layer_desc d = {CLT_LAYER_GELU_TANH, 0, 0, 0, 0, 0, 0.0f, 0}; return d; }
static inline clt_layer_desc clt_tanh(void)
{ clt_layer_desc d = {CLT_LAYER_TANH, 0, 0, 0, 0, 0, 0.0f, 0}; return d; }
static inline clt_layer_desc clt_sigmoid(void)
{ clt_layer_desc d = {CLT_LAYER_SIGMOID, 0, 0, 0, 0, 0, 0.0f, 0}; return d; }
static inline clt_layer_desc clt_dropout(float p)
{ clt_layer_desc d = {CLT_LAYER_DROPOUT, 0, 0, 0, 0, 0, p, 0}; return d; }
static inline clt_layer_desc clt_layernorm(float eps)
{ clt_layer_desc d = {CLT_LAYER_LAYERNORM, 0, 0, 0, 0, 0, eps, 0}; return d; }
static inline clt_layer_desc clt_layernorm_last(float eps)
{ clt_layer_desc d = {CLT_LAYER_LAYERNORM_LAST, 0, 0, 0, 0, 0, eps, 0}; return d; }
static inline clt_layer_desc clt_embedding(int vocab, int features)
{ clt_layer_desc d = {CLT_LAYER_EMBEDDING, features, 0, 0, 0, 0, 0.0f, vocab}; return d; }
static inline clt_layer_desc clt_position_embedding(void)
{ clt_layer_desc d = {CLT_LAYER_POSITION, 0, 0, 0, 0, 0, 0.0f, 0}; return d; }
static inline clt_layer_desc clt_causal_attention(int heads, float dropout)
{ clt_layer_desc d = {CLT_LAYER_ATTENTION, 0, 0, 0, 0, 0, dropout, heads}; return d; }
static inline clt_layer_desc clt_residual_begin(void)
{ clt_layer_desc d = {CLT_LAYER_RESIDUAL_BEGIN, 0, 0, 0, 0, 0, 0.0f, 0}; return d; }
static inline clt_layer_desc clt_residual_end(void)
{ clt_layer_desc d = {CLT_LAYER_RESIDUAL_END, 0, 0, 0, 0, 0, 0.0f, 0}; return d; }
/* The language-model head: tied to the token embedding (CLT_LAYER_LM_HEAD), or its own
 * Linear(vocab) without bias. */
static inline clt_layer_desc clt_lm_head(int vocab, int tied)
{
    clt_layer_desc d = {tied ? CLT_LAYER_LM_HEAD : CLT_LAYER_LINEAR, vocab, 0, 0, 0, 0, 0.0f, 0};
    return d;
}

typedef struct clt_model clt_model;

CLT_API clt_status clt_model_create(clt_model **out, clt_shape input);
/* Appends a layer; its input shape is the previous output. A layer that does not fit (a conv on
 * a vector, a kernel larger than the padded input, ...) is CLT_ERR_SHAPE and is not added. */
CLT_API clt_status clt_model_add(clt_model *m, clt_layer_desc desc);
CLT_API void clt_model_destroy(clt_model *m);
CLT_API int clt_model_layer_count(const clt_model *m);
CLT_API clt_shape clt_model_input_shape(const clt_model *m);
/* Output shape of layer `layer` (-1: the last). */
CLT_API clt_shape clt_model_output_shape(const clt_model *m, int layer);
/* Total number of trainable parameters. */
CLT_API size_t clt_model_param_count(const clt_model *m);
/* Shape of a parameter tensor, by layer index and name ("weight", "bias"), in PyTorch's layout. */
CLT_API clt_status clt_model_param_shape(const clt_model *m, int layer, const char *name, clt_shape *out);
/* A short text description, one layer a line ("0 linear 1024 -> 512, 524800 params"). Owned by m. */
CLT_API const char *clt_model_describe(clt_model *m);

/* How clt_trainer_create initialises the parameters (from params->seed). */
typedef enum {
    CLT_INIT_TORCH = 0,   /* each layer as its PyTorch module's reset_parameters() does:
                             Linear and Conv2d kaiming-uniform U(+-1/sqrt(fan_in)) for weight
                             and bias, LayerNorm ones and zeros, embeddings N(0, 1) */
    CLT_INIT_GPT2 = 1     /* GPT-2's (nanoGPT's _init_weights): Linear weights and embeddings
                             N(0, 0.02), biases zero, LayerNorm ones and zeros, and the Linear
                             that ends a residual block (dropouts after it aside) N(0, 0.02 /
                             sqrt(residual blocks)) */
} clt_init;
/* The default is CLT_INIT_TORCH; clt_model_create_gpt sets CLT_INIT_GPT2. */
CLT_API clt_status clt_model_set_init(clt_model *m, clt_init init);

/* A GPT-2 style character model (nanoGPT's GPT): token and position embeddings, `layers` pre-
 * LayerNorm blocks of causal self-attention and a GELU(tanh) MLP of 4 x embd, a final LayerNorm
 * and the head. */
typedef struct {
    size_t struct_size;   /* set by clt_gpt_config_default(): start there */
    int vocab;            /* tokens (no default: the text's vocabulary) */
    int block;            /* sequence length T (64) */
    int layers;           /* transformer blocks (4) */
    int heads;            /* attention heads (4); embd must be a multiple */
    int embd;             /* features (128) */
    float dropout;        /* after the embeddings, on the attention weights, after each block's
                           * projections (0) */
    int tied;             /* 1 (default): the head shares the token embedding's weight */
    float eps;            /* LayerNorm eps (1e-5) */
} clt_gpt_config;

/* nanoGPT's CPU configuration: block 64, 4 layers, 4 heads, 128 wide, no dropout, tied; vocab 0. */
CLT_API clt_gpt_config clt_gpt_config_default(void);
/* The model of a configuration, CLT_INIT_GPT2; a bad field is CLT_ERR_INVALID_ARG naming it. */
CLT_API clt_status clt_model_create_gpt(clt_model **out, const clt_gpt_config *c);

/* Model parallelism: puts layers first_layer..last_layer (inclusive) on runtime device `device`.
 * Consecutive layers on one device form a pipeline stage; a device may hold several stages.
 * PyTorch's ModelParallelNN (fc1 on cuda:0, fc2 and fc3 on cuda:1, fc4 on cuda:0) is
 *
 *     clt_model_place(m, 0, 1, 0);   // fc1, relu
 *     clt_model_place(m, 2, 5, 1);   // fc2, relu, fc3, relu
 *     clt_model_place(m, 6, 6, 0);   // fc4
 *
 * Place every layer or none: with none, a CLT_PARALLEL_MODEL trainer partitions the layers
 * itself. A range outside the model, a negative device, or a layer placed twice (overlapping
 * ranges) is CLT_ERR_INVALID_ARG and changes nothing; a device the runtime does not have is
 * refused by clt_trainer_create. Placement only matters to CLT_PARALLEL_MODEL, and to
 * CLT_PARALLEL_TENSOR, where `device` names a tensor group instead (see tensor_group). */
CLT_API clt_status clt_model_place(clt_model *m, int first_layer, int last_layer, int device);
/* The device layer `layer` is placed on; -1 when it is not placed (or on bad input). */
CLT_API int clt_model_placement(const clt_model *m, int layer);

/* ---------------------------------------------------------------------------------------------
 * Training.
 */
typedef enum { CLT_LOSS_CROSS_ENTROPY = 0, CLT_LOSS_MSE = 1 } clt_loss;
typedef enum { CLT_OPTIM_SGD = 0, CLT_OPTIM_ADAM = 1, CLT_OPTIM_ADAMW = 2 } clt_optim_kind;

typedef struct {          /* PyTorch's semantics and defaults (torch.optim) */
    clt_optim_kind kind;
    float lr;             /* SGD 0.01 here (PyTorch has no default), Adam/AdamW 0.001 */
    float momentum;       /* SGD */
    float dampening;      /* SGD */
    int nesterov;         /* SGD */
    float weight_decay;   /* SGD, Adam: L2 added to the gradient; AdamW: decoupled (default 0.01) */
    float beta1, beta2, eps;   /* Adam, AdamW: 0.9, 0.999, 1e-8 */
} clt_optimizer;

/* Which parameter tensors weight_decay applies to, as nanoGPT's configure_optimizers groups
 * them (PyTorch param groups, the undecayed one with weight_decay 0). It applies alike to SGD's
 * and Adam's L2 term and to AdamW's decoupled decay. */
typedef enum {
    CLT_DECAY_ALL = 0,         /* every parameter (the default) */
    CLT_DECAY_MATRICES = 1     /* only tensors of rank >= 2: Linear and Conv2d weights, rank-2
                                  embeddings; not biases, not LayerNorm's weight and bias */
} clt_decay;

typedef enum {
    CLT_SCHED_CONSTANT = 0,
    CLT_SCHED_STEP = 1,        /* lr * gamma^(floor(step / step_size)) */
    CLT_SCHED_COSINE = 2       /* from lr down to min_lr over total_steps */
} clt_schedule_kind;

typedef struct {
    clt_schedule_kind kind;
    int step_size;        /* STEP */
    float gamma;          /* STEP */
    long total_steps;     /* COSINE */
    float min_lr;         /* COSINE */
    long warmup_steps;    /* any kind: linear warmup from lr/warmup_steps to lr first */
} clt_schedule;

typedef enum {
    CLT_PARALLEL_NONE = 0,     /* one device: `device` */
    CLT_PARALLEL_DATA = 1,     /* a replica on every runtime device, the batch split between them */
    CLT_PARALLEL_MODEL = 2,    /* layers placed on devices (clt_model_place), a pipeline */
    CLT_PARALLEL_TENSOR = 3,   /* Linear layers split across devices (Megatron-LM's MLP): each
                                  pair of Linear layers with only elementwise activations between
                                  them becomes a column-parallel layer (a slice of the output
                                  features on each device) then a row-parallel one (a slice of its
                                  input features; the partial outputs are all-reduced and the bias
                                  added once), one all-reduce forward and one backward per pair.
                                  On a sequence (T, features) the pairs split every position's
                                  features alike. An attention block (Linear(3C), causal attention,
                                  Linear(C)) is a pair split by whole heads: each device its heads'
                                  rows of Q, K and V, the attention on its heads, the output
                                  projection row-parallel (fewer heads than devices, or attention
                                  dropout, is CLT_ERR_UNSUPPORTED). Other layers (LayerNorm,
                                  embeddings, residual adds, the head, a Linear left without a
                                  partner) are replicated: every device computes them on the same
                                  bits. See tensor_group; with a placement, a pipeline of tensor
                                  groups. */
    CLT_PARALLEL_AUTO = 4      /* clt_trainer_create chooses, by running each candidate (one device,
                                  data parallel with equal and measured splits, tensor parallel
                                  groups, pipelines and their copies) for a few steps of
                                  max_batch on the runtime's devices: see clt_plan_parallel. The
                                  trainer is then the fastest candidate's, created as if asked
                                  for (clt_trainer_parallel says which) */
} clt_parallel;

/* How a model-parallel step moves micro-batches through the stages. Every schedule accumulates
 * the micro-batches' gradients in micro-batch order before one update, so all of them give the
 * update of the whole batch (and 1F1B and zero bubble the same bits for the same micro_batches). */
typedef enum {
    CLT_PIPELINE_NAIVE = 0,    /* one micro-batch at a time, forward through every stage and back
                                  before the next: devices wait for each other, as in the seed */
    CLT_PIPELINE_GPIPE = 1,    /* every micro-batch forward, then every one backward */
    CLT_PIPELINE_1F1B = 2,     /* after a warm-up, one forward then one backward per stage: stage s
                                  holds at most (stages - s) micro-batches' activations at once */
    CLT_PIPELINE_ZB = 3        /* zero bubble (ZB-H1, Qi et al., ICLR 2024): 1F1B with each
                                  backward's weight gradients computed later, in the time the stage
                                  would wait for the next gradient (and, in the cool-down, between
                                  the last backwards), so the previous stage gets its gradient
                                  sooner; 1F1B's activation memory and bits. Pipelines of tensor
                                  groups take it too (their stages split backward under it only) */
} clt_pipeline_schedule;

/* "naive", "gpipe", "1f1b", "zb"; "unknown" for other values. */
CLT_API const char *clt_pipeline_schedule_name(clt_pipeline_schedule s);
/* The schedule of a name (as clt_pipeline_schedule_name writes it, any case); an unknown name is
 * CLT_ERR_INVALID_ARG naming the known ones. */
CLT_API clt_status clt_pipeline_schedule_parse(const char *name, clt_pipeline_schedule *out);

typedef enum {
    CLT_SPLIT_EQUAL = 0,       /* the batch in equal shares (the first devices get one more) */
    CLT_SPLIT_WEIGHTS = 1,     /* in proportion to split_weights */
    CLT_SPLIT_AUTO = 2         /* in proportion to each device's measured samples/s, re-measured */
} clt_split;

typedef struct {
    size_t struct_size;           /* set by clt_train_params_default(): start there */
    clt_loss loss;
    clt_optimizer optim;
    clt_schedule schedule;
    float clip_norm;      /* clip gradients to this global L2 norm; 0: off */
    size_t max_batch;     /* largest batch a call may pass (buffers are sized for it); default 256 */
    uint64_t seed;        /* parameter initialisation and dropout */
    int device;           /* runtime device that trains (single-device mode); default 0 */
    int check_numerics;   /* 1 (default): a NaN or Inf loss or gradient is CLT_ERR_NUMERIC and the
                           * parameters stay as they were; 0: the update is made, NaN carried as
                           * PyTorch carries it (a NaN input gives a NaN loss, NaN parameters) */
    int accumulation;     /* steps whose gradients add up before one update (default 1); the loss
                           * of each is scaled by 1/accumulation, so equal micro-batches give the
                           * update of their union */

    /* Parallelism. Each field below is used only by the modes its comment names; the others
     * ignore its value, though every mode refuses one out of range, and elastic is refused
     * outside data parallelism. By mode:
     *   CLT_PARALLEL_NONE    device.
     *   CLT_PARALLEL_DATA    split, split_weights, rebalance_every, bucket_bytes, elastic,
     *                        verify_replicas.
     *   CLT_PARALLEL_MODEL   micro_batches, pipeline, pipelines, verify_replicas.
     *   CLT_PARALLEL_TENSOR  tensor_group, tensor_split, tensor_split_weights, verify_replicas;
     *                        with a placement also micro_batches, pipeline and pipelines
     *                        (copies of the pipeline of groups).
     * Fields read by several modes mean the same in each: micro_batches and pipeline the
     * micro-batches of a step and their schedule through the stages (only the model pipeline
     * also splits backward into input- and weight-gradient passes under GPIPE and 1F1B, the
     * bits being the same either way), verify_replicas a check that the copies of a parameter
     * hold the same bits (its comment says which copies each mode has). */
    clt_parallel parallel;
    clt_split split;              /* data: how the batch's rows are shared between the devices
                                   * (tensor parallelism has its own, tensor_split) */
    const float *split_weights;   /* data, CLT_SPLIT_WEIGHTS: one weight >= 0 per device */
    int rebalance_every;          /* data, CLT_SPLIT_AUTO: steps between re-measurements (20) */
    int verify_replicas;          /* data: after each update, check that every replica holds the
                                   * same bits as device 0 (slow: a debugging aid); tensor: that
                                   * replicated layers, matching slices of other groups and (on
                                   * devices of one implementation) the outputs on every device
                                   * of a group are the same bits; model with pipelines > 1: that
                                   * the copies of every stage are. Parameters hold on any mix of
                                   * vendors: each is computed on one device and shared */
    size_t bucket_bytes;          /* data: the gradients are reduce-scattered in buckets of whole
                                   * layers, from the last layer back, each of at least this many
                                   * bytes (default 512 KiB); a bucket starts as soon as backward has
                                   * produced it, while backward computes the layers before it.
                                   * 0: one bucket, after backward. Any value gives the same bits,
                                   * so after 4 updates in which no bucket started before backward
                                   * ended (PoCL 'basic' devices run commands only on the thread
                                   * that waits for them) the trainer uses one bucket. */
    int elastic;                  /* data: 1 drops a device that is lost mid-step (an OpenCL call
                                   * failing with CL_DEVICE_NOT_AVAILABLE or CL_OUT_OF_RESOURCES)
                                   * and goes on with the others from the last good state, the
                                   * batch re-split between them; the failed step is retried on
                                   * them (with accumulation, only when it began a new update:
                                   * otherwise it returns the error, the device already dropped).
                                   * Keeps a host copy of the optimizer state, refreshed each
                                   * update. clt_trainer_dropped_devices lists what was dropped.
                                   * Other modes: CLT_ERR_INVALID_ARG. Default 0. */
    int micro_batches;            /* model, and tensor with a placement: micro-batches per step
                                   * (default 1), 1..65536; a batch
                                   * of B splits into min(B, micro_batches) as equal as can be */
    clt_pipeline_schedule pipeline;   /* model, and tensor with a placement: the schedule
                                       * (default CLT_PIPELINE_NAIVE) */
    int pipelines;                /* model (and tensor with a placement), hybrid: P data-parallel
                                   * copies of the pipeline (default 1). Model parallelism: with
                                   * a placement on devices 0..D-1, copy p runs on devices
                                   * p*D .. p*D+D-1 (the runtime needs P*D); without one, each copy
                                   * gets runtime devices / P, partitioned alike. The batch is split
                                   * between the copies and matching stages all-reduce their
                                   * gradients before the update. */
    int tensor_group;             /* tensor: devices per tensor-parallel group (default 0: all the
                                   * runtime's). It must divide the device count: devices
                                   * g*T .. g*T+T-1 form group g, each group a replica of the whole
                                   * model, the batch split equally between groups and the
                                   * gradients of matching slices all-reduced across them.
                                   * With a placement (clt_model_place), its device numbers
                                   * name groups instead, every layer placed on a group the
                                   * runtime has: the runs of layers on one group are pipeline
                                   * stages, each tensor-parallel inside its group (a pair is
                                   * split only within one stage), run by `pipeline` with
                                   * `micro_batches`; every device of the next group receives
                                   * the whole activation, and gradients come back the same way.
                                   * With pipelines = P, copy p of that pipeline runs on the
                                   * groups after copy p - 1's (the runtime needs P times the
                                   * groups placed, else CLT_ERR_INVALID_ARG); other groups past
                                   * the highest one placed stay idle. */
    clt_split tensor_split;       /* tensor: how the features of split layers are shared between
                                   * the devices of a group (CLT_SPLIT_AUTO: by each device's
                                   * speed, timed at create: the fastest of 3 steps); the batch is
                                   * split equally between groups whatever it says */
    const float *tensor_split_weights;   /* tensor, CLT_SPLIT_WEIGHTS: one weight > 0 per runtime
                                   * device, slices in proportion, the same weights in every group
                                   * (matching slices are the same size) */
    /* Added after this struct's first version: a caller built against a header without it
     * gets the default. */
    clt_decay decay;              /* which tensors optim.weight_decay applies to (default
                                   * CLT_DECAY_ALL); every parallel mode honours it */
} clt_train_params;

/* Cross-entropy, SGD lr 0.01 without momentum, constant schedule, no clipping, max_batch 256,
 * seed 1, device 0, numerics checked, no accumulation, one device (CLT_PARALLEL_NONE), one
 * micro-batch, the naive pipeline, one pipeline, weight decay on every parameter. */
CLT_API clt_train_params clt_train_params_default(void);
CLT_API clt_optimizer clt_sgd(float lr, float momentum, float weight_decay, int nesterov);
CLT_API clt_optimizer clt_adam(float lr);
CLT_API clt_optimizer clt_adamw(float lr, float weight_decay);

typedef struct clt_trainer clt_trainer;

/* Places the model on the runtime's device, initialises its parameters (PyTorch's default
 * initialisation, from params->seed) and allocates its buffers. The model may be destroyed
 * afterwards: the trainer keeps its own copy. */
CLT_API clt_status clt_trainer_create(clt_trainer **out, clt_runtime *rt, const clt_model *m,
                                      const clt_train_params *params);

/* ---- choosing the parallel mode (CLT_PARALLEL_AUTO) -------------------------------------- */

/* One way to train a model on a runtime, as clt_plan_parallel tried it. */
typedef struct {
    char what[96];                /* e.g. "data parallel, split by measured speed" */
    clt_train_params params;      /* the caller's, with the mode's fields set: pass it to
                                   * clt_trainer_create to get this candidate's trainer */
    double step_seconds;          /* seconds a step (the mean of its timed steps, the faster of two
                                   * tries for the close ones); 0 when it could not run */
    clt_status status;            /* CLT_OK, or why it could not run (for instance
                                   * CLT_ERR_OUT_OF_DEVICE_MEMORY, or CLT_ERR_UNSUPPORTED for a
                                   * model tensor parallelism cannot split) */
} clt_plan_option;

/* The candidates for m on rt under params (whose `parallel` is ignored), each created and run
 * for 3 untimed steps and at least 5 timed ones (and a quarter of a second of them) of
 * params->max_batch samples of random data, the mean step its time, in this order:
 * every device alone; with two devices or more, data parallel with equal shares and with shares
 * by measured speed, tensor parallel over all the devices (and with four or more, in groups of
 * two), a pipeline over all the devices (1F1B, 2 and 4 micro-batches per stage), and with four
 * or more, two copies of a pipeline over half of them; then the candidates within 25% of the
 * fastest are tried again, each keeping its faster time (load from elsewhere only slows a try).
 * Under MPI, or with elastic set, only data
 * parallelism and one device are candidates; a placed model (clt_model_place) is refused:
 * placements are the planner's to choose. Writes up to cap options, *count (how many were
 * tried) and *chosen (the fastest that ran; -1 when none did, then returns the first one's
 * error). A candidate that cannot be created (memory, a model the mode cannot split) is listed
 * with its status and skipped; a device failure stops the plan with its error. Every candidate
 * starts from the same initial parameters, and its trainer is destroyed after the trial. With
 * CLT_LOG=info each candidate's time is logged beside the choice. */
CLT_API clt_status clt_plan_parallel(clt_runtime *rt, const clt_model *m, const clt_train_params *params,
                                     clt_plan_option *options, int cap, int *count, int *chosen);
/* The mode a trainer runs (never CLT_PARALLEL_AUTO: what the plan chose). */
CLT_API clt_parallel clt_trainer_parallel(const clt_trainer *t);
CLT_API void clt_trainer_destroy(clt_trainer *t);

/* One training step on a batch: x (batch, input numel), labels (batch) in [0, classes).
 * Writes the mean loss over the batch to *loss (may be NULL). A label out of range is
 * CLT_ERR_INVALID_ARG and changes nothing. A model whose output is a sequence (T, classes)
 * takes a label per position, labels (batch, T), and cross-entropy is the mean over all
 * batch x T positions, as F.cross_entropy(logits.view(-1, classes), y.view(-1)). */
CLT_API clt_status clt_trainer_step(clt_trainer *t, const float *x, const int32_t *labels,
                                    size_t batch, float *loss);
/* The same with float targets (batch, output numel), for CLT_LOSS_MSE. */
CLT_API clt_status clt_trainer_step_targets(clt_trainer *t, const float *x, const float *targets,
                                            size_t batch, float *loss);
/* Forward only (dropout off): out (batch, output numel). */
CLT_API clt_status clt_trainer_predict(clt_trainer *t, const float *x, size_t batch, float *out);
/* Mean loss and accuracy (argmax == label) over n samples, evaluated in batches of max_batch. */
CLT_API clt_status clt_trainer_evaluate(clt_trainer *t, const float *x, const int32_t *labels,
                                        size_t n, float *loss, float *accuracy);

/* The same for a model that starts with clt_embedding: tokens (batch, T) ids in [0, vocabulary),
 * targets (batch, T) one per position (a language model's: the next token). A token or target
 * out of range is CLT_ERR_INVALID_ARG naming the row and position, and changes nothing. The
 * float-input calls refuse such a model, and these calls a model without an embedding. */
CLT_API clt_status clt_trainer_step_tokens(clt_trainer *t, const int32_t *tokens,
                                           const int32_t *targets, size_t batch, float *loss);
CLT_API clt_status clt_trainer_predict_tokens(clt_trainer *t, const int32_t *tokens, size_t batch,
                                              float *out);
CLT_API clt_status clt_trainer_evaluate_tokens(clt_trainer *t, const int32_t *tokens,
                                               const int32_t *targets, size_t n, float *loss,
                                               float *accuracy);

/* Sampling from a language model (a model with an embedding whose output is (T, vocabulary)).
 * From prompt (n ids, 1 <= n), appends `tokens` ids to out (n + tokens ids, the prompt first):
 * each is drawn from softmax(logits / temperature) of the last position, over the top_k largest
 * logits (0: all), the context being the last T ids. Forward passes run on the trainer's
 * devices (dropout off); the draws are made on the host from a generator seeded by `seed`, so
 * a seed gives the same text on every device and platform. temperature 0 takes the argmax.
 * out may be prompt's own array (with room for the tokens). */
typedef struct {
    size_t struct_size;   /* set by clt_generate_options_default(): start there */
    float temperature;    /* 1.0 */
    int top_k;            /* 0: every token */
    uint64_t seed;        /* 1 */
} clt_generate_options;
CLT_API clt_generate_options clt_generate_options_default(void);
CLT_API clt_status clt_trainer_generate(clt_trainer *t, const int32_t *prompt, size_t n,
                                        size_t tokens, const clt_generate_options *o,
                                        int32_t *out);

/* Parameters and their gradients by layer and name, in PyTorch's layout; count must equal the
 * tensor's size (clt_model_param_shape). Gradients are those of the last step. */
CLT_API clt_status clt_trainer_get_param(clt_trainer *t, int layer, const char *name, float *out,
                                         size_t count);
CLT_API clt_status clt_trainer_set_param(clt_trainer *t, int layer, const char *name,
                                         const float *in, size_t count);
CLT_API clt_status clt_trainer_get_grad(clt_trainer *t, int layer, const char *name, float *out,
                                        size_t count);
/* What a layer is to tensor parallelism, as clt_trainer_tensor_slice reports it. */
typedef enum {
    CLT_SLICE_REPLICATED = 0,  /* every device computes the whole layer, on the same bits */
    CLT_SLICE_COLUMN = 1,      /* a column-parallel Linear: a slice of the output features */
    CLT_SLICE_ROW = 2,         /* a row-parallel Linear: a slice of the input features, the
                                * partial outputs all-reduced */
    CLT_SLICE_ELEMENTWISE = 3  /* an activation between a column- and a row-parallel Linear,
                                * running on the column slice */
} clt_slice_kind;

/* Tensor parallel: the slice of layer `layer` that runtime device `device` holds, as
 * [*first, *first + *count) of the output features (CLT_SLICE_COLUMN, CLT_SLICE_ELEMENTWISE) or
 * of the input features (CLT_SLICE_ROW); for CLT_SLICE_REPLICATED first is 0 and count the
 * layer's output features (per position on a sequence). In an attention block the QKV
 * projection's slice is of each of Q, K and V (the device holds 3 x count of its outputs), the
 * attention's (CLT_SLICE_ELEMENTWISE) the same features of its output: the device's heads are
 * first / (C / heads) .. on, count / (C / heads) of them. With a placement the layer lives on its group's devices only;
 * `device` gives the slice its tensor rank (device % tensor_group) holds there.
 * CLT_ERR_UNSUPPORTED for other strategies. */
CLT_API clt_status clt_trainer_tensor_slice(const clt_trainer *t, int layer, int device,
                                            clt_slice_kind *kind, int *first, int *count);
/* Data parallel: how many samples of the last step each device took (counts[device]; n is the
 * array's length). The split changes with CLT_SPLIT_AUTO. Tensor parallel: every device of a
 * group gives its group's rows. */
CLT_API clt_status clt_trainer_split(const clt_trainer *t, size_t *counts, int n);
/* Progress, reported after every successful step (the library never prints). The arrays have
 * `devices` entries, one per runtime device, and are valid during the call only. */
typedef struct {
    long step;              /* updates so far, this one included */
    int updated;            /* 1 when this call applied an update (0 while accumulating) */
    float loss;             /* the batch's mean loss */
    float lr;               /* the learning rate the update used */
    size_t batch;
    double seconds;         /* the call, wall clock */
    int devices;
    const size_t *samples;  /* the batch's rows each device took (0 for an idle device) */
    const double *busy;     /* each device's compute time over `seconds` (0..1) */
    /* The batch's rows whose largest output (the first on ties) is the label, counted on the
     * devices by the loss kernel during this step's forward, before the update. With MSE
     * through clt_trainer_step the targets are the labels one-hot, so the same count; with
     * clt_trainer_step_targets there is no label: correct is 0 and accuracy NAN. */
    size_t correct;
    float accuracy;         /* correct / batch, or NAN without labels */
    /* Data parallel, on an update: the gradient buckets (bucket_bytes), and how many of them
     * began their reduce-scatter while backward was still computing on some device (the
     * overlap of communication with compute). 0 and 0 otherwise. */
    int buckets;
    int buckets_overlapped;
} clt_step_info;

typedef void (*clt_progress_fn)(const clt_step_info *info, void *user);
/* Calls fn (on the calling thread) after each step; fn NULL stops it. */
CLT_API clt_status clt_trainer_set_progress(clt_trainer *t, clt_progress_fn fn, void *user);

/* Elastic mode: the runtime devices dropped so far, in order (up to cap written to devices,
 * which may be NULL when cap is 0). Returns how many were dropped; 0 for a NULL trainer. */
CLT_API int clt_trainer_dropped_devices(const clt_trainer *t, int *devices, int cap);
/* Steps taken so far, and the learning rate the next step will use. */
CLT_API long clt_trainer_step_count(const clt_trainer *t);
CLT_API float clt_trainer_lr(const clt_trainer *t);
/* The learning-rate schedule in use (the one given at create, or the checkpoint's after
 * clt_trainer_load), and a new one for the steps to come, checked as at create
 * (CLT_ERR_INVALID_ARG naming the field). The position in it stays the step count: setting a
 * cosine schedule with a larger total_steps after loading a checkpoint stretches the rest of the
 * run to the new length from the step the file stood at, as re-creating a PyTorch scheduler
 * with the new T_max and last_epoch = the step count does. The base rate stays optim.lr. */
CLT_API clt_status clt_trainer_schedule(const clt_trainer *t, clt_schedule *out);
CLT_API clt_status clt_trainer_set_schedule(clt_trainer *t, const clt_schedule *s);

/* ---------------------------------------------------------------------------------------------
 * Checkpoints: the whole training state in one file (docs/CHECKPOINT.md has the format).
 *
 *     clt_trainer_save(t, "run.ckpt");          // atomically replaces run.ckpt
 *     ...
 *     clt_trainer_create(&t2, rt, m, &p);       // the same model and optimizer kind
 *     clt_trainer_load(t2, "run.ckpt");         // t2 goes on exactly where t was
 *
 * A checkpoint holds the model description, the parameters, the optimizer state (SGD's
 * momentum buffer, Adam's m and v), the step count (which is also the learning-rate schedule's
 * position and, with the seed, the dropout generator's state), the run's hyper-parameters
 * (optimizer settings, schedule, clipping, accumulation, seed) and the caller's data position.
 * Loading and training on gives the same losses as never stopping: bit for bit on one device;
 * a checkpoint written with N data-parallel devices (or tensor-parallel: the state is saved in
 * the model's numbering, gathered from the slices) loads on any other number and mode.
 */

/* Where the caller's data order stands: saved and loaded with the checkpoint, never used by the
 * library itself. For example the epoch, the next sample of that epoch's order, and the seed the
 * order was shuffled with. */
typedef struct {
    uint64_t epoch;
    uint64_t index;
    uint64_t seed;
} clt_data_position;

/* Writes the training state to path: a temporary file in the same folder, flushed to disk, then
 * renamed over path, and the folder flushed, so a crash or a full disk leaves the previous file
 * intact (CLT_ERR_IO naming the path and the system's reason). Refused with CLT_ERR_STATE in
 * the middle of gradient accumulation (accumulated gradients are not saved). */
CLT_API clt_status clt_trainer_save(clt_trainer *t, const char *path);
/* Reads a checkpoint into a trainer created with the same model, loss and optimizer kind
 * (otherwise CLT_ERR_SHAPE or CLT_ERR_FORMAT naming what differs). The parameters, optimizer
 * state, step count, data position and the run's hyper-parameters (optimizer settings,
 * schedule, clip_norm, accumulation, seed, decay) come from the file; the devices, the parallel mode
 * and its settings (placement, pipeline, split, tensor groups), max_batch, check_numerics and
 * the progress callback stay the trainer's. To train on past the end of the file's schedule
 * (more epochs than it was written for), set a longer one after the load with
 * clt_trainer_set_schedule; loading alone keeps the file's. The whole file is read and checked first
 * (magic, version, sizes, a CRC32 per section): a file that is truncated, corrupted, of another
 * version or of another model is an error that leaves the trainer as it was. */
CLT_API clt_status clt_trainer_load(clt_trainer *t, const char *path);
/* A tokenizer's vocabulary (for the character models, clt_text_vocabulary's bytes), kept by
 * the trainer as opaque bytes, saved with every checkpoint and set by clt_trainer_load from a
 * file that has one; len 0 clears it. clt_trainer_vocabulary's pointer (NULL when none) is the
 * trainer's, valid until the next set, load or destroy. */
CLT_API clt_status clt_trainer_set_vocabulary(clt_trainer *t, const char *vocab, size_t len);
CLT_API clt_status clt_trainer_vocabulary(const clt_trainer *t, const char **vocab, size_t *len);
/* The model a checkpoint describes (the caller destroys it), and its vocabulary when vocab is
 * not NULL (malloc'd, NUL-terminated for convenience, NULL when the file has none; free it),
 * without a device: so that a program can re-create the trainer that wrote the file. */
CLT_API clt_status clt_checkpoint_read_model(const char *path, clt_model **model, char **vocab,
                                             size_t *vocab_len);
/* The run's settings a checkpoint holds (loss, optimizer, schedule, clip_norm, accumulation,
 * seed, decay) over clt_train_params_default()'s others, so that a trainer made with them
 * loads it. */
CLT_API clt_status clt_checkpoint_read_params(const char *path, clt_train_params *out);
/* The data position that the next save stores, and the one the last load read (zeros before). */
CLT_API clt_status clt_trainer_set_data_position(clt_trainer *t, const clt_data_position *pos);
CLT_API clt_status clt_trainer_data_position(const clt_trainer *t, clt_data_position *out);

/* ---------------------------------------------------------------------------------------------
 * Safetensors: the parameters alone, for PyTorch and Hugging Face (docs/CHECKPOINT.md).
 *
 *     clt_trainer_save_safetensors(t, "model.safetensors");
 *     # Python: net = nn.Sequential(...)   # the same layers
 *     #         net.load_state_dict(safetensors.torch.load_file("model.safetensors"))
 *
 * The tensors are those of the state_dict of the torch.nn.Sequential that holds the model's
 * layers in order: layer i's are "i.weight" and "i.bias" (a layer without parameters, such as an
 * activation, a pool, dropout or flatten, takes its index and holds none), float32 (F32), in
 * PyTorch's layout: Linear (out, in), Conv2d (out, in, kh, kw), LayerNorm weight and bias of its
 * normalized shape (the layer's whole input shape). The header's __metadata__ holds "format":
 * "pt", "producer": "cltrain VERSION", and "cltrain.model", the model as JSON: {"input": [dims],
 * "layers": [...]}, each layer an object whose "type" is its torch.nn class and whose other keys
 * are that class's constructor arguments, so that
 *     nn.Sequential(*[getattr(nn, d.pop("type"))(**d) for d in json.loads(meta)["layers"]])
 * rebuilds the network. A layer nn.Sequential cannot hold is CLT_ERR_UNSUPPORTED naming it,
 * unless the model is a GPT: the layers clt_model_create_gpt builds (with or without the Dropout
 * layers, tied or untied; recognised from the layers, however built). Its tensors are then those
 * of nanoGPT's GPT state_dict: transformer.wte.weight (V, C), transformer.wpe.weight (T, C),
 * transformer.h.{i}.ln_1, .attn.c_attn (3C, C), .attn.c_proj, .ln_2, .mlp.c_fc, .mlp.c_proj (each
 * .weight and .bias), transformer.ln_f, and lm_head.weight (V, C). A tied head's weight is
 * written under both wte's name and lm_head's, and on load both must be there and equal bit for
 * bit (CLT_ERR_SHAPE naming them). "cltrain.model" is nanoGPT's GPTConfig as JSON: {"type":
 * "gpt", "vocab_size", "block_size", "n_layer", "n_head", "n_embd", "dropout", "bias": true,
 * "tied", "eps"}.
 */

/* Writes the parameters to path, atomically as clt_trainer_save does, whatever the parallel
 * mode (the slices and replicas give the file one device would). */
CLT_API clt_status clt_trainer_save_safetensors(clt_trainer *t, const char *path);
/* Sets the parameters from a safetensors file, as torch's load_state_dict(strict=True) does:
 * the optimizer state (momentum, Adam's m and v), the step count, the schedule, accumulated
 * gradients and every hyper-parameter stay as they are; metadata is not read. The whole file is
 * read and checked first: a file that is truncated or not valid safetensors (header length,
 * JSON, offsets that leave a gap, overlap or reach past the data) is CLT_ERR_FORMAT, a tensor
 * that is not F32 CLT_ERR_FORMAT naming it and its dtype, and a missing tensor, one of another
 * shape or one the model does not have CLT_ERR_SHAPE naming it (and both shapes); each leaves
 * the trainer as it was. */
CLT_API clt_status clt_trainer_load_safetensors(clt_trainer *t, const char *path);
/* The parameters of a checkpoint (clt_trainer_save's file, which describes its model) as a
 * safetensors file at path, with no device. expect: NULL, or a model the checkpoint's must be
 * (CLT_ERR_SHAPE naming the first difference). */
CLT_API clt_status clt_checkpoint_export_safetensors(const char *checkpoint, const char *path,
                                                     const clt_model *expect);

/* ---------------------------------------------------------------------------------------------
 * Collectives across the runtime's devices, on float32 device buffers: all-reduce, broadcast,
 * reduce-scatter, all-gather. Buffer i (one per runtime device, in device order) lives in
 * clt_runtime_context(rt, i): the runtime's own buffers or ones you created there. Offsets are
 * not taken: pass a sub-buffer to work on part of a buffer.
 *
 * The data moves through pinned host staging: each device's worker thread copies its data to
 * the host, the workers run a ring (reduce-scatter then all-gather, N-1 steps each, chunked and
 * pipelined) over the staging buffers, and copy the result back; on devices that all share host
 * memory, the all-reduce maps the device buffers instead (see clt_algo). Every device ends with the
 * same bits, and the same inputs give the same bits on every run: each element is reduced by
 * one thread, in a fixed order of devices. Calls on one runtime run one at a time; they return
 * when the results are in the device buffers. Call them from any thread but not from inside a
 * clt_runtime_exec callback of the same runtime (CLT_ERR_STATE).
 *
 * When a device fails during a collective every device stops within the timeout; the call
 * returns the failing device's error and the runtime stays usable. A device that makes no
 * progress for timeout_s seconds gives CLT_ERR_TIMEOUT naming it.
 *
 * Under MPI (a runtime with opts.mpi, or clt_runtime_create_mpi) every process calls the same
 * collective with its own devices' buffers and the collective spans the n devices of all P
 * processes (every process has the same n): an all-reduce is hierarchical (the ring inside each
 * process, then each local device's reduced chunk all-reduced with the same local device of the
 * other processes, then the ring's all-gather) and gives the same bits on every device of every
 * process. In a reduce-scatter or all-gather "n" is then n * P, and device d of process p holds
 * block d * P + p. A broadcast, CLT_ALGO_NAIVE and CLT_ALGO_DIRECT do not cross processes
 * (CLT_ERR_UNSUPPORTED; CLT_ALGO_AUTO takes the ring there at every size). A process that
 * does not reach a collective within timeout_s (default 300 s under MPI) is named in the
 * CLT_ERR_TIMEOUT of the others; the runtime cannot run collectives afterwards.
 */
typedef enum {
    CLT_OP_SUM = 0,
    CLT_OP_AVG = 1,   /* the sum divided by the device count */
    CLT_OP_MAX = 2,   /* a NaN anywhere gives NaN, as for SUM */
    CLT_OP_MIN = 3
} clt_op;

typedef enum {
    CLT_ALGO_AUTO = 0,        /* an all-reduce of up to 32 KiB: direct; otherwise the ring */
    CLT_ALGO_RING = 1,        /* ring reduce-scatter + all-gather; on devices that all share host
                                 memory (CPUs, integrated GPUs) an all-reduce maps the device
                                 buffers instead of copying them to staging */
    CLT_ALGO_NAIVE = 2,       /* device 0's thread reduces everything; a baseline for benchmarks */
    CLT_ALGO_RING_STAGED = 3, /* the ring, always through host staging */
    CLT_ALGO_DIRECT = 4       /* all-reduce only (others take the ring): every device copies its
                                 vector to staging, waits for all, and reduces all of them itself
                                 in device order; one exchange, for small latency-bound sizes */
} clt_algo;

typedef struct {
    size_t struct_size;           /* set by clt_collective_options_default(): start there */
    clt_algo algo;
    size_t chunk_bytes;   /* pipeline chunk; 0: the default (1 MiB) */
    double timeout_s;     /* longest wait for another device; 0: the default (60 s) */
} clt_collective_options;

/* Defaults: CLT_ALGO_AUTO, chunk_bytes 0, timeout_s 0. */
CLT_API clt_collective_options clt_collective_options_default(void);

/* recv[i] = op over all devices of send[i], count floats each. recv NULL (or recv[i] ==
 * send[i]) works in place. opts NULL: defaults. count 0 only validates. */
CLT_API clt_status clt_allreduce(clt_runtime *rt, cl_mem const send[], cl_mem const recv[],
                                 size_t count, clt_op op, const clt_collective_options *opts);
/* Copies count floats of bufs[root] into every other bufs[i]. */
CLT_API clt_status clt_broadcast(clt_runtime *rt, cl_mem const bufs[], size_t count, int root,
                                 const clt_collective_options *opts);
/* send[i] holds n*count floats (n devices); recv[i] receives op over all devices of block i
 * (count floats). recv NULL: in place, block i of send[i] receives it. */
CLT_API clt_status clt_reduce_scatter(clt_runtime *rt, cl_mem const send[], cl_mem const recv[],
                                      size_t count, clt_op op,
                                      const clt_collective_options *opts);
/* send[i] holds count floats; recv[i] receives all n blocks in device order (n*count floats).
 * send NULL: in place, recv[i]'s block i is device i's input. */
CLT_API clt_status clt_all_gather(clt_runtime *rt, cl_mem const send[], cl_mem const recv[],
                                  size_t count, const clt_collective_options *opts);

#ifdef __cplusplus
}
#endif
#endif /* CLTRAIN_H */
