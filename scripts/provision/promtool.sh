#!/usr/bin/env bash
# Build promtool from the github.com/prometheus/prometheus Go module into
# $CNINFRA_CACHE/bin/promtool (go-binary.sh: a no-op when that version is built).
# The monitoring tests check the chart's PrometheusRule with it (`promtool check rules`,
# `promtool test rules`). Prints the binary path last.
#
# PROMETHEUS_VERSION overrides the pinned module version (v0.316.0 is Prometheus 3.16.0).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="${PROMETHEUS_VERSION:-v0.316.0}"
# The module's v0.MAJORMINOR.PATCH is Prometheus's MAJOR.MINOR.PATCH (v0.316.0: 3.16.0).
minor="${version#v0.}"; minor="${minor%%.*}"
release="${minor:0:1}.$((10#${minor:1})).${version##*.}"

# remove_all_sd leaves out every service-discovery plugin (cloud SDKs, the Kubernetes
# client): promtool's rule checks need none of them and the build is a fraction of the size.
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-tags=remove_all_sd"
ldflags="-s -w -X github.com/prometheus/common/version.Version=$release"
ldflags+=" -X github.com/prometheus/common/version.Branch=HEAD"
exec bash "$here/go-binary.sh" --ldflags "$ldflags" --stamp "$version+remove_all_sd" \
  promtool github.com/prometheus/prometheus/cmd/promtool "$version" -- --version
