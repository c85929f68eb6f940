#!/usr/bin/env bash
# One-command setup for xpaste-mm on a fresh Linux machine with Python 3.11.
#
#   bash tools/install.sh
#
# 1. keeps an importable torch/torchvision pair, else installs torch 2.14.1 + torchvision 0.29.1;
# 2. builds mmcv 2.1.0 WITH compiled ops from its source distribution against that torch
#    (CUDA ops too when nvcc and a GPU are present), caching the wheel outside the repo under
#    $XPASTE_CACHE (default ~/.cache/xpaste-mm) keyed by mmcv + torch + CUDA + Python versions;
# 3. installs mmdet 3.3.0, mmengine, lvis, the pool-building libraries, test tools and this project
#    (editable);
# 4. verifies the stack and exits non-zero with a clear message on any failure.
# Idempotent: a second run only checks and takes well under a minute.
set -euo pipefail

PYTHON=${PYTHON:-python}
MMCV_VERSION=2.1.0
TORCH_DEFAULT=2.14.1
TORCHVISION_DEFAULT=0.29.1
CACHE_ROOT=${XPASTE_CACHE:-${HOME}/.cache/xpaste-mm}
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PIP=("$PYTHON" -m pip install --disable-pip-version-check)

say() { printf '[install] %s\n' "$*"; }
die() { printf '[install] ERROR: %s\n' "$*" >&2; exit 1; }
started=$(date +%s)

# ---- 1. torch / torchvision -------------------------------------------------------------
if "$PYTHON" -c "import torch, torchvision" >/dev/null 2>&1; then
  say "keeping installed torch $("$PYTHON" -c 'import torch; print(torch.__version__)')"
else
  say "installing torch==${TORCH_DEFAULT} torchvision==${TORCHVISION_DEFAULT}"
  "${PIP[@]}" "torch==${TORCH_DEFAULT}" "torchvision==${TORCHVISION_DEFAULT}" \
    || die "could not install torch ${TORCH_DEFAULT} / torchvision ${TORCHVISION_DEFAULT}"
fi
read -r TORCH_VERSION TORCH_CUDA < <("$PYTHON" -c \
  "import torch; print(torch.__version__.split('+')[0], torch.version.cuda or 'cpu')")

# CUDA ops are built only when a toolchain AND a GPU are present.
BUILD_CUDA=0
if command -v nvcc >/dev/null 2>&1 && [ "$TORCH_CUDA" != cpu ] \
   && "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  BUILD_CUDA=1
