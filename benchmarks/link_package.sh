#!/usr/bin/env bash
# Makes `vision_trm` importable without pip (the GPU machine reaches no registry): links the three code
# folders under one namespace directory and prints the PYTHONPATH entry to use.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
target="${1:-/tmp/vision_trm_path}"
mkdir -p "$target/vision_trm"
for folder in configuration processing modeling_trm; do
  ln -sfn "$root/$folder" "$target/vision_trm/$folder"
done
echo "$target"
