#!/usr/bin/env bash
# Build the container images of the single-node cluster (tests/e2e) without a
# registry, with buildah (storage in $CNINFRA_CACHE/containers):
#
#   localhost/cninfra-python:bookworm-KEY  the Dockerfile's PYTHON_IMAGE: Debian bookworm
#                                          (mmdebstrap, minbase) with python3.11 and venv,
#                                          the host's CA bundle and pip config (pip in the
#                                          build reaches PyPI only the way the host does)
#   localhost/cninfra-sidecar:HASH         the project's Dockerfile, tagged by a hash of its
#                                          build context: a code change makes a new image,
#                                          and `--layers` rebuilds only what follows it
#   docker.io/nginxinc/nginx-unprivileged:1.27-alpine
#                                          a stand-in for the chart's demo workload image
#                                          (same name, so the chart's defaults work)
#   localhost/cninfra-pause:1.0            the pod sandbox image: a static Go binary
#
# Each is exported as a docker-archive into $CNINFRA_CACHE/images for
# `ctr images import`. Idempotent and cheap when nothing changed (a hash of the
# inputs). Prints, on its last line, a JSON object: {"sidecar": {"ref": ..., "id": ...,
# "archive": ...}, "workload": ..., "pause": ...}.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
CACHE="${CNINFRA_CACHE:-$HOME/.cache/cninfra-sidecar}"
out="$CACHE/images"
mkdir -p "$out"
me="images.sh"

for tool in buildah mmdebstrap go sha256sum; do
  command -v "$tool" >/dev/null || {
    echo "$me: $tool is not installed (scripts/provision/node.sh installs the node's tools)" >&2
    exit 1
  }
done

# One build at a time in the shared cache (two worktrees' `make test`).
exec 9>"$out/.lock"
flock 9

# buildah writes a blob-info cache to /var/lib/containers/cache whatever its --root:
# remove what it creates there, so that the machine is left as it was found.
created=()
for d in /var/lib/containers /var/lib/containers/cache; do
  [[ -e "$d" ]] || created=("$d" "${created[@]}")
done
cleanup() {
  for d in "${created[@]}"; do rm -rf "$d"; done
}
trap cleanup EXIT

bah() {
  buildah --root "$CACHE/containers/storage" --runroot "$CACHE/containers/run" \
    --storage-driver overlay "$@"
}
has_image() { bah images --quiet "$1" >/dev/null 2>&1; }
image_id() { bah inspect --type image --format '{{.FromImageID}}' "$1"; }

# export NAME REF: $out/NAME.tar holds REF as a docker-archive, remade when REF's
# image ID changed. Prints the JSON entry.
export_image() {
  local name="$1" ref="$2" id
  id="$(image_id "$ref")"
  if [[ ! -f "$out/$name.tar" || "$(cat "$out/$name.id" 2>/dev/null)" != "$id" ]]; then
    rm -f "$out/$name.tar" "$out/$name.id"
    bah push --quiet "$ref" "docker-archive:$out/$name.tar.tmp:$ref" >&2
    mv "$out/$name.tar.tmp" "$out/$name.tar"
    echo "$id" > "$out/$name.id"
  fi
  printf '"%s": {"ref": "%s", "id": "%s", "archive": "%s"}' "$name" "$ref" "$id" "$out/$name.tar"
}

# -- the base image --------------------------------------------------------------
suite=bookworm
base_packages="python3.11,python3-venv,python-is-python3,passwd"
# The host's pip configuration, as one file: `pip config list` shows the settings
# of every file and PIP_* variable ("global.cert='...'", ":env:.cert='...'"); a
# variable wins over a file, as in pip.
pip_conf="$(python3 -m pip config list 2>/dev/null | awk '
  match($0, /^(:env:|global)\.[^=]+=/) {
    key = substr($0, 1, RLENGTH - 1); sub(/^[^.]*\./, "", key)
    value = substr($0, RLENGTH + 1); gsub(/^\047|\047$/, "", value)
    if (!(key in seen) || $0 ~ /^:env:/) { seen[key] = value }
  }
  END { for (k in seen) print k " = " seen[k] }' | sort || true)"
# A local find-links directory is not in the image (pip would warn at every step).
pip_conf="$(grep -v '^find-links = /' <<<"$pip_conf" || true)"
ca_bundle=/etc/ssl/certs/ca-certificates.crt
base_key="$(
  {
    echo "$suite $base_packages"
    echo "$pip_conf"
    cat "$ca_bundle"
    sed -n '/^# -- the base image/,/^# -- the sidecar image/p' "${BASH_SOURCE[0]}"
  } | sha256sum | cut -c1-12
)"
base_ref="localhost/cninfra-python:$suite-$base_key"
if has_image "$base_ref"; then
  echo "$me: base image $base_ref already built" >&2
