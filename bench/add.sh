#!/usr/bin/env bash
# ADD-of-an-archive benchmark: rbuild's extraction (builder::archive, through the store's
# safe engine) against GNU tar extracting the same archive, for each compression docker
# detects. 100 MB of incompressible files plus 2,000 small text files.
# Records the table in docs/BENCHMARKS.md (section "add").
#
#   bench/add.sh            (as root, so both keep owners)
#   RUNS=5 bench/add.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

runs=${RUNS:-3}
cargo build --release -q -p rbuild-builder --example add_extract
X=$PWD/target/release/examples/add_extract

work=$(mktemp -d /var/tmp/rbuild-bench-add.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/big" "$work/src/small"
for i in $(seq 1 100); do head -c 1048576 /dev/urandom >"$work/src/big/f$i"; done
for i in $(seq 1 2000); do seq "$i" $((i + 200)) >"$work/src/small/s$i.txt"; done
tar -C "$work/src" -cf "$work/a.tar" .
gzip -1 -c "$work/a.tar" >"$work/a.tar.gz"
bzip2 -1 -c "$work/a.tar" >"$work/a.tar.bz2"
xz -1 -T2 -c "$work/a.tar" >"$work/a.tar.xz"
zstd -q -3 -c "$work/a.tar" >"$work/a.tar.zst"

out=$work/table.md
{
  bench_machine
  echo
  echo "Extracting one archive into an empty directory (\`bench/add.sh\`, hyperfine, $runs runs, median)."
  echo "rbuild: \`add_extract\` (builder::archive::extract: sniff, decompress, the store's confined"
  echo "engine with docker's archive rules). tar: GNU tar with the matching decompressor flag."
  echo
  echo "| archive | size | rbuild | GNU tar | rbuild / tar |"
  echo "|---|---|---|---|---|"
} >"$out"
for f in a.tar a.tar.gz a.tar.bz2 a.tar.xz a.tar.zst; do
  case $f in
    *.gz) flag=-z ;; *.bz2) flag=-j ;; *.xz) flag=-J ;; *.zst) flag=--zstd ;; *) flag= ;;
  esac
  hyperfine -N --runs "$runs" --export-json "$work/h.json" \
    --prepare "sh -c 'rm -rf $work/d && mkdir $work/d'" \
    -n rbuild "$X $work/$f $work/d" \
    -n tar "tar $flag -xf $work/$f -C $work/d" >/dev/null
  python3 - "$work/h.json" "$f" "$(du -h "$work/$f" | cut -f1)" >>"$out" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
print(f"| {sys.argv[2]} | {sys.argv[3]} | {r['rbuild']:.2f} s | {r['tar']:.2f} s | {r['rbuild'] / r['tar']:.2f}x |")
PY
done
cat "$out"
bench_record add "$out"
