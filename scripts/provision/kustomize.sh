#!/usr/bin/env bash
# Build kustomize from the sigs.k8s.io/kustomize/kustomize/v5 Go module into
# $CNINFRA_CACHE/bin/kustomize (the packaging tests build manifests/ with it);
# go-binary.sh: a no-op when that version is built. Prints the binary path last.
#
# KUSTOMIZE_VERSION overrides the pinned version (v5.8.1 is the newest that
# builds with Go 1.26; later ones need Go 1.27).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$here/go-binary.sh" \
  kustomize sigs.k8s.io/kustomize/kustomize/v5 "${KUSTOMIZE_VERSION:-v5.8.1}" -- version
