#!/usr/bin/env bash
# rbuild compose (#16), side by side in one run: `up -d` and `down` of a five-service project
# (busybox `sleep`, `network_mode: none`, `init: true` so a stop is quick for both) with
# `rbuild compose` vs docker-compose 1.29 (Debian's) against the test dockerd, which has no
# bridge here — hence `network_mode: none` for both — and docker-compose 1.29 against
# rbuild's Engine API service (`rbuild system service`) on the same store. Records section
# `compose` of docs/BENCHMARKS.md.
#
#   bench/compose.sh        (as root; builds the release binary unless RBUILD=path is given)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
source scripts/lib/peers.sh
[ "$(id -u)" -eq 0 ] || { echo "bench/compose.sh: needs root" >&2; exit 1; }
peers_install
command -v docker-compose >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
if [ -z "${RBUILD:-}" ]; then
  cargo build --release -q -p rbuild-cli
  RBUILD=$PWD/target/release/rbuild
fi
rbuild=$RBUILD

work=$(mktemp -d /tmp/rbuild-bench-compose.XXXXXX)
svc_pid=
cleanup() {
  (cd "$work/proj" 2>/dev/null && "$rbuild" compose down >/dev/null 2>&1; docker-compose down >/dev/null 2>&1) || true
  [ -n "$svc_pid" ] && kill "$svc_pid" 2>/dev/null && wait "$svc_pid" 2>/dev/null || true
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

mkdir -p "$work/proj"
{
  echo "services:"
  for s in web api worker cache db; do
    printf '  %s:\n    image: bench/busybox:latest\n    command: sleep 3600\n    init: true\n    network_mode: none\n' "$s"
  done
} >"$work/proj/compose.yaml"
cd "$work/proj"

runs=${BENCH_RUNS:-10}
# Each measured command is one `up -d` from nothing (or one `down` of everything); the other
# half of the cycle is hyperfine's --prepare (run before each timing run), outside the timing.
hyperfine -N --warmup 2 --runs "$runs" --export-json "$work/up.json" \
  --prepare "$rbuild compose down" -n "rbuild up" "$rbuild compose up -d"
hyperfine -N --warmup 2 --runs "$runs" --export-json "$work/down.json" \
  --prepare "$rbuild compose up -d" -n "rbuild down" "$rbuild compose down"
hyperfine -N --warmup 1 --runs "$runs" --export-json "$work/dup.json" \
  --prepare "docker-compose down" -n "docker-compose up" "docker-compose up -d"
hyperfine -N --warmup 1 --runs "$runs" --export-json "$work/ddown.json" \
  --prepare "docker-compose up -d" -n "docker-compose down" "docker-compose down"

# docker-compose 1.29 against rbuild's API service, same store.
rb_host=unix://$work/rbuild.sock
"$rbuild" system service --time 0 "$rb_host" &
svc_pid=$!
for _ in $(seq 200); do DOCKER_HOST=$rb_host docker-compose version >/dev/null 2>&1 && [ -S "$work/rbuild.sock" ] && break; sleep 0.05; done
hyperfine -N --warmup 1 --runs "$runs" --export-json "$work/aup.json" \
  --prepare "env DOCKER_HOST=$rb_host docker-compose down" -n "docker-compose up (rbuild API)" "env DOCKER_HOST=$rb_host docker-compose up -d"
hyperfine -N --warmup 1 --runs "$runs" --export-json "$work/adown.json" \
  --prepare "env DOCKER_HOST=$rb_host docker-compose up -d" -n "docker-compose down (rbuild API)" "env DOCKER_HOST=$rb_host docker-compose down"

python3 - "$work" "$work/section.md" "$(bench_machine)" "$runs" "$(uptime | sed 's/.*load average/load average/')" "${RBUILD_BUILD:-release}" <<'PY'
import json, sys
w = sys.argv[1]
med = lambda f: [r["median"] for r in json.load(open(f"{w}/{f}"))["results"]][0]
up, down, dup, ddown = med("up.json"), med("down.json"), med("dup.json"), med("ddown.json")
aup, adown = med("aup.json"), med("adown.json")
out = ["## Compose: `up -d` and `down` of five services", "",
       sys.argv[3] + f" {sys.argv[5]} when it started ({sys.argv[6]} build of rbuild).", "",
       "Five busybox services (`command: sleep 3600`, `init: true`, `network_mode: none`: the test "
       f"dockerd has no bridge); hyperfine, {sys.argv[4]} runs each, the other half of the cycle in "
       "`--prepare`, untimed:", "",
       "| command | rbuild compose | docker-compose 1.29 + dockerd 20.10 | ratio | docker-compose 1.29 + `rbuild system service` |", "|---|---:|---:|---:|---:|",
       f"| `up -d` | {up*1000:.0f} ms | {dup*1000:.0f} ms | {dup/up:.1f}× | {aup*1000:.0f} ms |",
       f"| `down` | {down*1000:.0f} ms | {ddown*1000:.0f} ms | {ddown/down:.1f}× | {adown*1000:.0f} ms |",
       "", "Command lines, in the project directory: `rbuild compose up -d` / `rbuild compose down` "
       "(`RBUILD_ROOT` a fresh store) and `docker-compose up -d` / `docker-compose down` "
       "(`DOCKER_HOST` the test dockerd, then `unix://…/rbuild.sock` of `rbuild system service --time 0` "
       "on rbuild's store); medians. Recorded by `bench/compose.sh`."]
open(sys.argv[2], "w").write("\n".join(out) + "\n")
PY
bench_record compose "$work/section.md"
cat "$work/section.md"
