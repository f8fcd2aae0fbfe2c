#!/usr/bin/env bash
# Reproduces docs/performance.md: builds random-weight models of published shapes (bf16, int8 with
# group-32 scales and int8 with per-channel scales),
# then runs jtune bench on each (inference, then LoRA and full training steps on SmolLM2-135M).
# usage: scripts/perf.sh [WORK_DIR]   (about 15 minutes on a 2-core machine; needs ~6 GB of disk)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${1:-/tmp/jtune-perf}"
jt="$here/jtune"
run() { "$jt" "$@" 2>&1 | grep -v "^WARNING: Using incubator"; }
mkdir -p "$work"
for shape in smollm2-135m tinyllama-1.1b; do
  [ -d "$work/$shape-bf16" ] || run random-model --shape "$shape" --dtype BF16 -o "$work/$shape-bf16"
  [ -d "$work/$shape-int8" ] || run quantize -m "$work/$shape-bf16" --method int8-weight -o "$work/$shape-int8"
  [ -d "$work/$shape-int8ch" ] || run quantize -m "$work/$shape-bf16" --method int8-weight --group-size 0 -o "$work/$shape-int8ch"
done
for m in smollm2-135m-bf16 smollm2-135m-int8 smollm2-135m-int8ch tinyllama-1.1b-bf16 tinyllama-1.1b-int8 tinyllama-1.1b-int8ch; do
  echo "== $m"
  run bench -m "$work/$m" --prompt 128 --gen 64
done
echo "== smollm2-135m-bf16, LoRA training"
run bench -m "$work/smollm2-135m-bf16" --train lora --train-steps 2
echo "== smollm2-135m-bf16, full training"
run bench -m "$work/smollm2-135m-bf16" --train full --train-steps 2
