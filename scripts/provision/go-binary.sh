#!/usr/bin/env bash
# Build a Go command into $CNINFRA_CACHE/bin/NAME (default cache: ~/.cache/cninfra-sidecar),
# unless it is there already: the stamp $CNINFRA_CACHE/bin/.NAME.version must say STAMP.
# Prints the binary's path on its last line (all else goes to stderr).
#
#   go-binary.sh [options] NAME PACKAGE VERSION [-- ARGS...]
#
#   NAME             the binary's name in $CNINFRA_CACHE/bin
#   PACKAGE          the Go package of the command (helm.sh/helm/v3/cmd/helm)
#   VERSION          the module version to build (v3.22.0)
#   ARGS             run the new binary with these to show what was built (`version`)
#   --ldflags FLAGS  linker flags (default: -s -w)
#   --module DIR     build in a copy of the Go module in DIR (its go.mod pins the
#                    dependencies) instead of `go install PACKAGE@VERSION`
#   --stamp TEXT     what the stamp must say (default: VERSION)
#   --also PACKAGE   one more command of the same module, built by the same `go build`
#                    (it shares the compiled packages) into $CNINFRA_CACHE/bin under
#                    its package's last path element; repeatable (needs --module)
#
# Nothing is written into the git work tree, and a failed build leaves no
# half-written binary behind.
set -euo pipefail

me="go-binary.sh"
usage() { sed -n '5,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

ldflags="-s -w"
module=""
stamp_text=""
also=()
while (( $# )); do
  case "$1" in
    --ldflags) ldflags="${2:?--ldflags needs a value}"; shift 2 ;;
    --module) module="${2:?--module needs a directory}"; shift 2 ;;
    --stamp) stamp_text="${2:?--stamp needs a value}"; shift 2 ;;
    --also) also+=("${2:?--also needs a package}"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    --*) echo "$me: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) break ;;
  esac
done
(( $# >= 3 )) || { usage >&2; exit 2; }
name="$1" package="$2" version="$3"
shift 3
check_args=()
if (( $# )); then
  [[ "$1" == "--" ]] || { echo "$me: unexpected $1 (a check command goes after --)" >&2; exit 2; }
  shift
  check_args=("$@")
fi
stamp_text="${stamp_text:-$version}"
if (( ${#also[@]} )) && [[ -z "$module" ]]; then
  echo "$me: --also needs --module (one go build of one module)" >&2; exit 2
fi

CACHE="${CNINFRA_CACHE:-$HOME/.cache/cninfra-sidecar}"
bin_dir="$CACHE/bin"
out="$bin_dir/$name"
# Every binary of the build, by name: NAME and those of --also.
names=("$name")
for pkg in "${also[@]}"; do names+=("${pkg##*/}"); done

built() {  # $1: a binary name; built, and its stamp says $stamp_text
  [[ -x "$bin_dir/$1" && -f "$bin_dir/.$1.version" \
     && "$(cat "$bin_dir/.$1.version")" == "$stamp_text" ]]
}
all_built=1
for n in "${names[@]}"; do built "$n" || all_built=0; done
if (( all_built )); then
  echo "$me: ${names[*]} $version already built" >&2
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "$me: go is not installed (needed to build $name)" >&2; exit 1; }
mkdir -p "$bin_dir"

echo "$me: building ${names[*]} $version" >&2
start=$(date +%s)
# The binary is built into a temp dir and moved into place only when complete.
tmp_bin="$(mktemp -d "$CACHE/$name-build.XXXXXX")"
trap 'rm -rf "$tmp_bin"' EXIT
# GOTOOLCHAIN=local: use the machine's Go, never download another one.
# CGO off: a static binary, like the upstream release builds.
export GOTOOLCHAIN=local CGO_ENABLED=0
if [[ -n "$module" ]]; then
  # Build from a copy of the module in the cache, so that nothing the go command might
  # write (go.sum updates) ever lands in the git work tree.
  work="$CACHE/build/$name"
  rm -rf "$work"
  mkdir -p "$work"
  cp "$module"/go.mod "$module"/go.sum "$module"/*.go "$work/"
  # One `go build` of several commands (-o a directory): each package is compiled once.
  (cd "$work" && GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$tmp_bin/" \
     "$package" "${also[@]}")
else
  # `go install pkg@version` builds outside any module: it needs no go.mod and writes
  # nothing into the work tree (run from the cache dir, away from any go.mod).
  (cd "$CACHE" && GOBIN="$tmp_bin" go install -trimpath -ldflags "$ldflags" "$package@$version")
fi
for n in "${names[@]}"; do
  mv "$tmp_bin/$n" "$bin_dir/$n"
  echo "$stamp_text" > "$bin_dir/.$n.version"
done
echo "$me: built ${names[*]} in $(( $(date +%s) - start ))s" >&2
if (( ${#check_args[@]} )); then
  "$out" "${check_args[@]}" >&2
fi
echo "$out"
