#!/usr/bin/env bash
# Installs everything the package, its offline data, its tests and the Space need, on a fresh Debian machine
# with Python 3.10+ and access to the Debian and PyPI registries (no model or dataset hub needed).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
# Offline data (Fashion-MNIST, the King James Bible) and the browser for the Space's end-to-end check.
if ! dpkg -s dataset-fashion-mnist bible-kjv chromium >/dev/null 2>&1; then
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends dataset-fashion-mnist bible-kjv chromium
fi

# The CPU build of torch; a plain `pip install torch` would fetch a multi-GB CUDA build.
python3 -c "import torch" 2>/dev/null || python3 -m pip install -q torch==2.13.0
python3 -m pip install -q -e ".[offline-data,space,test]"
