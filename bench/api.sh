#!/usr/bin/env bash
# The Engine API service side by side with dockerd, in one run: the same docker CLI commands
# (docker 28 at /usr/local/bin/docker) with DOCKER_HOST at `rbuild system service` and at the
# private dockerd of scripts/lib/peers.sh: `docker run --rm IMAGE true`, `docker ps` with 50
# containers, `docker pull` from the local registry, a classic `docker build` (cached and
# cold), docker-compose 1.29's `up -d` and `down` of a two-service project (network_mode
# none: dockerd here has no bridge, and a compose network would be a bridge in the host's
# namespace); and the time from starting a service on demand to its first answered `_ping`.
# Records docs/BENCHMARKS.md section api.
#
#   bench/api.sh      (as root; builds the release binary if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
source scripts/lib/peers.sh
[ "$(id -u)" -eq 0 ] || { echo "bench/api.sh: needs root" >&2; exit 1; }
peers_install
cargo build --release -q -p rbuild-cli
rbuild=$PWD/target/release/rbuild
docker=/usr/local/bin/docker

work=$(mktemp -d /tmp/rbuild-bench-api.XXXXXX)
export RBUILD_ROOT=$work/store
svc_pid=
cleanup() {
  [ -n "$svc_pid" ] && kill "$svc_pid" 2>/dev/null && wait "$svc_pid" 2>/dev/null || true
  "$rbuild" ps -aq --no-trunc 2>/dev/null | xargs -r "$rbuild" rm -f >/dev/null 2>&1 || true
  DOCKER_HOST=$dk_host $docker ps -aq 2>/dev/null | xargs -r env DOCKER_HOST=$dk_host $docker rm -f >/dev/null 2>&1 || true
  peers_stop || true
  rm -rf "$work"
}
dk_host=
trap cleanup EXIT
peers_start
dk_host=$DOCKER_HOST
rb_host=unix://$work/rbuild.sock
export DOCKER_CONFIG=$work/docker-config

scripts/busybox-rootfs "$work/rootfs"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
"$rbuild" import "$work/rootfs.tar" bench/busybox:latest >/dev/null
DOCKER_HOST=$dk_host $docker import "$work/rootfs.tar" bench/busybox:latest >/dev/null

"$rbuild" system service --time 0 "$rb_host" &
svc_pid=$!
for _ in $(seq 200); do DOCKER_HOST=$rb_host $docker version >/dev/null 2>&1 && break; sleep 0.05; done

runs=${BENCH_RUNS:-20}
rb="env DOCKER_HOST=$rb_host $docker"
dk="env DOCKER_HOST=$dk_host $docker"

# docker run --rm: create, attach, start, wait, remove. dockerd has no bridge here, so both
# run their containers with --network none.
hyperfine -N --warmup 2 --runs "$runs" --export-json "$work/run.json" \
  -n "rbuild" "$rb run --rm --network none bench/busybox true" \
  -n "docker" "$dk run --rm --network none bench/busybox true"

# docker ps with 50 running containers.
for i in $(seq 50); do
  $rb run -d --network none --name "ps-$i" bench/busybox sleep 1000 >/dev/null
  $dk run -d --network none --name "ps-$i" bench/busybox sleep 1000 >/dev/null
done
hyperfine -N --warmup 2 --runs "$runs" --export-json "$work/ps.json" \
  -n "rbuild" "$rb ps" \
  -n "docker" "$dk ps"
"$rbuild" ps -aq --no-trunc | xargs -r "$rbuild" rm -f >/dev/null
$dk ps -aq | xargs -r $dk rm -f >/dev/null

# docker pull of a 3-layer image (busybox plus two small layers) from the local registry.
reg=$RBUILD_TEST_REGISTRY
mkdir -p "$work/ctx"
head -c 4000000 /dev/urandom >"$work/ctx/blob"
printf 'FROM bench/busybox\nCOPY blob /blob\nRUN echo built > /built\n' >"$work/ctx/Dockerfile"
DOCKER_BUILDKIT=0 $rb build -q -t "$reg/bench/pull:1" "$work/ctx" >/dev/null
$rb push "$reg/bench/pull:1" >/dev/null
hyperfine -N --warmup 1 --runs "$runs" --export-json "$work/pull.json" \
  --prepare "$rb rmi -f $reg/bench/pull:1" -n "rbuild" "$rb pull -q $reg/bench/pull:1" \
  --prepare "sh -c '$dk rmi -f $reg/bench/pull:1 >/dev/null 2>&1; $dk image prune -f >/dev/null'" -n "docker" "$dk pull -q $reg/bench/pull:1"

# docker build (classic builder) of the same context: cached, and cold (--no-cache).
build() { echo "env DOCKER_BUILDKIT=0 DOCKER_HOST=$1 $docker build -q --network none $2 -t bench/built $work/ctx"; }
hyperfine -N --warmup 1 --runs "$runs" --export-json "$work/build-cached.json" \
  -n "rbuild" "$(build "$rb_host" "")" \
  -n "docker" "$(build "$dk_host" "")"
