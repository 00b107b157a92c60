#!/usr/bin/env bash
# Downloads the full MNIST (60,000 + 10,000 digits) into DIR (default: data/mnist), from the
# usual mirrors, and verifies each file's MD5 checksum before moving it into place: a file is
# there complete and verified, or not at all. Offline, it fails with a message saying so.
#   scripts/download_mnist.sh [DIR]
#   build/examples/mnist_mlp --data DIR
# MNIST_MIRRORS (space-separated base URLs) overrides the mirror list.
set -euo pipefail

dir=${1:-"$(dirname "$0")/../data/mnist"}
mirrors=${MNIST_MIRRORS:-"https://ossci-datasets.s3.amazonaws.com/mnist/ https://storage.googleapis.com/cvdf-datasets/mnist/ http://yann.lecun.com/exdb/mnist/"}
files=(
  "train-images-idx3-ubyte.gz f68b3c2dcbeaaa9fbdd348bbdeb94873"
  "train-labels-idx1-ubyte.gz d53e105ee54ea40749a09fcbcd1e9432"
  "t10k-images-idx3-ubyte.gz 9fb629c4189551a2d022fa330f9573f3"
  "t10k-labels-idx1-ubyte.gz ec29112dd5afa0611ce80d1b7f02629c"
)

if command -v curl >/dev/null; then
  fetch() { curl --fail --silent --show-error --location --connect-timeout 10 --max-time 300 -o "$2" "$1"; }
elif command -v wget >/dev/null; then
  fetch() { wget --quiet --timeout=10 -O "$2" "$1"; }
else
  echo "download_mnist.sh: needs curl or wget (apt-get install -y curl)" >&2
  exit 1
fi

mkdir -p "$dir"
for entry in "${files[@]}"; do
  read -r name md5 <<<"$entry"
  if [ -f "$dir/$name" ] && [ "$(md5sum <"$dir/$name" | cut -d' ' -f1)" = "$md5" ]; then
    echo "$name: already there, checksum OK"
    continue
  fi
  partial="$dir/.$name.partial"
  done=0
  for mirror in $mirrors; do
    if fetch "$mirror$name" "$partial" 2>/dev/null; then
      actual=$(md5sum <"$partial" | cut -d' ' -f1)
      if [ "$actual" = "$md5" ]; then
        mv "$partial" "$dir/$name"
        echo "$name: downloaded from $mirror, checksum OK"
        done=1
        break
      fi
      echo "$name: checksum mismatch from $mirror (expected $md5, got $actual); trying the next mirror" >&2
    fi
    rm -f "$partial"
  done
  if [ "$done" != 1 ]; then
    rm -f "$partial"
    echo "download_mnist.sh: could not download $name from any mirror ($mirrors)." >&2
    echo "Offline? The project ships 10,000 MNIST digits in data/mnist-10k (the default of" >&2
    echo "mnist_mlp), and Debian's dataset-fashion-mnist package has Fashion-MNIST in" >&2
    echo "/usr/share/datasets/fashion-mnist." >&2
    exit 1
  fi
done
echo "MNIST is in $dir: build/examples/mnist_mlp --data $dir"
