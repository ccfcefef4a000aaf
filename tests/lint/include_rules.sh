#!/bin/sh
# The dependency direction of DESIGN.md/STYLE.md, checked on every test run:
#   common ← conf ← {proxy, supervisor};  workers ← supervisor (the launcher);  workers → common only.
# Prints every include that goes the wrong way and exits 1 when there is one.
set -u
root=${1:-$(dirname "$0")/../..}
cd "$root" || exit 2
bad=0
check() {  # folder, forbidden include prefixes...
  dir=$1; shift
  for prefix in "$@"; do
    hits=$(grep -rnE "#include \"$prefix/" "$dir" --include='*.h' --include='*.cc' 2>/dev/null)
    if [ -n "$hits" ]; then
      echo "$dir/ must not include $prefix/:"; echo "$hits"; bad=1
    fi
  done
}
check common conf proxy supervisor workers
check conf proxy supervisor workers
check proxy supervisor workers
check supervisor proxy
check workers conf proxy supervisor
[ $bad = 0 ] && echo "include rules: ok"
exit $bad
