/* replay_main: runs a libFuzzer harness over saved inputs, without libFuzzer.
 *
 * Linked with one harness as billow-fuzz-replay-<name>, it feeds every file
 * of each directory given on the command line (in name order, so runs are
 * alike) to LLVMFuzzerTestOneInput, after LLVMFuzzerInitialize if the harness
 * has one. Any compiler builds it, so the ordinary sanitizer build replays the
 * committed corpora in ./scripts/test; a harness abort()s on a violated
 * property, which fails the run with the input's name printed just before.
 * A plain file argument is replayed as one input (a crash the fuzzer saved).
 *
 * Usage: billow-fuzz-replay-<name> DIR_OR_FILE...
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REPLAY_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define REPLAY_SANITIZED 1
#endif
#ifdef REPLAY_SANITIZED
#include <sanitizer/common_interface_defs.h>
#endif

#ifndef FUZZ_HARNESS
#define FUZZ_HARNESS "fuzz"
#endif

/* Harnesses without LLVMFuzzerInitialize leave this NULL. */
#pragma weak LLVMFuzzerInitialize

/* The input being replayed, named when the harness or a sanitizer ends the
 * process, so a failing run says which seed failed without printing every
 * name on success. */
static const char *current_input;

static void name_current_input(void)
{
    const char *name = current_input;
    if (name == NULL)
        return;
    /* Once: a sanitizer's death callback may be followed by abort(). */
    current_input = NULL;
    /* Only async-signal-safe calls: this may run in a signal handler. */
    static const char prefix[] = FUZZ_HARNESS ": failed on input ";
    (void)!write(STDERR_FILENO, prefix, sizeof prefix - 1);
    (void)!write(STDERR_FILENO, name, strlen(name));
    (void)!write(STDERR_FILENO, "\n", 1);
}

static void on_abort(int sig)
{
    name_current_input();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Reads path whole into a new buffer; returns 0 or -1 with errno set. */
static int read_file(const char *path, uint8_t **out, size_t *out_len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap == 0 ? 4096 : cap * 2;
            buf = mem_realloc(buf, cap);
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        errno = EIO;
        return -1;
    }
    /* An exact-size copy, so a harness reading past the input trips ASan. */
    *out = mem_alloc(len > 0 ? len : 1);
    memcpy(*out, buf, len);
    *out_len = len;
    free(buf);
    return 0;
}

static int replay_file(const char *path)
{
    uint8_t *data;
    size_t len;
    if (read_file(path, &data, &len) != 0) {
        fprintf(stderr, "%s: %s: %s\n", FUZZ_HARNESS, path, strerror(errno));
        return -1;
    }
    current_input = path;
    LLVMFuzzerTestOneInput(data, len);
    current_input = NULL;
    free(data);
    return 0;
}

static int only_files(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

/* Replays every regular file in dir; returns how many, or -1. */
static long replay_dir(const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, only_files, alphasort);
    if (n < 0) {
        fprintf(stderr, "%s: %s: %s\n", FUZZ_HARNESS, dir, strerror(errno));
        return -1;
    }
    long count = 0;
    for (int i = 0; i < n; i++) {
        char *path = mem_printf("%s/%s", dir, names[i]->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (replay_file(path) != 0)
                count = -1;
            else if (count >= 0)
                count++;
        }
        free(path);
        free(names[i]);
    }
    free(names);
    return count;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    signal(SIGABRT, on_abort);
    signal(SIGSEGV, on_abort);
#ifdef REPLAY_SANITIZED
    __sanitizer_set_death_callback(name_current_input);
#endif
    if (LLVMFuzzerInitialize != NULL)
        LLVMFuzzerInitialize(&argc, &argv);
    long total = 0;
    int status = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        long n;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "%s: %s: %s\n", FUZZ_HARNESS, argv[i], strerror(errno));
            n = -1;
        } else if (S_ISDIR(st.st_mode)) {
            n = replay_dir(argv[i]);
        } else {
            n = replay_file(argv[i]) == 0 ? 1 : -1;
        }
        if (n < 0)
            status = 1;
        else
            total += n;
    }
    printf("%s: %ld inputs replayed\n", FUZZ_HARNESS, total);
    return status;
}
