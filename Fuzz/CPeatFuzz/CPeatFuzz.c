#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "CPeatFuzz.h"

// Both defined at link time: the driver by libFuzzer (-sanitize=fuzzer), the callback by each fuzz target.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void peat_fuzz_run(int argc, char **argv) {
    exit(LLVMFuzzerRunDriver(&argc, &argv, LLVMFuzzerTestOneInput));
}
