#!/usr/bin/env bash
# lib/ never calls an interposed name: inside the preloaded library such a
# call would bind to the shim's own hook (re-entering it) instead of libc.
# Fails listing every symbol the pool core leaves undefined that the shim
# also exports.  Usage: lib_calls_no_hook.sh libpoolcore.a exports.map
set -euo pipefail
core=$1 map=$2
hooks=$(grep -oE '[A-Za-z_0-9]+;' "$map" | tr -d ';' | sort -u)
undef=$(nm -u "$core" | awk '{ print $2 }' | sort -u)
bad=$(comm -12 <(echo "$undef") <(echo "$hooks"))
if [ -n "$bad" ]; then
	echo "lib/ calls interposed names: $bad"
	echo "lint: 0 passed, 1 failed"
	exit 1
fi
echo "lint: 1 passed, 0 failed"
