#!/usr/bin/env bash
# One command for the whole comparison in BENCHMARKS.md: shardcast vs the kernel-floor relay,
# side by side, same topology, same run. Relay on CPU 1, load generator on CPU 0.
# Usage: benches/compare.sh [quick|io]
#   quick: 1 rep, 2 s windows
#   io:    the syscall paths instead: the floor relay on recvmmsg/sendmmsg vs on io_uring
#          (multishot recvmsg, provided buffers, one sendmsg SQE per output), same topologies
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=3 DUR=5 WARM=1
if [ "${1:-}" = quick ]; then REPS=1 DUR=2 WARM=0.5; fi
cargo build --release -q -p shardcast -p shardcast-benches
BIN=target/release
if [ "${1:-}" = io ]; then
  IO=(--targets floor,floor-uring --cpu 0 --floor-cpu 1 --floor-bin "$BIN/shardcast-floor" --reps "$REPS" --duration-secs "$DUR" --warmup-secs "$WARM")
  LOG=$(mktemp)
  echo "## p2p (1 stream), input pps"
  "$BIN/shardcast-loadgen" compare "${IO[@]}" --profile p2p --streams 1 --rates 20000,50000,100000 --svg /dev/null 2>>"$LOG"
  echo; echo "## p2p10 (10 streams), input pps"
  "$BIN/shardcast-loadgen" compare "${IO[@]}" --profile p2p --streams 10 --rates 100000 --svg /dev/null 2>>"$LOG"
  echo; echo "## fanout (10 streams x 10 consumers), output pps"
  "$BIN/shardcast-loadgen" compare "${IO[@]}" --profile fanout --streams 10 --consumers 10 --rates 100000,200000 --svg /dev/null 2>>"$LOG"
  echo; echo "per-run summaries: $LOG"
  exit 0
fi
OUT=$(mktemp -d)
# shardcast: one data-plane core pinned to CPU 1, control thread on CPU 0.
cat > "$OUT/bench.toml" <<TOML
$(sed -e 's/^data_plane = \[\]/data_plane = [1]/' -e 's/^listen = "0.0.0.0:40000"/listen = "127.0.0.1:0"/' \
      -e 's/^listen = "127.0.0.1:8700"/listen = "127.0.0.1:0"/' -e 's/^port_range = \[40100, 40999\]/port_range = [0, 0]/' \
      -e 's/^enabled = true/enabled = false/' tuning/default.toml)
TOML
"$BIN/shardcast" --config "$OUT/bench.toml" --log-level warn > "$OUT/ready" &
DAEMON=$!
trap 'kill -TERM $DAEMON 2>/dev/null || true; wait $DAEMON 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$OUT/ready" ] && break; sleep 0.1; done
API="http://$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api"])' "$OUT/ready")"
# The whole daemon (control, HTTP, core) on CPU 1, like the floor relay.
for t in /proc/$DAEMON/task/*; do taskset -pc 1 "$(basename "$t")" > /dev/null; done
LG="$BIN/shardcast-loadgen"
COMMON=(--api "$API" --cpu 0 --floor-cpu 1 --floor-bin "$BIN/shardcast-floor" --reps "$REPS" --duration-secs "$DUR" --warmup-secs "$WARM")
echo "## p2p (1 stream), input pps"
"$LG" compare "${COMMON[@]}" --profile p2p --streams 1 --rates 20000,50000,100000 --svg benches/p2p.svg 2>>"$OUT/runs.log"
echo; echo "## p2p10 (10 streams), input pps"
"$LG" compare "${COMMON[@]}" --profile p2p --streams 10 --rates 100000 --svg benches/p2p10.svg 2>>"$OUT/runs.log"
echo; echo "## fanout (10 streams x 10 consumers), output pps"
"$LG" compare "${COMMON[@]}" --profile fanout --streams 10 --consumers 10 --rates 100000,200000,250000 --svg benches/fanout.svg 2>>"$OUT/runs.log"
echo; echo "per-run summaries: $OUT/runs.log"
