#!/usr/bin/env bash
# Multi-platform builds (#18), side by side in one run on the same context: rbuild's one
# two-platform build (`--platform linux/amd64,linux/arm64`, the `$BUILDPLATFORM` stage built once
# and shared), rbuild's two separate single-platform builds, and
# `buildah build --platform linux/amd64,linux/arm64 --manifest`. arm64 RUN steps run under
# Debian's qemu-user-static; the arm64 root filesystem is Debian's arm64 busybox-static.
# Every build is cold (`--no-cache`), RUN steps with `--network none`.
# dockerd 20.10's embedded BuildKit cannot build several platforms at once without the containerd
# image store, so BuildKit's row (`DOCKER_BUILDKIT=1 docker build`, the test dockerd of
# scripts/lib/peers.sh) is two single-platform builds, one after the other.
# Records the table in docs/BENCHMARKS.md (section multiplatform).
#
#   bench/multiplatform.sh      (as root; BENCH_RUNS sets the run count, default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
source scripts/lib/peers.sh
[ "$(id -u)" -eq 0 ] || { echo "bench/multiplatform.sh: needs root" >&2; exit 1; }
peers_install
peers_install_emulation
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || { echo "no arm64 emulation (qemu-user-static)" >&2; exit 1; }
arm64_busybox=$(peers_busybox_arch arm64)
cargo build --release -q -p rbuild-cli
rbuild=$PWD/target/release/rbuild

