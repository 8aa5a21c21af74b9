#!/usr/bin/env bash
# test_docs_hops.sh: every `file.c:function` (or `.h`) hop the docs name exists: the file is in
# the tree (a full path, or a file name only one file of the tree has, or one of several where
# exactly one defines the function) and it defines the function (a line starting in column 0
# with `function(` that is not a declaration). docs/architecture.md's "life of a ping" and
# "life of a ride request" are made of these hops: a renamed function or a moved file
# fails here instead of leaving a newcomer at a dead end.
set -uo pipefail
root=${MERIDIAN_SOURCE_DIR:?}
cd "$root" || exit 1
passed=0 failed=0
files=$(find . \( -path ./build -o -path ./node_modules -o -path ./.git -o -path ./k8s \) -prune \
          -o -type f \( -name '*.c' -o -name '*.h' \) -print | sed 's|^\./||')
docs=$(find . \( -path ./build -o -path ./node_modules -o -path ./.git \) -prune -o -name '*.md' -print)
hops=$(grep -ohE '`[A-Za-z0-9_/.-]+\.[ch]:[A-Za-z_][A-Za-z0-9_]*`' $docs | tr -d '`' | sort -u)
[ -n "$hops" ] || { echo "FAILED: no file:function hop found in the docs" >&2; exit 1; }
for hop in $hops; do
  f=${hop%%:*} fn=${hop##*:}
  if [ -f "$f" ]; then cands=$f; else cands=$(grep -E "(^|/)$(printf '%s' "$f" | sed 's/[.]/[.]/g')$" <<<"$files"); fi
  found=0 where=""
  for c in $cands; do
    if grep -qE "^([A-Za-z_][A-Za-z0-9_ \*]*[ \*])?$fn\(" "$c" || grep -qE "^[A-Za-z_].*[ \*]$fn\([^;]*$" "$c"; then
      found=$((found + 1)) where="$where $c"
    fi
  done
  if [ -z "$cands" ]; then
    echo "FAILED: $hop: no file $f in the tree" >&2; failed=$((failed + 1))
  elif [ "$found" -ne 1 ]; then
    echo "FAILED: $hop: defined in $found of the files named $f ($(echo $cands))" >&2
    failed=$((failed + 1))
  else
    passed=$((passed + 1))
  fi
done
echo "$passed hops found, $failed missing"
[ "$failed" -eq 0 ] && [ "$passed" -gt 50 ]
