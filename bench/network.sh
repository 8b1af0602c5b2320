#!/usr/bin/env bash
# Bridge networks (#14), side by side in one run: `run --rm IMAGE true` on the default
# bridge vs `--network none` vs `docker run --rm --network none` (dockerd here has no bridge);
# 50 × (`run -d` on a user network, `rm -f`) vs the same with `--network none` and with docker
# (`--network none`); throughput of a 200 MB download between two containers on one network
# (busybox httpd → wget) and from the host's loopback through the uplink (host-gateway).
# Records section `network` of docs/BENCHMARKS.md.
#
#   bench/network.sh        (as root; builds the release binary if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
source scripts/lib/peers.sh
[ "$(id -u)" -eq 0 ] || { echo "bench/network.sh: needs root" >&2; exit 1; }
peers_install
cargo build --release -q -p rbuild-cli
rbuild=$PWD/target/release/rbuild

work=$(mktemp -d /tmp/rbuild-bench-net.XXXXXX)
hostsrv=
cleanup() {
  [ -n "$hostsrv" ] && kill "$hostsrv" 2>/dev/null || true
  "$rbuild" rm -f srv client >/dev/null 2>&1 || true
  peers_stop || true
  rm -rf "$work"
}
trap cleanup EXIT
peers_start

scripts/busybox-rootfs "$work/rootfs"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
export RBUILD_ROOT=$work/store
"$rbuild" import "$work/rootfs.tar" bench/busybox:latest >/dev/null
docker import "$work/rootfs.tar" bench/busybox:latest >/dev/null
"$rbuild" network create benchnet >/dev/null

runs=${BENCH_RUNS:-30}
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/run.json" \
  -n "bridge" "$rbuild run --rm bench/busybox true" \
  -n "none" "$rbuild run --rm --network none bench/busybox true" \
  -n "docker none" "docker run --rm --network none bench/busybox true"

cat >"$work/cycle-rbuild.sh" <<SH
for i in \$(seq 50); do "$rbuild" run -d --network \$1 --name cyc bench/busybox sleep 100 >/dev/null; "$rbuild" rm -f cyc >/dev/null; done
SH
cat >"$work/cycle-docker.sh" <<SH
for i in \$(seq 50); do docker run -d --network none --name cyc bench/busybox sleep 100 >/dev/null; docker rm -f cyc >/dev/null; done
SH
hyperfine --warmup 1 --runs 3 --export-json "$work/cycle.json" \
  -n "rbuild benchnet" "bash $work/cycle-rbuild.sh benchnet" \
  -n "rbuild none" "bash $work/cycle-rbuild.sh none" \
  -n "docker none" "bash $work/cycle-docker.sh"

# 200 MB between two containers on one network, and from the host's loopback.
mkdir -p "$work/www"
head -c 200000000 /dev/urandom >"$work/www/big"
busybox wget -q -O /dev/null "file://$work/www/big" 2>/dev/null || cat "$work/www/big" >/dev/null
"$rbuild" run -d --network benchnet --name srv -v "$work/www:/www:ro" bench/busybox httpd -f -p 80 -h /www >/dev/null
"$rbuild" run -d --network benchnet --name client --add-host host.docker.internal:host-gateway bench/busybox sleep 3600 >/dev/null
hport=$(free_port)
busybox httpd -f -p "127.0.0.1:$hport" -h "$work/www" & hostsrv=$!
sleep 0.5
"$rbuild" exec client wget -q -O /dev/null http://srv/big
# Timed inside the client (busybox `time`), so `rbuild exec`'s own start is not counted.
tput() {
  local i
  for i in 1 2 3 4 5; do
    "$rbuild" exec client sh -c "time wget -q -O /dev/null $1" 2>&1 | awk '/^real/ {m = $2; sub("m", "", m); t = $3; sub("s", "", t); print m * 60 + t}'
  done | sort -n | sed -n 3p
}
c2c=$(tput http://srv/big)
h2c=$(tput "http://host.docker.internal:$hport/big")
echo "{\"container to container\": $c2c, \"host loopback to container (uplink)\": $h2c}" >"$work/tput.json"

python3 - "$work" "$work/section.md" "$(bench_machine)" "$runs" "$(uptime | sed 's/.*load average/load average/')" <<'PY'
import json, sys
w = sys.argv[1]
med = lambda f: {r["command"]: r["median"] for r in json.load(open(f"{w}/{f}"))["results"]}
run, cyc = med("run.json"), med("cycle.json")
tput = json.load(open(f"{w}/tput.json"))
out = ["## Networks: bridged containers, their start cost and throughput", "",
       sys.argv[3] + f" {sys.argv[5]} when it started.", "",
       f"`run --rm IMAGE true` (hyperfine, {sys.argv[4]} runs after 5 warm-ups; the network hub stays up between runs, as it does for 5 s after its last container):", "",
       "| command | median |", "|---|---:|",
       f"| `rbuild run --rm bench/busybox true` (default bridge) | {run['bridge']*1000:.1f} ms |",
       f"| `rbuild run --rm --network none bench/busybox true` | {run['none']*1000:.1f} ms |",
       f"| `docker run --rm --network none bench/busybox true` (dockerd has no bridge here) | {run['docker none']*1000:.1f} ms |",
       "", f"A bridged run costs {run['bridge']/run['none']:.2f}× a `--network none` run (target ≤ 2×).", "",
       "50 × (`run -d … sleep 100`, `rm -f`), 3 runs:", "",
       "| loop | median | per cycle |", "|---|---:|---:|"]
for k, label in [("rbuild benchnet", "rbuild, user network `benchnet`"), ("rbuild none", "rbuild, `--network none`"), ("docker none", "docker, `--network none`")]:
    out.append(f"| {label} | {cyc[k]:.2f} s | {cyc[k]/50*1000:.0f} ms |")
out += ["", "A 200 MB file fetched with busybox `wget` from busybox `httpd`, timed inside the client (median of 5):", "",
        "| path | median | throughput |", "|---|---:|---:|"]
for k in ["container to container", "host loopback to container (uplink)"]:
    out.append(f"| {k} | {tput[k]:.2f} s | {200/tput[k]:.0f} MB/s |")
out += ["", "Container to container goes over two veths and the bridge in the hub's namespace; "
        "from the host it goes through slirp4netns (user-mode TCP), then the bridge."]
open(sys.argv[2], "w").write("\n".join(out) + "\n")
PY
bench_record network "$work/section.md"
cat "$work/section.md"
