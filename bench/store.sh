#!/usr/bin/env bash
# Store benchmark: save, load, layer create and layer apply of a 400 MB incompressible +
# 200 MB compressible image, side by side with docker and the machine's raw tar/sha256 limit.
# Records the table in docs/BENCHMARKS.md (section "store").
#
#   bench/store.sh            (as root; starts its own dockerd unless DOCKER_HOST is set)
#   RUNS=5 bench/store.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
source scripts/lib/peers.sh

runs=${RUNS:-3}
cargo build --release -q -p rbuild-cli
cargo build --release -q -p rbuild-store --example layer
R=$PWD/target/release/rbuild
L=$PWD/target/release/examples/layer

work=$(mktemp -d /var/tmp/rbuild-bench-store.XXXXXX)
own_peers=0
cleanup() {
  docker rm -f rbuild-bench-c >/dev/null 2>&1 || true
  docker rmi -f bench:big bench:committed bench:imported bench:tiny >/dev/null 2>&1 || true
  [ $own_peers = 1 ] && peers_stop
  rm -rf "$work"
}
trap cleanup EXIT
if [ -z "${DOCKER_HOST:-}" ]; then
  peers_install
  peers_start
  own_peers=1
fi

echo "generating 400 MB incompressible + 200 MB compressible data in $work" >&2
mkdir -p "$work/data/random" "$work/data/text"
for i in $(seq -w 1 40); do head -c 10M /dev/urandom >"$work/data/random/$i"; done
python3 - "$work/data/text" <<'PY'
import sys, os
d = sys.argv[1]
for i in range(20):
    with open(os.path.join(d, f"{i:02}.log"), "w") as f:
        n, size = 0, 0
        while size < 10 * 1024 * 1024:
            line = f"2024-01-01T00:00:{n % 60:02}Z INFO worker={n % 7} request id={n} status=200 bytes={n * 7 % 9973}\n"
            f.write(line); size += len(line); n += 1
PY
tar -C "$work/data" -cf "$work/layer.tar" .
"$R" --root "$work/store" import "$work/layer.tar" bench:big >/dev/null
"$R" --root "$work/store" save -o "$work/rbuild.tar" bench:big
docker load -q -i "$work/rbuild.tar" >/dev/null
# docker's equivalent of creating a layer from a directory: commit a container holding the data.
# (The container uses its own tiny image, so `docker rmi bench:big` really deletes the layers.)
mkdir -p "$work/tiny/etc" && tar -C "$work/tiny" -cf "$work/tiny.tar" .
docker import "$work/tiny.tar" bench:tiny >/dev/null
docker create --name rbuild-bench-c --network none bench:tiny true >/dev/null
docker cp "$work/data" rbuild-bench-c:/data >/dev/null

hf() { # NAME CMD... → json
  local name=$1; shift
  hyperfine --shell bash --style none --runs "$runs" --export-json "$work/$name.json" "$@" >&2
}
hf save \
  --prepare "rm -f $work/out.tar" "$R --root $work/store save -o $work/out.tar bench:big" \
  --prepare "rm -f $work/out.tar" "docker save -o $work/out.tar bench:big" \
  --prepare "rm -f $work/out.tar" "tar -C $work/data -cf - . | sha256sum"
hf load \
  --prepare "rm -rf $work/fresh" "$R --root $work/fresh load -q -i $work/rbuild.tar" \
  --prepare "docker rmi -f bench:big >/dev/null 2>&1 || true" "docker load -q -i $work/rbuild.tar" \
  --prepare "rm -f $work/out.tar" "cat $work/rbuild.tar | tee $work/out.tar | sha256sum"
hf create \
  --prepare "rm -rf $work/lstore" "$L create $work/lstore $work/data" \
  --prepare "docker rmi -f bench:committed >/dev/null 2>&1 || true" "docker commit rbuild-bench-c bench:committed" \
  --prepare "rm -f $work/out.tar" "tar -C $work/data -cf - . | tee $work/out.tar | sha256sum"
hf apply \
  --prepare "rm -rf $work/target" "$L apply $work/layer.tar $work/target" \
  --prepare "docker rmi -f bench:imported >/dev/null 2>&1 || true" "docker import $work/layer.tar bench:imported" \
  --prepare "rm -rf $work/target; mkdir -p $work/target" "tee <$work/layer.tar >(sha256sum >/dev/null) | tar -C $work/target -xf -"

size_mb=$(( $(stat -c %s "$work/layer.tar") / 1000000 ))
body=$work/section.md
{
  echo "## Store: save, load, layer create, layer apply"
  echo
  bench_machine
  echo
  echo "Image: one layer of ${size_mb} MB (400 MB from /dev/urandom + 200 MB of log-like text), uncompressed."
  echo "Medians of $runs runs (hyperfine). \"limit\" is the raw \`tar | sha256sum\` pipeline doing the same I/O;"
  echo "rbuild's blob writes are fsync'd, the raw pipelines' are not. rbuild beats the raw limit mostly"
  echo "because its sha256 uses the CPU's SHA extensions and coreutils' \`sha256sum\` does not, and because"
  echo "\`save\` copies blobs already verified on the way in instead of hashing them again."
  echo "\`layer\` is \`crates/store/examples/layer.rs\` (release); docker has no direct layer create/apply"
  echo "command, so its nearest equivalents are used: \`docker commit\` of a container holding the tree, \`docker import\`."
  echo
  echo "| operation | rbuild | docker | raw limit | rbuild / limit | rbuild / docker |"
  echo "|---|---|---|---|---|---|"
  python3 - "$work" "$size_mb" <<'PY'
import json, sys, statistics
work, size = sys.argv[1], int(sys.argv[2])
rows = [("save", "save"), ("load", "load"), ("layer create", "create"), ("layer apply", "apply")]
for label, f in rows:
    res = json.load(open(f"{work}/{f}.json"))["results"]
    med = [statistics.median(r["times"]) for r in res]
    cell = lambda t: f"{t:.2f} s ({size / t:.0f} MB/s)"
    print(f"| {label} | {cell(med[0])} | {cell(med[1])} | {cell(med[2])} | {med[0] / med[2]:.2f}× | {med[0] / med[1]:.2f}× |")
print()
print("Commands:")
print()
for label, f in rows:
    for who, r in zip(["rbuild", "docker", "limit"], json.load(open(f"{work}/{f}.json"))["results"]):
        print(f"- {label}, {who}: `{r['command']}`")
PY
} >"$body"
sed -i "s|$work|\$WORK|g; s|$R|rbuild|g; s|$L|layer|g" "$body"
cat "$body"
bench_record store "$body"
