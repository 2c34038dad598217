#!/usr/bin/env bash
# libFuzzer runs of the decoders of outside bytes (README.md, "Fuzzing"); `make fuzz` and friends call this.
#
#   scripts/fuzz.sh build             build every target (-sanitize=fuzzer,address) into .build-fuzz
#   scripts/fuzz.sh run [TARGET...]   fuzz each for FUZZ_SECONDS; one summary line each; fails on any finding
#   scripts/fuzz.sh seeds             (re)write the generated seeds in Fuzz/Corpus/<target>/
#   scripts/fuzz.sh merge [TARGET...] add the scratch corpus's inputs that add coverage to Fuzz/Corpus
#
# Runs use a scratch copy of the committed corpus (.build-fuzz/corpus/<target>, kept between runs);
# crashes, leaks, timeouts and out-of-memory inputs land in .build-fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

SWIFT=${SWIFT:-swift}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_JOBS=${FUZZ_JOBS:-1}
BUILD=.build-fuzz
CONFIGURATION=release
FLAGS=(--scratch-path "$BUILD" -c "$CONFIGURATION" -Xswiftc -sanitize=fuzzer,address -Xswiftc -g)
# Each target with the longest input worth trying (a few of its real messages).
declare -A MAX_LEN=(
    [FuzzFrameDecoder]=4096 [FuzzFormationHandshake]=1024 [FuzzMeshMessage]=4096 [FuzzSyncSession]=16384
    [FuzzChangeBatch]=8192 [FuzzLZCompression]=4096 [FuzzSavedDocument]=8192 [FuzzSnapshot]=4096
    [FuzzSyncMessage]=16384 [FuzzVersionVector]=1024 [FuzzDNSMessage]=2048 [FuzzWatchEvent]=8192
    [FuzzEndpointSlice]=4096 [FuzzRelayFrame]=2048
)
TARGETS=(
    FuzzFrameDecoder FuzzFormationHandshake FuzzMeshMessage FuzzSyncSession FuzzChangeBatch FuzzLZCompression
    FuzzSavedDocument FuzzSnapshot FuzzSyncMessage FuzzVersionVector FuzzDNSMessage FuzzWatchEvent FuzzEndpointSlice
    FuzzRelayFrame
)
# libFuzzer handles crashes itself: no Swift backtracer in between.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}

# swift-build starts its compiler jobs at the default priority whatever its own: keep renicing them,
# so a build beside other work takes only idle time.
descendants() {
    local child
    for child in $(pgrep -P "$1" || true); do
        echo "$child"
        descendants "$child"
    done
}

nice_build() {
    PEAT_FUZZ=1 nice -n 15 "$SWIFT" build "${FLAGS[@]}" "$@" &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        for child in $(descendants "$pid"); do renice -n 15 -p "$child" >/dev/null 2>&1 || true; done
        sleep 1
    done
    wait "$pid"
}

build() {
    for target in "${TARGETS[@]}"; do nice_build --product "$target"; done
}

binary() { echo "$BUILD/$CONFIGURATION/$1"; }

# Fuzzes one target for FUZZ_SECONDS; prints its summary line; returns non-zero on any finding.
run_one() {
    local target=$1 corpus="$BUILD/corpus/$1" artifacts="$BUILD/artifacts/$1" log="$BUILD/logs/$1.log"
    mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
    cp -n "Fuzz/Corpus/$target"/* "$corpus"/ 2>/dev/null || true
    local status=0
    nice -n 15 "$(binary "$target")" "$corpus" \
        -max_total_time="$FUZZ_SECONDS" -max_len="${MAX_LEN[$target]}" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
    local execs cov ft files
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
    files=$(find "$corpus" -type f | wc -l)
    if [ "$status" -eq 0 ]; then
        printf 'fuzz: %-24s ok     execs=%s cov=%s ft=%s corpus=%s seconds=%s\n' "$target" "${execs:-0}" "${cov:-0}" "${ft:-0}" "$files" "$FUZZ_SECONDS"
    else
        printf 'fuzz: %-24s FAILED (exit %s) execs=%s cov=%s ft=%s corpus=%s; log %s, artefacts %s\n' \
            "$target" "$status" "${execs:-0}" "${cov:-0}" "${ft:-0}" "$files" "$log" "$artifacts"
        grep -E '^==[0-9]+==ERROR|^SUMMARY|invariant broken|Fatal error|deadly signal|Test unit written' "$log" | head -8 | sed 's/^/      /' || true
    fi
    return "$status"
}

run() {
    local selected=("$@")
    [ ${#selected[@]} -gt 0 ] || selected=("${TARGETS[@]}")
    local failed=0 pids=() names=()
    for target in "${selected[@]}"; do
        [ -n "${MAX_LEN[$target]:-}" ] || { echo "fuzz: unknown target $target (one of: ${TARGETS[*]})"; return 2; }
        run_one "$target" &
        pids+=($!)
        names+=("$target")
        # At most FUZZ_JOBS at once: wait for the oldest before starting another.
        if [ ${#pids[@]} -ge "$FUZZ_JOBS" ]; then
            wait "${pids[0]}" || failed=1
            pids=("${pids[@]:1}")
        fi
    done
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    [ "$failed" -eq 0 ] || { echo "fuzz: a target found a crash, leak, timeout or excessive memory (see above)"; return 1; }
}

# Overwrites the generated seeds in place; merged inputs and regression-* files stay.
seeds() {
    for target in "${TARGETS[@]}"; do
        PEAT_FUZZ_WRITE_SEEDS="Fuzz/Corpus/$target" "$(binary "$target")"
    done
}

merge() {
    local selected=("$@")
    [ ${#selected[@]} -gt 0 ] || selected=("${TARGETS[@]}")
    for target in "${selected[@]}"; do
        nice -n 15 "$(binary "$target")" -merge=1 -max_len="${MAX_LEN[$target]}" "Fuzz/Corpus/$target" "$BUILD/corpus/$target" 2>&1 |
            { grep -E '^MERGE-OUTER: [0-9]+ new files' || true; } | sed "s/^/fuzz: $target: /"
    done
}

command=${1:-run}
shift || true
case "$command" in
build | run | seeds | merge) "$command" "$@" ;;
*) echo "usage: $0 build | run [TARGET...] | seeds | merge [TARGET...]"; exit 2 ;;
esac
