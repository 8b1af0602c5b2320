#!/usr/bin/env bash
# Container lifecycle side by side with docker (the private dockerd of scripts/lib/peers.sh)
# in one run: each operation alone (run -d, stop, rm, exec true) with hyperfine, 50
# containers through run -d + stop + rm, and port-forward throughput with wrk against
# busybox httpd. Records docs/BENCHMARKS.md section lifecycle.
#
#   bench/lifecycle.sh      (as root; builds the release binary if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
source scripts/lib/peers.sh
[ "$(id -u)" -eq 0 ] || { echo "bench/lifecycle.sh: needs root" >&2; exit 1; }
peers_install
command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
cargo build --release -q -p rbuild-cli
rbuild=$PWD/target/release/rbuild

work=$(mktemp -d /tmp/rbuild-bench-lifecycle.XXXXXX)
export RBUILD_ROOT=$work/store
cleanup() {
  "$rbuild" ps -aq --no-trunc 2>/dev/null | xargs -r "$rbuild" rm -f >/dev/null 2>&1 || true
  docker ps -aq 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1 || true
  peers_stop || true
  rm -rf "$work"
}
trap cleanup EXIT
peers_start

scripts/busybox-rootfs "$work/rootfs"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
"$rbuild" import "$work/rootfs.tar" bench/busybox:latest >/dev/null
docker import "$work/rootfs.tar" bench/busybox:latest >/dev/null

# A container that ends at once on SIGTERM (a trapped signal interrupts `wait`).
idle=(sh -c 'trap "exit 0" TERM; sleep 1000 & wait')
q() { printf '%q ' "$@"; }
rb_run="$rbuild run -d --network none --name bench-c bench/busybox $(q "${idle[@]}")"
dk_run="docker run -d --network none --name bench-c bench/busybox $(q "${idle[@]}")"
rb_rm="$rbuild rm -f bench-c >/dev/null 2>&1 || true"
dk_rm="docker rm -f bench-c >/dev/null 2>&1 || true"
runs=${BENCH_RUNS:-20}
hf() { hyperfine -N --warmup 2 --runs "$runs" --export-json "$@"; }

hyperfine --warmup 2 --runs "$runs" --export-json "$work/run.json" \
  --prepare "$rb_rm" -n "rbuild run -d" "$rb_run" \
  --prepare "$dk_rm" -n "docker run -d" "$dk_run"
hyperfine --warmup 2 --runs "$runs" --export-json "$work/stop.json" \
  --prepare "$rb_rm; $rb_run" -n "rbuild stop" "$rbuild stop bench-c" \
  --prepare "$dk_rm; $dk_run" -n "docker stop" "docker stop bench-c"
hyperfine --warmup 2 --runs "$runs" --export-json "$work/rm.json" \
  --prepare "$rb_rm; $rb_run; $rbuild stop bench-c" -n "rbuild rm" "$rbuild rm bench-c" \
  --prepare "$dk_rm; $dk_run; docker stop bench-c" -n "docker rm" "docker rm bench-c"
eval "$rb_rm"; eval "$dk_rm"
eval "$rb_run" >/dev/null; eval "$dk_run" >/dev/null
hf "$work/exec.json" \
  -n "rbuild exec" "$rbuild exec bench-c true" \
  -n "docker exec" "docker exec bench-c true"
eval "$rb_rm"; eval "$dk_rm"

# 50 containers: run -d all, then stop all, then rm all (one command per container, as a user would).
cat >"$work/fifty.sh" <<SH
#!/bin/sh
set -e
tool=\$1; shift
ids=""
for i in \$(seq 50); do ids="\$ids \$(\$tool run -d "\$@" bench/busybox sh -c 'trap "exit 0" TERM; sleep 1000 & wait')"; done
for id in \$ids; do \$tool stop \$id >/dev/null; done
for id in \$ids; do \$tool rm \$id >/dev/null; done
SH
chmod +x "$work/fifty.sh"
hyperfine --runs 3 --export-json "$work/fifty.json" \
  -n "rbuild" "$work/fifty.sh $rbuild --network none" \
  -n "docker" "$work/fifty.sh docker --network none"

