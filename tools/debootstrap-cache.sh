#!/bin/sh
# Makes (once) a Debian 12 minbase tree for the package install test, cached under
# build/ so later runs reuse it. The tree is only ever a read-only lower layer:
# tests overlay it, so it stays clean. Usage: tools/debootstrap-cache.sh DIR
set -eu
dir=$1
[ -e "$dir/.complete" ] && exit 0
mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
rm -rf "$dir" "$dir.tmp"
mkdir -p "$(dirname "$dir")"
debootstrap --variant=minbase bookworm "$dir.tmp" "$mirror" > "$dir.log" 2>&1
mv "$dir.tmp" "$dir"
touch "$dir/.complete"
