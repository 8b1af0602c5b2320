#!/usr/bin/env bash
# `rbuild run --rm IMAGE true` end to end, side by side in one hyperfine run with `runc run`
# of an equivalent bundle (same busybox rootfs, runc's default spec: own namespaces,
# no network) and `docker run --rm --network none` of the same image. The image is
# already in each tool's store. Records the table in docs/BENCHMARKS.md (section run).
#
#   bench/run.sh            (as root; builds the release binary if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
source scripts/lib/peers.sh
[ "$(id -u)" -eq 0 ] || { echo "bench/run.sh: needs root" >&2; exit 1; }
peers_install
cargo build --release -q -p rbuild-cli
rbuild=$PWD/target/release/rbuild

work=$(mktemp -d /tmp/rbuild-bench-run.XXXXXX)
cleanup() { peers_stop || true; rm -rf "$work"; }
trap cleanup EXIT
peers_start

scripts/busybox-rootfs "$work/rootfs"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
export RBUILD_ROOT=$work/store
"$rbuild" import "$work/rootfs.tar" bench/busybox:latest >/dev/null
docker import "$work/rootfs.tar" bench/busybox:latest >/dev/null

# runc: an OCI bundle on a copy of the same rootfs, runc's own default spec without a tty.
mkdir -p "$work/bundle"
cp -a "$work/rootfs" "$work/bundle/rootfs"
(cd "$work/bundle" && runc spec && python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["terminal"] = False
c["process"]["args"] = ["true"]
json.dump(c, open("config.json", "w"))
PY
)

runs=${BENCH_RUNS:-40}
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/run.json" \
  -n "rbuild run --rm" "$rbuild run --rm --network none bench/busybox true" \
  -n "runc run" "runc --root $work/runc run --bundle $work/bundle bench-$$" \
  -n "docker run --rm --network none" "docker run --rm --network none bench/busybox true"

python3 - "$work/run.json" "$work/section.md" "$(bench_machine)" "$runs" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))["results"]
ms = {r["command"]: r["median"] * 1000 for r in data}
rb, runc, docker = ms["rbuild run --rm"], ms["runc run"], ms["docker run --rm --network none"]
rows = [
    ("rbuild run --rm --network none bench/busybox true", rb),
    ("runc run --bundle BUNDLE ID (`true`, runc's default spec)", runc),
    ("docker run --rm --network none bench/busybox true", docker),
]
out = ["## Running a container: `true` in a busybox image", "",
       sys.argv[3] + f" hyperfine, {sys.argv[4]} runs after 5 warm-ups; the image is already in each tool's store.", "",
       "| command | median |", "|---|---:|"]
out += [f"| `{c}` | {m:.1f} ms |" if not c.startswith("runc") else f"| {c} | {m:.1f} ms |" for c, m in rows]
out += ["", f"rbuild is {runc / rb:.1f}× faster than runc and {docker / rb:.1f}× faster than docker "
        "(rbuild's run includes the overlay mount, cgroup creation and removal, docker's seccomp "
        "profile and removing the container directory)."]
open(sys.argv[2], "w").write("\n".join(out) + "\n")
PY
bench_record run "$work/section.md"
cat "$work/section.md"