hyperfine -N --warmup 1 --runs "$((runs / 2))" --export-json "$work/build-cold.json" \
  -n "rbuild" "$(build "$rb_host" --no-cache)" \
  -n "docker" "$(build "$dk_host" --no-cache)"

# docker-compose 1.29: up -d and down of two services (each ends on SIGTERM, so down does
# not wait for the stop timeout).
mkdir -p "$work/proj"
cat >"$work/proj/docker-compose.yml" <<'YML'
version: "3.8"
services:
  web:
    image: bench/busybox:latest
    command: sh -c 'trap "exit 0" TERM; httpd -f -p 80 -h /tmp & wait'
    network_mode: none
  worker:
    image: bench/busybox:latest
    command: sh -c 'trap "exit 0" TERM; sleep 1000 & wait'
    network_mode: none
    depends_on: [web]
YML
compose() { echo "env DOCKER_HOST=$1 docker-compose -f $work/proj/docker-compose.yml -p benchproj $2"; }
hyperfine -N --warmup 1 --runs "$((runs / 2))" --export-json "$work/compose-up.json" \
  --prepare "$(compose "$rb_host" down)" -n "rbuild" "$(compose "$rb_host" "up -d")" \
  --prepare "$(compose "$dk_host" down)" -n "docker" "$(compose "$dk_host" "up -d")"
hyperfine -N --warmup 1 --runs "$((runs / 2))" --export-json "$work/compose-down.json" \
  --prepare "$(compose "$rb_host" "up -d")" -n "rbuild" "$(compose "$rb_host" down)" \
  --prepare "$(compose "$dk_host" "up -d")" -n "docker" "$(compose "$dk_host" down)"

kill "$svc_pid"; wait "$svc_pid" 2>/dev/null || true; svc_pid=

# A service started on demand: from exec to the first answered GET /_ping (median of N).
python3 - "$rbuild" "$work" "$runs" >"$work/ping.txt" <<'PY'
import os, socket, statistics, subprocess, sys, time
rbuild, work, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
sock = f"{work}/ping.sock"
times = []
for _ in range(runs):
    t0 = time.perf_counter()
    p = subprocess.Popen([rbuild, "system", "service", "--time", "0", f"unix://{sock}"])
    while True:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if s.recv(64).startswith(b"HTTP/1.1 200"):
                break
        except OSError:
            time.sleep(0.0005)
        finally:
            s.close()
    times.append((time.perf_counter() - t0) * 1000)
    p.terminate(); p.wait()
print(f"{statistics.median(times):.1f} {min(times):.1f} {max(times):.1f}")
PY

load=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$work" "$work/section.md" "$(bench_machine) Load average at the end: $load." "$runs" "$(cat "$work/ping.txt")" <<'PY'
import json, sys
work, out_path, machine, runs, ping = sys.argv[1:6]
def med(name):
    return {r["command"]: r["median"] * 1000 for r in json.load(open(f"{work}/{name}.json"))["results"]}
rows = [("`docker run --rm busybox true`", "run"), ("`docker ps` with 50 running containers", "ps"),
        ("`docker pull` of a 3-layer image (6 MB) from the local registry", "pull"),
        ("`docker build` (classic builder), cached", "build-cached"),
        ("`docker build --no-cache` (classic builder: COPY 4 MB, RUN)", "build-cold"),
        ("`docker-compose up -d` (1.29; two services, network_mode none)", "compose-up"),
        ("`docker-compose down` (1.29; the same project)", "compose-down")]
p_med, p_min, p_max = ping.split()
out = ["## Engine API service: the docker CLI against rbuild and against dockerd", "",
       machine + f" hyperfine, {runs} runs per row after warm-ups (cold builds and compose: {int(runs) // 2}); the same docker 28 CLI "
       "with DOCKER_HOST at `rbuild system service` and at the private `dockerd --bridge=none` of scripts/lib/peers.sh "
       "(containers and builds of both with `--network none`), and Debian's docker-compose 1.29.", "",
       "| command | through rbuild | through dockerd | rbuild faster |", "|---|---:|---:|---:|"]
for label, f in rows:
    m = med(f)
    rb, dk = m["rbuild"], m["docker"]
    out.append(f"| {label} | {rb:.1f} ms | {dk:.1f} ms | {dk / rb:.2f}× |")
out += ["", f"A service started on demand (`rbuild system service unix://…`) answers its first `GET /_ping` "
        f"{p_med} ms after it is started (median of {runs}; min {p_min}, max {p_max} ms); the target is 20 ms.", "",
        "The docker-compose rows are mostly docker-compose itself (Python's start-up, its thread pool's polling): "
        "traced with strace, the API calls of an `up -d` take about 0.1 s of its 1 s through rbuild."]
open(out_path, "w").write("\n".join(out) + "\n")
PY
bench_record api "$work/section.md"
cat "$work/section.md"
