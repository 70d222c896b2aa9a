#!/bin/sh
# A demonstration build for stories/release-pipeline.yaml: it packs a small tarball instead
# of compiling anything. A real one checks out REPOSITORY at REF and runs the project's
# build — with the same contract:
#
#   release-build-demo.sh REPOSITORY REF VERSION
#       builds; logs to stderr; prints the artifact's absolute path as its last line of
#       stdout (the file name is what the artifact is published as)
set -eu
[ $# -eq 3 ] || { echo "usage: $0 REPOSITORY REF VERSION" >&2; exit 2; }
repository=$1 ref=$2 version=$3
name=$(basename "$repository")
case "$version" in
    ''|*[!A-Za-z0-9._-]*) echo "not a version: $version" >&2; exit 2 ;;
esac
work=$(mktemp -d "${TMPDIR:-/tmp}/release-build.XXXXXX")
mkdir "$work/$name-$version"
printf '%s %s (%s)\n' "$repository" "$version" "$ref" > "$work/$name-$version/VERSION"
echo "built $repository at $ref" > "$work/$name-$version/BUILD"
echo "packing $name-$version" >&2
tar -C "$work" -czf "$work/$name-$version.tar.gz" "$name-$version"
echo "$work/$name-$version.tar.gz"