# Port forwarding: busybox httpd serving a 4 KiB file; wrk from the host through rbuild's
# forwarder, and from inside the container's network namespace straight to httpd.
mkdir -p "$work/www"; head -c 4096 /dev/urandom | base64 -w0 | head -c 4096 >"$work/www/index.html"
"$rbuild" run -d --network none --name bench-web -p 127.0.0.1:0:8080 -v "$work/www:/www:ro" bench/busybox httpd -f -p 8080 -h /www >/dev/null
port=$("$rbuild" port bench-web 8080 | cut -d: -f2)
pid=$("$rbuild" inspect bench-web | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["State"]["Pid"])')
for i in $(seq 100); do curl -fs "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.05; done
wrk_rps() { wrk -t2 -c16 -d${BENCH_WRK_SECS:-8}s "$@" | awk '/Requests\/sec/ {print $2}'; }
rb_rps=$(wrk_rps "http://127.0.0.1:$port/index.html")
direct_rps=$(nsenter --net="/proc/$pid/ns/net" wrk -t2 -c16 -d${BENCH_WRK_SECS:-8}s http://127.0.0.1:8080/index.html | awk '/Requests\/sec/ {print $2}')
# docker's userland proxy: this dockerd runs with --bridge=none (no bridge or private addresses
# may be made here), so `docker run -p` has nothing to publish from. The proxy is the binary
# dockerd starts for each published port, so it runs here directly as dockerd would start it,
# relaying to the same busybox httpd (in a container on the host network, port $hport).
hport=$(free_port)
dport=$(free_port)
"$rbuild" run -d --name bench-web-host --network host -v "$work/www:/www:ro" bench/busybox httpd -f -p "127.0.0.1:$hport" -h /www >/dev/null
proxy=$(command -v docker-proxy || echo /usr/sbin/docker-proxy)
# dockerd hands the proxy a pipe on fd 3 to report its start on (and the proxy closes fd 3
# after): without one, fd 3 would be its own listening socket.
"$proxy" -proto tcp -host-ip 127.0.0.1 -host-port "$dport" -container-ip 127.0.0.1 -container-port "$hport" 3>/dev/null &
proxy_pid=$!
for i in $(seq 100); do curl -fs "http://127.0.0.1:$dport/" >/dev/null 2>&1 && break; sleep 0.05; done
docker_rps=$(wrk_rps "http://127.0.0.1:$dport/index.html")
kill "$proxy_pid"; wait "$proxy_pid" 2>/dev/null || true
"$rbuild" rm -f bench-web-host >/dev/null
docker_publish="$proxy -proto tcp -host-ip 127.0.0.1 -host-port PORT -container-ip 127.0.0.1 -container-port HTTPD_PORT"

load=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$work" "$work/section.md" "$(bench_machine) Load average at the end: $load." "$runs" "$rb_rps" "$direct_rps" "$docker_publish" "$docker_rps" <<'PY'
import json, sys
work, out_path, machine, runs, rb_rps, direct_rps, docker_err, docker_rps = sys.argv[1:9]
def med(name):
    return {r["command"]: r["median"] * 1000 for r in json.load(open(f"{work}/{name}.json"))["results"]}
rows = []
for op, file, name in [("run -d", "run", "run -d"), ("stop", "stop", "stop"), ("rm", "rm", "rm"),
                       ("exec CONTAINER true", "exec", "exec")]:
    m = med(file)
    rows.append((op, m[f"rbuild {name}"], m[f"docker {name}"]))
fifty = med("fifty")
out = ["## Container lifecycle: detached containers, exec, published ports", "",
       machine + f" hyperfine, {runs} runs per operation after 2 warm-ups (the 50-container loop: 3 runs); "
       "docker is the private `dockerd --bridge=none` of scripts/lib/peers.sh, its containers with `--network none`. "
       "The container is busybox `sh -c 'trap \"exit 0\" TERM; sleep 1000 & wait'`, so stop measures the tools, not a stop timeout.", "",
       "| operation | rbuild | docker | rbuild faster |", "|---|---:|---:|---:|"]
for op, rb, dk in rows:
    out.append(f"| `{op}` | {rb:.1f} ms | {dk:.1f} ms | {dk / rb:.1f}× |")
rb, dk = fifty["rbuild"], fifty["docker"]
out.append(f"| 50 × (`run -d`, then `stop`, then `rm`) | {rb / 1000:.2f} s | {dk / 1000:.2f} s | {dk / rb:.1f}× |")
out += ["", "Port forwarding (wrk, 2 threads, 16 connections, a 4 KiB file from busybox httpd):", "",
        "| path | requests/s |", "|---|---:|",
        f"| host → rbuild forwarder (127.0.0.1, user-space, connects inside the container's netns) → httpd | {float(rb_rps):,.0f} |",
        f"| inside the container's netns → httpd directly (no forwarder: the ceiling) | {float(direct_rps):,.0f} |"]
out.append(f"| host → docker-proxy → httpd (127.0.0.1, on the host network) | {float(docker_rps):,.0f} |")
out += ["", "docker-proxy is docker's userland proxy, the process dockerd starts for each published port; "
        "this dockerd runs with `--bridge=none` (no bridge or private addresses may be made on this machine), "
        "so `docker run -p` has no network to publish from, and the proxy is started directly as dockerd "
        f"would start it: `{docker_err}`, relaying to the same busybox httpd in a container on the host network.",
        "", f"rbuild's forwarder gives {float(rb_rps) / float(docker_rps):.2f}× docker-proxy's throughput. "
        "busybox httpd closes every connection, so wrk opens one per request; a forwarding thread waits for "
        "the next connection and enters the container's network namespace once per run."]
open(out_path, "w").write("\n".join(out) + "\n")
PY
bench_record lifecycle "$work/section.md"
cat "$work/section.md"