work=$(mktemp -d /tmp/rbuild-bench-multi.XXXXXX)
buildah_cmd="buildah --root $work/buildah --runroot $work/buildah-run --storage-driver overlay"
peers_start
cleanup() {
  peers_stop
  $buildah_cmd rm --all >/dev/null 2>&1 || true
  umount -R "$work/buildah" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# The context: a root filesystem tar per architecture (Debian's busybox-static) for both
# stages, so every tool starts from the same files and no base image is involved.
ctx=$work/ctx
mkdir -p "$ctx"
scripts/busybox-rootfs "$work/rootfs-amd64"
RBUILD_BUSYBOX=$arm64_busybox scripts/busybox-rootfs "$work/rootfs-arm64"
tar -C "$work/rootfs-amd64" -cf "$ctx/rootfs-amd64.tar" .
tar -C "$work/rootfs-arm64" -cf "$ctx/rootfs-arm64.tar" .
export RBUILD_ROOT=$work/store
cat >"$ctx/Dockerfile" <<'EOF'
FROM --platform=$BUILDPLATFORM scratch AS build
ARG BUILDARCH
ADD rootfs-${BUILDARCH}.tar /
RUN mkdir /out && for i in $(seq 1 20000); do echo "line $i"; done > /out/data && md5sum /out/data > /out/sum
RUN uname -m > /out/built-on

FROM scratch
ARG TARGETARCH
ADD rootfs-${TARGETARCH}.tar /
COPY --from=build /out /out
RUN uname -m > /arch && wc -l /out/data > /lines
CMD ["sh"]
EOF

# The shared stage runs once in the two-platform build: count its RUN steps in the progress.
"$rbuild" build --progress plain --no-cache --network none --platform linux/amd64,linux/arm64 \
  -t bench-multi "$ctx" >"$work/progress.txt" 2>&1
shared_runs=$(grep -c '^#[0-9]* \[.* build [0-9/]*\] RUN mkdir /out' "$work/progress.txt" || true)
uname_arm=$("$rbuild" run --rm --platform linux/arm64 bench-multi cat /arch /out/built-on | tr '\n' ' ')

multi="$rbuild build -q --no-cache --network none --platform linux/amd64,linux/arm64 -t bench-multi $ctx"
separate="sh -c '$rbuild build -q --no-cache --network none --platform linux/amd64 -t bench-amd64 $ctx >/dev/null && $rbuild build -q --no-cache --network none --platform linux/arm64 -t bench-arm64 $ctx >/dev/null'"
buildah_multi="$buildah_cmd build --quiet --no-cache --layers --pull=never --runtime runc --isolation oci --network none --platform linux/amd64,linux/arm64 --manifest bench-list $ctx"
buildkit="sh -c 'DOCKER_BUILDKIT=1 docker build -q --no-cache --network none --platform linux/amd64 -t bench-bk-amd64 $ctx >/dev/null && DOCKER_BUILDKIT=1 docker build -q --no-cache --network none --platform linux/arm64 -t bench-bk-arm64 $ctx >/dev/null'"
bk_args=()
if [ -n "${DOCKER_HOST:-}" ] && docker version >/dev/null 2>&1; then
  bk_args=(-n "BuildKit (dockerd 20.10), two single-platform builds" "$buildkit")
else
  buildkit=""
fi
runs=${BENCH_RUNS:-5}
hyperfine -N --runs "$runs" --warmup 1 \
  --prepare "sh -c '$buildah_cmd manifest rm bench-list >/dev/null 2>&1 || true; sync'" \
  --export-json "$work/results.json" \
  -n "rbuild, one two-platform build" "$multi" \
  -n "rbuild, two single-platform builds" "$separate" \
  -n "buildah build --platform a,b --manifest" "$buildah_multi" \
  "${bk_args[@]}"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

python3 - "$work/results.json" "$work/section.md" "$(bench_machine)" "$runs" "$shared_runs" \
  "$uname_arm" "$load_before" "$load_after" "$multi" "$separate" "$buildah_multi" "$buildkit" <<'PY'
import json, sys
res, out_path, machine, runs, shared, uname_arm, before, after = sys.argv[1:9]
cmds = [c for c in sys.argv[9:13] if c]
data = {r["command"]: r["median"] for r in json.load(open(res))["results"]}
multi = data["rbuild, one two-platform build"]
sep = data["rbuild, two single-platform builds"]
bah = data["buildah build --platform a,b --manifest"]
fmt = lambda s: f"{s * 1000:.0f} ms" if s < 10 else f"{s:.1f} s"
out = ["## Multi-platform builds: linux/amd64 + linux/arm64 (arm64 under qemu-user-static)", "",
       machine + f" hyperfine medians of {runs} runs after one warm-up, every build cold "
       f"(`--no-cache`), RUN steps with `--network none`; load average {before} before and "
       f"{after} after (other engineers were compiling on the machine).", "",
       "Context: a `FROM --platform=$BUILDPLATFORM scratch` stage (`ADD rootfs-${BUILDARCH}.tar`, "
       "two RUN steps: 20,000 lines written and hashed; `uname -m`), and a final `FROM scratch` "
       "stage: `ADD rootfs-${TARGETARCH}.tar` (Debian's busybox-static for the platform), "
       "`COPY --from=build`, one RUN (emulated for arm64). buildah builds the build stage once "
       "per platform (its `[linux/amd64]` and `[linux/arm64]` logs each run it).", "",
       "| command | median | vs rbuild two-platform |",
       "|---|---:|---:|",
       f"| rbuild, one two-platform build | {fmt(multi)} | 1.00 |",
       f"| rbuild, two single-platform builds | {fmt(sep)} | {sep / multi:.2f}× slower |",
       f"| buildah build --platform a,b --manifest | {fmt(bah)} | {bah / multi:.2f}× slower |"]
bk = data.get("BuildKit (dockerd 20.10), two single-platform builds")
if bk is not None:
    out.append(f"| BuildKit (dockerd 20.10), two single-platform builds | {fmt(bk)} | {bk / multi:.2f}× slower |")
out += ["",
       f"In the two-platform build the `$BUILDPLATFORM` stage's RUN ran {shared} time(s) "
       f"(counted in the plain progress); the arm64 image's `uname -m` and its build stage's "
       f"note: {uname_arm.strip()}.", "",
       "Command lines:", ""]
out += [f"- `{c}`" for c in cmds]
open(out_path, "w").write("\n".join(out) + "\n")
PY
bench_record multiplatform "$work/section.md"
cat "$work/section.md"
