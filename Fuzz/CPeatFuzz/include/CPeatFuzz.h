#ifndef C_PEAT_FUZZ_H
#define C_PEAT_FUZZ_H

/// Runs libFuzzer's driver on the process arguments with the executable's `LLVMFuzzerTestOneInput`,
/// then exits with its status.
_Noreturn void peat_fuzz_run(int argc, char **argv);

#endif