else
  echo "$me: building the base image $base_ref with mmdebstrap" >&2
  start=$(date +%s)
  work="$(mktemp -d "$CACHE/base-build.XXXXXX")"
  printf '[global]\n%s\n' "$pip_conf" > "$work/pip.conf"
  # The host's apt sources (a mirror it reaches); without one mmdebstrap reads stdin.
  sources=()
  [[ -f /etc/apt/sources.list.d/debian.sources ]] && sources=(/etc/apt/sources.list.d/debian.sources)
  # Docs, man pages and locales are left out: they only make the image bigger.
  mmdebstrap --quiet --variant=minbase --format=tar --include="$base_packages" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook="mkdir -p \"\$1/etc/ssl/certs\" && cp $ca_bundle \"\$1/etc/ssl/certs/\"" \
    --customize-hook="cp $work/pip.conf \"\$1/etc/pip.conf\"" \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$suite" "$work/rootfs.tar" "${sources[@]}" </dev/null >&2
  ctr="$(bah from --quiet scratch)"
  bah add --quiet "$ctr" "$work/rootfs.tar" / >&2
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 "$ctr" >&2
  bah commit --quiet --rm "$ctr" "$base_ref" >&2
  rm -rf "$work"
  # The base images of older keys (their layers stay while an image still uses them).
  # (`|| true`: on a fresh machine there is none, and grep's exit 1 would end the script.)
  { bah images --format '{{.Name}}:{{.Tag}}' | grep '^localhost/cninfra-python:' \
    | grep -vxF "$base_ref" || true; } | while read -r old; do bah rmi "$old" >/dev/null 2>&1 || true; done
  echo "$me: base image built in $(( $(date +%s) - start ))s" >&2
fi

# -- the sidecar image -----------------------------------------------------------
# The build context is what .dockerignore lets through; its hash names the image.
context_hash="$(
  cd "$repo"
  {
    echo "$base_ref"
    find Dockerfile .dockerignore pyproject.toml README.md sidecar examples/config -type f \
      ! -path '*/__pycache__/*' ! -name '*.py[cod]' -print0 | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-12
)"
sidecar_ref="localhost/cninfra-sidecar:$context_hash"
if has_image "$sidecar_ref"; then
  echo "$me: sidecar image $sidecar_ref already built" >&2
else
  echo "$me: building $sidecar_ref from the Dockerfile" >&2
  start=$(date +%s)
  commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  bah bud --quiet --isolation chroot --network host --layers --pull=never \
    --build-arg "PYTHON_IMAGE=$base_ref" \
    --build-arg "SIDECAR_COMMIT_HASH=$commit" \
    --build-arg "SIDECAR_BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    -t "$sidecar_ref" -f "$repo/Dockerfile" "$repo" >&2
  echo "$me: sidecar image built in $(( $(date +%s) - start ))s" >&2
  # Older builds of the sidecar: keep the newest three (other worktrees may use them).
  bah images --format '{{.CreatedAtRaw}}|{{.Name}}:{{.Tag}}' \
    | grep '|localhost/cninfra-sidecar:' | sort -r | tail -n +4 | cut -d'|' -f2 \
    | while read -r old; do
      bah rmi "$old" >/dev/null 2>&1 || true
      rm -f "$out/sidecar-${old##*:}.tar" "$out/sidecar-${old##*:}.id"
    done
fi

# -- the workload stand-in -------------------------------------------------------
workload_ref="docker.io/nginxinc/nginx-unprivileged:1.27-alpine"
workload_key="$( { echo "$base_ref"; cat "$here"/images/demo-workload/*; } | sha256sum | cut -c1-12)"
workload_tag="localhost/cninfra-demo-workload:$workload_key"
if ! has_image "$workload_tag"; then
  echo "$me: building the demo workload stand-in" >&2
  bah bud --quiet --isolation chroot --network host --layers --pull=never \
    --build-arg "PYTHON_IMAGE=$base_ref" -t "$workload_tag" \
    -f "$here/images/demo-workload/Containerfile" "$here/images/demo-workload" >&2
  bah tag "$workload_tag" "$workload_ref"
fi

# -- the pause image -------------------------------------------------------------
pause_ref="localhost/cninfra-pause:1.0"
pause_key="$(cat "$here"/images/pause/* | sha256sum | cut -c1-12)"
pause_tag="localhost/cninfra-pause:src-$pause_key"
if ! has_image "$pause_tag"; then
  echo "$me: building the pause image" >&2
  work="$(mktemp -d "$CACHE/pause-build.XXXXXX")"
  cp "$here"/images/pause/* "$work/"
  (cd "$work" && GOTOOLCHAIN=local CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o pause .)
  ctr="$(bah from --quiet scratch)"
  bah copy --quiet "$ctr" "$work/pause" /pause >&2
  bah config --entrypoint '["/pause"]' --cmd '' --user 65535:65535 "$ctr" >&2
  bah commit --quiet --rm "$ctr" "$pause_tag" >&2
  bah tag "$pause_tag" "$pause_ref"
  rm -rf "$work"
fi

echo "{$(export_image "sidecar-$context_hash" "$sidecar_ref"), $(export_image workload "$workload_ref"), $(export_image pause "$pause_ref")}" \
  | sed 's/"sidecar-[0-9a-f]*": /"sidecar": /'
