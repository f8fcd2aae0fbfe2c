#!/usr/bin/env bash
# Decode kernels against the read probe, Java and C, on this machine (docs/performance.md, 2026-12-07 Zen 5 section).
# usage: scripts/stream-ceiling.sh [COLS...]   (default 576 2048; needs gcc for the C twin)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cols=(576 2048)
[ $# -gt 0 ] && cols=("$@")
if command -v gcc >/dev/null; then
  bin="$(mktemp -d)/stream-ceiling"
  gcc -O3 -march=native -fopenmp -o "$bin" "$here/scripts/stream-ceiling.c"
  for c in "${cols[@]}"; do "$bin" "$c" 6; done
else
  echo "gcc not found: skipping the C twin"
fi
for c in "${cols[@]}"; do
  rows=$(( c == 576 ? 1536 : c ))
  "$here/bench/run" StreamCeiling bf16 "${rows}x${c}" 512 8 2>&1 | grep -v "^WARNING: Using incubator"
done