fi
PY_TAG=$("$PYTHON" -c "import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')")
OPS_TAG=cpuops
if [ "$BUILD_CUDA" = 1 ]; then
  # The GPU architectures the kernels are compiled for are part of the cache key.
  if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ]; then
    TORCH_CUDA_ARCH_LIST=$("$PYTHON" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")
    export TORCH_CUDA_ARCH_LIST
  fi
  OPS_TAG="cuda${TORCH_CUDA}_sm$(echo "$TORCH_CUDA_ARCH_LIST" | tr -c '0-9\n' '-' | tr -s '-')"
fi
WHEEL_DIR="${CACHE_ROOT}/wheels/mmcv-${MMCV_VERSION}_torch-${TORCH_VERSION}_${OPS_TAG}_${PY_TAG}"

# ---- 2. mmcv with compiled ops ----------------------------------------------------------
# mmcv's runtime dependencies first (mmengine included): mmcv.ops imports them, so mmcv cannot be
# verified before they are installed. The wheel itself is installed with --no-deps.
say "installing mmcv's runtime dependencies (mmengine, addict, opencv, pyyaml, yapf)"
"${PIP[@]}" -q "mmengine>=0.10.4,<0.11" addict "opencv-python-headless>=4.8" pyyaml yapf packaging \
  "pillow>=10" "numpy>=1.24,<3" || die "could not install mmcv's runtime dependencies"
CHECK=("$PYTHON" "${REPO_ROOT}/tools/check_install.py" --mmcv-version "$MMCV_VERSION" --wheel-dir "$WHEEL_DIR")
[ "$BUILD_CUDA" = 1 ] && CHECK+=(--need-cuda-ops)
# One check; its report is shown unless mmcv simply needs (re)installing (exit 3).
set +e; mmcv_report=$("${CHECK[@]}" --mmcv-only 2>&1); mmcv_rc=$?; set -e
if [ "$mmcv_rc" = 0 ]; then
  say "mmcv ${MMCV_VERSION} with compiled ops already works"
elif [ "$mmcv_rc" != 3 ]; then
  printf '%s\n' "$mmcv_report" >&2
  die "mmcv ${MMCV_VERSION} is installed but cannot be used (see the diagnosis above)"
else
  "${PIP[@]}" -q "setuptools>=64,<81" wheel ninja packaging \
    || die "could not install build tools (setuptools<81, wheel, ninja)"
  cached=$(ls "$WHEEL_DIR"/mmcv-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$cached" ]; then
    say "building mmcv ${MMCV_VERSION} from source against torch ${TORCH_VERSION} (${OPS_TAG}); ~10 min on 2 cores"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    "$PYTHON" -m pip download --no-deps --no-binary :all: --no-build-isolation "mmcv==${MMCV_VERSION}" \
      -d "$work" >/dev/null || die "could not download the mmcv ${MMCV_VERSION} source distribution"
    tar -xzf "$work"/mmcv-"${MMCV_VERSION}".tar.gz -C "$work"
    src="$work/mmcv-${MMCV_VERSION}"
    # Recent torch headers need C++20 while mmcv 2.1.0 hard-codes -std=c++14/c++17; c++20 also
    # compiles against older torch, so the flags are always raised.
    sed -i -E 's/-std=c\+\+1[47]/-std=c++20/g' "$src/setup.py"
    mkdir -p "$WHEEL_DIR"
    export MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)}
    [ "$BUILD_CUDA" = 1 ] && export FORCE_CUDA=1
    (cd "$src" && "$PYTHON" -m pip wheel --no-build-isolation --no-deps --no-cache-dir -w "$work/dist" .) \
      || die "building mmcv ${MMCV_VERSION} failed (see the compiler output above)"
    # Atomic publish: a killed build never leaves a half-written wheel in the cache.
    built=$(ls "$work"/dist/mmcv-*.whl | head -n 1)
    cp "$built" "$WHEEL_DIR/.partial.whl" && mv "$WHEEL_DIR/.partial.whl" "$WHEEL_DIR/$(basename "$built")"
    cached="$WHEEL_DIR/$(basename "$built")"
    say "cached $(basename "$cached") in $WHEEL_DIR"
  else
    say "using cached wheel $cached"
  fi
  "${PIP[@]}" -q --no-deps --force-reinstall --no-cache-dir "$cached" || die "could not install $cached"
  "${CHECK[@]}" --mmcv-only || die "mmcv ${MMCV_VERSION} was installed from $cached but does not work (see the diagnosis above)"
  say "mmcv ${MMCV_VERSION} with compiled ops works"
fi

# ---- 3. the rest of the stack and this project -------------------------------------------
say "installing mmdet 3.3.0, mmengine, evaluation, pool-building and test dependencies, and xpaste-mm (editable)"
"${PIP[@]}" -q -e "${REPO_ROOT}[all,dev]" || die "pip could not install xpaste-mm and its dependencies"

# ---- 4. verify --------------------------------------------------------------------------
"$PYTHON" "${REPO_ROOT}/tools/check_install.py" --mmcv-version "$MMCV_VERSION" --wheel-dir "$WHEEL_DIR" \
  | sed 's/^\[check\]/[install]/' || die "verification failed (see the diagnosis above)"
say "done in $(( $(date +%s) - started )) s"
