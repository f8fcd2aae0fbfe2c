#!/usr/bin/env bash
# jtune against llama.cpp on the same weights, same machine, same threads (docs/performance.md):
# takes the random-weight models of scripts/perf.sh (bf16 and group-32 int8), converts the bf16 ones
# to GGUF with llama.cpp's own converter (same bf16 weights), quantizes them to Q8_0 with llama-quantize
# (llama.cpp's group-32 int8), then runs `jtune bench` and `llama-bench` alternately, ROUNDS times, so
# that both see the same phases of this VM. Figures: prefill of 128 tokens from an empty context, and
# decode of 64 tokens after a 128-token context (positions 128-191), the best and the median of each
# tool's samples (jtune: one sample per repetition of 64 tokens; llama-bench: likewise, -r 5).
# usage: [PROMPT=128] [GEN=64] scripts/llamacpp-compare.sh [WORK_DIR [ROUNDS [SHAPES]]]   (needs root for chroot)
#   PROMPT and GEN change the 128 and 64 (PROMPT=512 GEN=128: llama-bench's own default sizes).
#   WORK_DIR: where perf.sh keeps its models (default /tmp/jtune-perf); SHAPES: default
#   "smollm2-135m tinyllama-1.1b". LLAMA_CHROOT: the chroot of scripts/llamacpp-chroot.sh
#   (default /work/llama-sid); it is built when missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(realpath -m "${1:-/tmp/jtune-perf}")"
rounds="${2:-3}"
shapes="${3:-smollm2-135m tinyllama-1.1b}"
chroot_dir="${LLAMA_CHROOT:-/work/llama-sid}"
threads="${THREADS:-2}"
prompt="${PROMPT:-128}"
gen="${GEN:-64}"
jt="$here/jtune"
tok="$here/../shared/tokenizers/llama2-tinyllama/tokenizer.model"

[ -x "$chroot_dir/usr/bin/llama-bench" ] || "$here/scripts/llamacpp-chroot.sh" "$chroot_dir"
mountpoint -q "$chroot_dir/proc" || "$here/scripts/llamacpp-chroot.sh" "$chroot_dir"
mkdir -p "$work" "$chroot_dir/work"
mountpoint -q "$chroot_dir/work" || mount --bind "$work" "$chroot_dir/work"
in_chroot() { chroot "$chroot_dir" "$@"; }

for shape in $shapes; do
  [ -d "$work/$shape-bf16" ] || "$jt" random-model --shape "$shape" --dtype BF16 -o "$work/$shape-bf16"
  [ -d "$work/$shape-int8" ] || "$jt" quantize -m "$work/$shape-bf16" --method int8-weight -o "$work/$shape-int8"
  if [ ! -f "$work/$shape-bf16.gguf" ]; then
    # the converter insists on a tokenizer; a random model has none, and llama-bench only needs the
    # vocabulary's size: llama's tokenizer.model, padded (or cut) to the config's vocab_size
    src="$work/$shape-gguf-src"
    mkdir -p "$src"
    cp "$work/$shape-bf16/config.json" "$work/$shape-bf16/model.safetensors" "$tok" "$src/"
    in_chroot python3 /usr/share/doc/llama.cpp-tools/scripts/convert_hf_to_gguf.py "/work/$shape-gguf-src" \
      --outtype bf16 --outfile "/work/$shape-bf16.gguf" >"$work/$shape-convert.log" 2>&1
    rm -rf "$src"
  fi
  [ -f "$work/$shape-q8_0.gguf" ] || in_chroot llama-quantize "/work/$shape-bf16.gguf" "/work/$shape-q8_0.gguf" Q8_0 \
    >"$work/$shape-quantize.log" 2>&1
done

# One line per sample: tool model phase tokens/s
samples="$work/llamacpp-compare.samples"
: >"$samples"
jtune_bench() {   # model dir -> prefill and decode samples
  "$jt" bench -m "$work/$1" --threads "$threads" --prompt "$prompt" --gen "$gen" --repeat 5 --no-machine --samples 2>/dev/null \
    | awk -v m="$1" '/^sample/ {print "jtune", m, $2, $3}' >>"$samples"
}
llama_bench() {   # gguf -> prefill samples (empty context) and decode samples (after PROMPT tokens)
  in_chroot llama-bench -m "/work/$1" -t "$threads" -p "$prompt" -n 0 -r 5 -o jsonl 2>/dev/null \
    | python3 -c 'import json,sys
for l in sys.stdin:
    for s in json.loads(l)["samples_ts"]: print("llama.cpp", sys.argv[1], "prefill", s)' "$1" >>"$samples"
  in_chroot llama-bench -m "/work/$1" -t "$threads" -p 0 -n "$gen" -d "$prompt" -r 5 -o jsonl 2>/dev/null \
    | python3 -c 'import json,sys
for l in sys.stdin:
    for s in json.loads(l)["samples_ts"]: print("llama.cpp", sys.argv[1], "decode", s)' "$1" >>"$samples"
}
for r in $(seq "$rounds"); do
  for shape in $shapes; do
    echo "round $r: $shape" >&2
    jtune_bench "$shape-bf16"; llama_bench "$shape-bf16.gguf"
    jtune_bench "$shape-int8"; llama_bench "$shape-q8_0.gguf"
  done
done

in_chroot llama-bench --version 2>&1 | grep -i version || true
python3 - "$samples" <<'EOF'
import sys, statistics, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    tool, model, phase, tps = line.split()
    rows[(model.replace(".gguf", ""), phase, tool)].append(float(tps))
print(f"{'model':<26} {'phase':<8} {'tool':<10} {'best':>8} {'median':>8} {'n':>3}")
for key in sorted(rows):
    v = rows[key]
    print(f"{key[0]:<26} {key[1]:<8} {key[2]:<10} {max(v):8.1f} {statistics.median(v):8.1f} {len(v):3d}")
EOF
