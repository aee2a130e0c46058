#!/usr/bin/env bash
# Installs dependencies, builds a release heraldd and starts one node on
# 127.0.0.1:7400 with its data in ./herald-data (extra arguments go to heraldd).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DHERALD_WERROR=OFF >/dev/null
cmake --build build-release -j"$(nproc)" --target heraldd herald
echo
echo "heraldd starting. In another shell:"
echo "  ./build-release/cli/herald append general 'hello'"
echo "  ./build-release/cli/herald tail general"
echo "  curl -s localhost:7400/v1/status"
echo
exec ./build-release/heraldd/heraldd "$@"
