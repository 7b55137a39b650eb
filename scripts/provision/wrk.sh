#!/usr/bin/env bash
# wrk (the HTTP load generator of `make bench`) from Debian's apt: a no-op when a wrk is
# on PATH. Prints the binary path last. Needs root or sudo the first time.
set -euo pipefail

if ! command -v wrk >/dev/null; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "wrk: not installed, and apt-get needs root" >&2; exit 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends wrk >&2 \
    || { $sudo apt-get update >&2 && $sudo apt-get install -y --no-install-recommends wrk >&2; }
fi
command -v wrk
