#!/bin/bash
# The project's one test command (README, `npm test`, CI): machine setup, clean install,
# typecheck, then every vitest file under test/ (unit and integration; integration needs root).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { echo; echo "=== $* ($(date +%T))"; }

step "test/bed/install.sh"
./test/bed/install.sh

step "npm ci"
# onnxruntime-node's install script downloads a binary from outside the registries: skip it
export ONNXRUNTIME_NODE_INSTALL=skip
npm ci --no-audit --no-fund

step "npm run typecheck"
npm run typecheck

step "vitest run"
npx vitest run
