#!/usr/bin/env bash
# Rootless (#19): `rbuild build` as an unprivileged user (rbuild-test, with subordinate ids,
# made by peers_install) vs `rbuild build` as root vs rootless `buildah build` (the same user,
# native overlay), on bench/build.sh's workloads (bench/workloads.sh): (a) small files,
# (b) 600 MB; a cold build (--no-cache) and a fully cached rebuild. Then `rbuild run --rm
# --network none busybox true` rootless vs root. RUN steps run with `--network none`.
# Every command goes through the same `setpriv ... env -i` (root's with --reuid root), so both
# pay the same two extra execs.
# Records the table in docs/BENCHMARKS.md (section rootless).
#
#   bench/rootless.sh   (as root; BENCH_RUNS_SMALL / BENCH_RUNS_BIG / BENCH_RUNS_RUN)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
source scripts/lib/peers.sh
source bench/workloads.sh
[ "$(id -u)" -eq 0 ] || { echo "bench/rootless.sh: needs root (to become the test user)" >&2; exit 1; }
peers_install
cargo build --release -q -p rbuild-cli
user=rbuild-test

work=$(mktemp -d /tmp/rbuild-bench-rootless.XXXXXX)
chmod 755 "$work"
cleanup() {
  # The user's pause process (its namespace), then everything.
  [ -f "$work/run/rbuild/pause.pid" ] && kill "$(cat "$work/run/rbuild/pause.pid")" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
install -m 0755 target/release/rbuild "$work/rbuild"
rbuild=$work/rbuild
mkdir -p "$work/home" "$work/run" "$work/ctx"
chmod 700 "$work/run"
chown "$user:" "$work/home" "$work/run"
as_user="setpriv --reuid $user --regid $user --init-groups env -i PATH=/usr/bin:/bin:/usr/sbin:/sbin HOME=$work/home XDG_RUNTIME_DIR=$work/run"
as_root="setpriv --reuid root --regid root --init-groups env -i PATH=/usr/bin:/bin:/usr/sbin:/sbin HOME=/root"

scripts/busybox-rootfs "$work/rootfs"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
chmod 644 "$work/rootfs.tar"
bench_build_workloads "$work/ctx"
chmod -R a+rX "$work/ctx"

# The same busybox image in the three stores.
$as_user "$rbuild" import --change 'CMD ["sh"]' "$work/rootfs.tar" busybox:local >/dev/null
"$rbuild" --root "$work/rootstore" import --change 'CMD ["sh"]' "$work/rootfs.tar" busybox:local >/dev/null
"$rbuild" --root "$work/rootstore" save -o "$work/busybox.tar" busybox:local
chmod 644 "$work/busybox.tar"
buildah_cmd="$as_user buildah --root $work/home/buildah --runroot $work/run/buildah --storage-driver overlay"
$buildah_cmd pull -q "docker-archive:$work/busybox.tar" >/dev/null
$buildah_cmd tag localhost/busybox:local busybox:local 2>/dev/null || true

build_rootless() { echo "$as_user $rbuild build -q --network none -t bench-$1 $2 $work/ctx/$1"; }
build_root() { echo "$as_root $rbuild --root $work/rootstore build -q --network none -t bench-$1 $2 $work/ctx/$1"; }
build_buildah() { echo "$buildah_cmd build --quiet --layers --pull=never --network none -t bench-$1 $2 $work/ctx/$1"; }

results=$work/results
mkdir -p "$results"
bench_case() {
  local w=$1 scenario=$2 runs=$3 flags=""
  [ "$scenario" = cold ] && flags="--no-cache"
  for t in rootless root buildah; do eval "$(build_$t "$w" "")" >/dev/null 2>&1; done
  hyperfine -N --runs "$runs" --warmup 1 --prepare sync --export-json "$results/$w-$scenario.json" \
    -n "rbuild rootless" "$(build_rootless "$w" "$flags")" \
    -n "rbuild root" "$(build_root "$w" "$flags")" \
    -n "buildah rootless" "$(build_buildah "$w" "$flags")"
}
small_runs=${BENCH_RUNS_SMALL:-5}
big_runs=${BENCH_RUNS_BIG:-3}
run_runs=${BENCH_RUNS_RUN:-30}
load_before=$(uptime)
for s in cold cached; do bench_case small $s "$small_runs"; done
for s in cold cached; do bench_case big $s "$big_runs"; done
run_rootless="$as_user $rbuild run --rm --network none busybox:local true"
run_root="$as_root $rbuild --root $work/rootstore run --rm --network none busybox:local true"
hyperfine -N --runs "$run_runs" --warmup 3 --export-json "$results/run.json" \
  -n "rbuild rootless" "$run_rootless" -n "rbuild root" "$run_root"
load_after=$(uptime)

python3 - "$results" "$work/section.md" "$(bench_machine)" "$small_runs" "$big_runs" "$run_runs" \
  "$load_before" "$load_after" "$(build_rootless WORKLOAD '[--no-cache]')" \
  "$(build_root WORKLOAD '[--no-cache]')" "$(build_buildah WORKLOAD '[--no-cache]')" \
  "$run_rootless" "$run_root" <<'PY'
import json, os, sys
res, out_path, machine, small_runs, big_runs, run_runs, before, after = sys.argv[1:9]
cmds = sys.argv[9:]
def med(name):
    data = json.load(open(os.path.join(res, name + ".json")))["results"]
    return {r["command"]: r["median"] for r in data}
fmt = lambda s: f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"
out = ["## Rootless: `rbuild` as a user vs as root vs rootless `buildah`", "",
       machine + f" hyperfine medians ({small_runs} runs for (a), {big_runs} for (b), "
       f"{run_runs} for `run`); the workloads of bench/build.sh; RUN steps with `--network none`; "
       "`sync` before every build. The user has 65536 subordinate ids; cgroup v1 host, so "
       "rootless rbuild runs without cgroups. Rootless buildah 1.28 uses native overlay "
       "(kernel 5.11+).", "",
       f"Load: `{before.strip()}` before, `{after.strip()}` after.", "",
       "| workload | scenario | rbuild rootless | rbuild root | buildah rootless | rootless / root | buildah / rbuild rootless |",
       "|---|---|---:|---:|---:|---:|---:|"]
for w, label in (("small", "(a) small files"), ("big", "(b) 600 MB")):
    for s in ("cold", "cached"):
        m = med(f"{w}-{s}")
        u, r, b = m["rbuild rootless"], m["rbuild root"], m["buildah rootless"]
        out.append(f"| {label} | {s} | {fmt(u)} | {fmt(r)} | {fmt(b)} | {u / r:.2f}× | {b / u:.1f}× |")
m = med("run")
u, r = m["rbuild rootless"], m["rbuild root"]
out += ["", f"`run --rm --network none busybox true`: rootless {fmt(u)}, root {fmt(r)} ({u / r:.2f}×).",
        "", "Targets of #19: rootless within 1.5× of root, faster than rootless buildah.", "",
        "Command lines (WORKLOAD is the context; `--no-cache` only for cold):", ""]
work = os.path.dirname(res)
out += [f"- `{c}`".replace(work, "$WORK") for c in cmds]
open(out_path, "w").write("\n".join(out) + "\n")
PY
bench_record rootless "$work/section.md"
cat "$work/section.md"
