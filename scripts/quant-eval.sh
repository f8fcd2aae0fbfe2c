#!/usr/bin/env bash
# Reproduces the evaluation table of docs/quantization.md: quantizes a model every supported way,
# then measures LAMBADA-style last-word accuracy and perplexity on held-out text for each variant.
# usage: scripts/quant-eval.sh [MODEL_DIR] [WORK_DIR]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:-$here/../shared/models/jtune-ref-llama-13m}"
work="${2:-$(mktemp -d)}"
shared="$here/../shared"
lambada="$shared/data/ref-heldout/heldout.jsonl"     # held out from the model's training
text="$shared/data/ref-heldout/heldout.txt"
calib="$shared/data/pubmedqa/pubmed_qa_labeled.jsonl" # calibration: training-distribution text, not the test set
jt="$here/jtune"
run() { "$jt" "$@" 2>&1 | grep -v "^WARNING: Using incubator"; }

variants=("base:$model")
run quantize -m "$model" --method int8-weight -o "$work/int8-weight" >/dev/null && variants+=("int8-weight (group 32):$work/int8-weight")
run quantize -m "$model" --method int8-weight --group-size 0 -o "$work/int8-weight-ch" >/dev/null && variants+=("int8-weight (per channel):$work/int8-weight-ch")
if run quantize --help | grep -q int4-weight; then
  run quantize -m "$model" --method int4-weight -o "$work/int4-weight" >/dev/null && variants+=("int4-weight (group 32, symmetric):$work/int4-weight")
fi
run quantize -m "$model" --method w8a8 --calib "$calib" --samples 64 -o "$work/w8a8" >/dev/null && variants+=("W8A8, no smoothing:$work/w8a8")
run quantize -m "$model" --method smoothquant --alpha 0.5 --calib "$calib" --samples 64 -o "$work/sq-0.5" >/dev/null && variants+=("SmoothQuant alpha 0.5:$work/sq-0.5")
run quantize -m "$model" --method smoothquant --alpha auto --calib "$calib" --samples 64 -o "$work/sq-auto" > "$work/sq-auto.alphas" && variants+=("SmoothQuant alpha auto:$work/sq-auto")

echo "| variant | last-word accuracy | target NLL | perplexity |"
echo "|---|---|---|---|"
for v in "${variants[@]}"; do
  name="${v%%:*}"; dir="${v#*:}"
  # an f32 KV cache, so that the table measures the weights' quantization alone (a model published in
  # bf16 gets a bf16 cache by default, which moves the base perplexity by about 0.0015)
  l="$(run eval -m "$dir" --task lambada --data "$lambada" --kv-cache f32)"
  p="$(run eval -m "$dir" --task perplexity --data "$text" --window 256 --stride 128 --kv-cache f32)"
  acc="$(sed -n 's/.*accuracy \([0-9.]*\) (\([0-9]*\) hits).*/\1 (\2 hits)/p' <<<"$l")"
  nll="$(sed -n 's/.*mean target NLL \([0-9.]*\).*/\1/p' <<<"$l")"
  ppl="$(sed -n 's/^perplexity \([0-9.]*\) .*/\1/p' <<<"$p")"
  echo "| $name | $acc | $nll | $ppl |"
done
echo
echo "auto alphas: $work/sq-auto.alphas"
