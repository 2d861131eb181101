#!/usr/bin/env bash
# Download the optional packages the offline GPU machine lacks (simplejpeg, lmdb, av) as
# CPython 3.12 manylinux x86_64 wheels into .whl/ (gitignored), to be carried there and
# installed by tools/gpu_check.sh (pip --no-index --target /tmp/site).
#
# Run it where pip reaches the package registry:   bash tools/gpu_wheels.sh
# Versions: within requirements.txt's ranges; override with SIMPLEJPEG=... LMDB=... AV=...
# The wheels travel with the working tree, which may hold 64 MiB in all: the sizes are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${WHEEL_DIR:-.whl}
PKGS=("simplejpeg==${SIMPLEJPEG:-1.9.0}" "lmdb==${LMDB:-3.0.0}" "av==${AV:-18.1.0}")
mkdir -p "$DEST"
for spec in "${PKGS[@]}"; do
  name=${spec%%==*}
  # One version of each package: a second one would stop the whole install there.
  find "$DEST" -maxdepth 1 -iname "${name}-*.whl" ! -iname "${name}-${spec##*==}-*" -delete
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$DEST" "$spec"
done
ls -l "$DEST"/*.whl
du -ch "$DEST"/*.whl | tail -1
