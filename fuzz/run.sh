#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS (default 60) each, one line per target:
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Each target starts from its committed seeds (corpus/<target>/seed-*) plus whatever earlier
# runs added there (not committed). Exit status: 0 when no target found anything, 1 on a finding
# (the crashing input is in fuzz/artifacts/<target>/; replay it with
# `cargo +nightly fuzz run <target> <file>`, then add it to fuzz/regressions/<target>/ with the
# fix), 2 when a target did not build. Without a nightly toolchain or cargo-fuzz it says so and
# exits 0: whether that is acceptable is the caller's (CI's) decision.
set -u
cd "$(dirname "$0")"

secs=${1:-60}
shift $(( $# > 0 ? 1 : 0 ))
if ! [[ $secs =~ ^[0-9]+$ ]] || (( secs == 0 )); then
    echo "usage: fuzz/run.sh [SECONDS] [TARGET...]" >&2
    exit 2
fi
all=(rtp_parse_rewrite rtp_extensions rtcp_compound shard_forward shard_commands api_request)
targets=("$@")
if (( ${#targets[@]} == 0 )); then
    targets=("${all[@]}")
fi
for t in "${targets[@]}"; do
    if [[ " ${all[*]} " != *" $t "* ]]; then
        echo "fuzz: unknown target $t (targets: ${all[*]})" >&2
        exit 2
    fi
done

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: SKIPPED: no nightly toolchain (rustup toolchain install nightly)"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: SKIPPED: cargo-fuzz is not installed (cargo install cargo-fuzz --locked)"
    exit 0
fi
if [[ -n ${SHARDCAST_FUZZ_KNOWN:-} ]]; then
    echo "fuzz: WARNING: SHARDCAST_FUZZ_KNOWN=$SHARDCAST_FUZZ_KNOWN: those known findings are NOT checked"
fi

# The fuzz crate's own target dir: sanitizer flags would rebuild a shared one from scratch.
export CARGO_TARGET_DIR="$PWD/target"
echo "fuzz: building the targets (nightly, address sanitizer, release), then ${#targets[@]} × ${secs} s"
if ! cargo +nightly fuzz build -O >build.log 2>&1; then
    tail -30 build.log
    echo "fuzz: BUILD FAILED (fuzz/build.log)"
    exit 2
fi

status=0
mkdir -p logs
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="logs/$t.log"
    start=$(date +%s)
    # -rss_limit_mb: api_request runs a whole shardcast in-process; the others stay far below.
    cargo +nightly fuzz run -O "$t" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    cov=$(grep -oE '#[0-9]+.*cov: [0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+' | grep -oE '[0-9]+')
    if (( rc == 0 )); then
        result=ok
    else
        status=1
        artifact=$(grep -oE 'Test unit written to [^ ]+' "$log" | tail -1 | sed 's/Test unit written to //')
        reason=$(grep -m1 -E "panicked at|ERROR: AddressSanitizer|ERROR: libFuzzer" "$log" | cut -c1-160)
        result="FINDING ${artifact:-(no artifact)}: ${reason:-see fuzz/$log}"
    fi
    printf 'fuzz: %-18s runs %-10s secs %-5s cov %-6s %s\n' "$t" "${runs:-?}" "$took" "${cov:-?}" "$result"
done
exit $status
