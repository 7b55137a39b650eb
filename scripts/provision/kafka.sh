#!/usr/bin/env bash
# Fetch the Apache Kafka broker jars (org.apache.kafka:kafka_2.13 and its
# runtime dependencies, plus a Log4j 2 binding) from Maven Central into
# $CACHE/kafka-<version>/libs. Idempotent: does nothing when that directory is
# complete. Prints the libs directory on its last line.
#
# KAFKA_VERSION overrides the version pinned in scripts/provision/kafka/pom.xml.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${CNINFRA_CACHE:-$HOME/.cache/cninfra-sidecar}"
pom="$here/kafka/pom.xml"

default_version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom" | head -n1)"
version="${KAFKA_VERSION:-$default_version}"
if [[ -z "$version" ]]; then
  echo "kafka.sh: cannot read kafka.version from $pom" >&2
  exit 1
fi

dest="$CACHE/kafka-$version"
libs="$dest/libs"
# The marker is written last, so a half-finished download is never mistaken
# for a complete one.
marker="$dest/.complete"

if [[ -f "$marker" && -f "$libs/kafka_2.13-$version.jar" ]]; then
  echo "kafka.sh: Kafka $version jars already in $libs" >&2
  echo "$libs"
  exit 0
fi

command -v mvn >/dev/null || { echo "kafka.sh: mvn is not installed" >&2; exit 1; }
command -v java >/dev/null || { echo "kafka.sh: java is not installed" >&2; exit 1; }

echo "kafka.sh: fetching Kafka $version jars with Maven" >&2
start=$(date +%s)
tmp="$dest/libs.tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
# -B: batch mode (no colours/progress); the project is pom-only, so this only
# resolves and copies. includeScope=runtime keeps test/provided jars out.
# Maven runs from the cache dir, so that it writes nothing into the work tree
# (copy-dependencies writes only to outputDirectory). Its output goes to
# stderr, so that stdout carries only the libs path.
(
  cd "$dest"
  mvn -B -q -Dstyle.color=never -f "$pom" \
    -Dkafka.version="$version" \
    dependency:copy-dependencies \
    -DincludeScope=runtime \
    -DoutputDirectory="$tmp" >&2
)
if [[ ! -f "$tmp/kafka_2.13-$version.jar" ]]; then
  echo "kafka.sh: Maven finished but kafka_2.13-$version.jar is missing from $tmp" >&2
  exit 1
fi
rm -rf "$libs"
mv "$tmp" "$libs"
touch "$marker"
echo "kafka.sh: $(ls "$libs" | wc -l) jars in $(( $(date +%s) - start ))s" >&2
echo "$libs"
