#!/usr/bin/env bash
# What the tuning knobs of tuning/README.md are worth on this machine, measured as BENCHMARKS.md
# measures everything: side by side in one run, each figure also as a ratio to the kernel-floor
# relay of the same run. Relay on CPU 1, load generator on CPU 0.
#
# Usage: benches/tuning.sh [REPS] [SECONDS]   (default 3 reps of 2 s windows; ~4 min)
#
# Experiments (each an A/B of one setting, reps interleaved A, B, floor, A, B, floor, ...):
#   control   the control and API threads on CPU 0 (beside the generator) vs on the data-plane
#             CPU 1 (`control_on_data_plane = true`), p2p 50k pps
#   buffers   socket buffers 208 KiB (the kernel default) vs 4 MiB, fan-out 10x10 at 250k out pps
#   fifo      the data-plane core SCHED_OTHER vs SCHED_FIFO 20, with a CPU hog on CPU 1 (a busy
#             loop at nice 0), p2p 20k pps: loss and latency are what the policy changes
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-3}
DUR=${2:-2}
cargo build --release -q -p shardcast -p shardcast-benches
BIN=target/release
OUT=$(mktemp -d)
LG=("$BIN/shardcast-loadgen" run --cpu 0 --duration-secs "$DUR" --warmup-secs 0.5)
DAEMON=
HOG=
cleanup() {
  [ -n "$DAEMON" ] && kill -TERM "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null || true
  [ -n "$HOG" ] && kill "$HOG" 2>/dev/null || true
}
trap cleanup EXIT

# Starts the daemon with tuning/benchmark.toml plus the TOML lines in $1 (appended to their
# sections by name: "[cores] key = value"), every thread of it on CPU 1 unless $2 = "spread".
start() {
  local cfg="$OUT/config.toml"
  python3 - "$1" > "$cfg" <<'PY'
import sys, re
base = open("tuning/benchmark.toml").read()
for line in filter(None, (l.strip() for l in sys.argv[1].split(";"))):
    section, kv = re.match(r"\[(\w+)\]\s*(.*)", line).groups()
    key = kv.split("=")[0].strip()
    body = re.search(rf"^\[{section}\]\n((?:(?!\[).*\n?)*)", base, re.M)
    if body is None:
        base += f"\n[{section}]\n{kv}\n"
        continue
    text = body.group(1)
    text = re.sub(rf"^{key}\s*=.*\n", "", text, flags=re.M)
    base = base[: body.start(1)] + kv + "\n" + text + base[body.end(1):]
print(base)
PY
  "$BIN/shardcast" --config "$cfg" > "$OUT/ready" 2> "$OUT/daemon.log" &
  DAEMON=$!
  for _ in $(seq 100); do [ -s "$OUT/ready" ] && break; sleep 0.1; done
  API="http://$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["api"])' "$OUT/ready")"
  if [ "${2:-}" != spread ]; then
    for t in /proc/$DAEMON/task/*; do taskset -pc 1 "$(basename "$t")" > /dev/null; done
  fi
}
stop() { kill -TERM "$DAEMON"; wait "$DAEMON" || true; DAEMON=; }

# One run: prints "ns_per_pkt loss_pct p99_us".
measure() {
  local json="$OUT/run.json"
  "${LG[@]}" "$@" --json "$json" > /dev/null 2>> "$OUT/runs.log"
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(round(d["relay_ns_per_pkt"]), round(d["loss_pct"],3), d["latency_us_p99"])' "$json"
}

# experiment NAME "A label" "A toml" "B label" "B toml" [spread] -- loadgen args...
experiment() {
  local name=$1 la=$2 ca=$3 lb=$4 cb=$5 mode=$6; shift 7
  echo "## $name: $* (reps: $REPS x ${DUR}s)"
  printf '%-28s %10s %8s %8s %8s\n' variant "ns/pkt" "x floor" "loss %" "p99 us"
  : > "$OUT/$name.txt"
  for rep in $(seq "$REPS"); do
    floor=$(measure --target floor --floor-bin "$BIN/shardcast-floor" --floor-cpu 1 "$@")
    start "$ca" "$mode"; a=$(measure --target shardcast --api "$API" "$@"); stop
    start "$cb" "$mode"; b=$(measure --target shardcast --api "$API" "$@"); stop
    echo "$rep floor $floor" >> "$OUT/$name.txt"
    echo "$rep A $a" >> "$OUT/$name.txt"
    echo "$rep B $b" >> "$OUT/$name.txt"
  done
  python3 - "$OUT/$name.txt" "$la" "$lb" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for rep, who, ns, loss, p99 in rows:
    by.setdefault(who, []).append((float(ns), float(loss), float(p99)))
floor = st.median(r[0] for r in by["floor"])
for who, label in (("floor", "floor relay"), ("A", sys.argv[2]), ("B", sys.argv[3])):
    v = by[who]
    ns = st.median(r[0] for r in v)
    print(f"{label:<28} {ns:10.0f} {ns / floor:8.2f} {st.median(r[1] for r in v):8.3f} {st.median(r[2] for r in v):8.0f}"
          f"   [ns {min(r[0] for r in v):.0f}..{max(r[0] for r in v):.0f}]")
PY
  echo
}

experiment control "control on CPU 0" "[cores] control = 0; [cores] api = 0" \
  "control on data-plane CPU 1" "[cores] control = 1; [cores] api = 1; [cores] control_on_data_plane = true" \
  spread -- --profile p2p --streams 1 --rate 50000

experiment buffers "buffers 208 KiB" "[media] recv_buffer = 212992; [media] send_buffer = 212992" \
  "buffers 4 MiB" "[media] recv_buffer = 4194304; [media] send_buffer = 4194304" \
  same -- --profile fanout --streams 10 --consumers 10 --rate 250000

# A CPU hog on CPU 1 for the whole experiment (bounded: it stops with this script).
taskset -c 1 timeout 900 sh -c 'while :; do :; done' &
HOG=$!
experiment fifo "SCHED_OTHER + hog" "[cores] data_plane_policy = \"other\"" \
  "SCHED_FIFO 20 + hog" "[cores] data_plane_policy = { fifo = 20 }" \
  same -- --profile p2p --streams 1 --rate 20000
kill "$HOG" 2>/dev/null || true
HOG=
echo "per-run logs: $OUT/runs.log, daemon log: $OUT/daemon.log"
