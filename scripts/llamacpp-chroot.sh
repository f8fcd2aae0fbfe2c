#!/usr/bin/env bash
# Builds a Debian sid chroot holding Debian's packaged llama.cpp (llama-bench, llama-cli,
# llama-quantize, convert_hf_to_gguf.py), for the side-by-side llama.cpp benchmark in
# docs/performance.md. The packages need a newer glibc than bookworm has, hence the chroot.
# Not used by tests or CI. Needs root and network access to deb.debian.org. Idempotent.
# usage: scripts/llamacpp-chroot.sh [CHROOT_DIR]   (default /work/llama-sid; about 2 GB of disk)
# then, with an HF model copied to CHROOT_DIR/models/m (a jtune random model has no tokenizer:
# copy in tokenizer.model from shared/tokenizers/llama2-tinyllama; it is padded or truncated to
# the config's vocab_size):
#   chroot CHROOT_DIR python3 /usr/share/doc/llama.cpp-tools/scripts/convert_hf_to_gguf.py \
#       /models/m --outtype bf16 --outfile /models/m-bf16.gguf      (or f32, q8_0)
#   chroot CHROOT_DIR llama-bench -m /models/m-bf16.gguf -t 2
set -euo pipefail
dir="${1:-/work/llama-sid}"
mirror=http://deb.debian.org/debian

command -v debootstrap >/dev/null || { apt-get update; apt-get install -y debootstrap; }
# debootstrap removes DIR/debootstrap when it finishes, so its presence means an interrupted run
if [ ! -x "$dir/usr/bin/apt-get" ] || [ -d "$dir/debootstrap" ]; then
  debootstrap --variant=minbase sid "$dir" "$mirror"
fi

# Mounts stay in place for later `chroot DIR ...` runs; undo with:
#   umount DIR/dev/pts DIR/dev DIR/sys DIR/proc
mountpoint -q "$dir/proc" || mount -t proc proc "$dir/proc"
mountpoint -q "$dir/sys" || mount -t sysfs sysfs "$dir/sys"
mountpoint -q "$dir/dev" || mount --bind /dev "$dir/dev"
mountpoint -q "$dir/dev/pts" || mount --bind /dev/pts "$dir/dev/pts"

# llama.cpp-tools: the binaries and the converter script; the python3 packages are what
# convert_hf_to_gguf.py imports (torch and transformers at top level; sentencepiece for a
# Llama tokenizer.model).
# The deb.debian.org reachable here can be a frozen copy whose Release file is past Valid-Until.
echo 'Acquire::Check-Valid-Until "false";' > "$dir/etc/apt/apt.conf.d/99no-check-valid-until"
chroot "$dir" apt-get update
chroot "$dir" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
  llama.cpp-tools python3-gguf python3-numpy python3-torch python3-transformers python3-sentencepiece
chroot "$dir" apt-get clean
chroot "$dir" llama-bench --version 2>&1 | tail -n 2 || true
