#!/usr/bin/env bash
# Build cache that travels (#17): a cold build on store A, the same cold build exporting its
# cache (`--cache-to type=registry,...,mode=max` to a local docker-registry, and
# `type=local,dest=DIR`), and the cache-imported build on a fresh store B ("another machine":
# a new root holding only the base image) with `--cache-from`, for bench/build.sh's two
# workloads, beside BuildKit in the same run:
#   (a) small: 5 RUN steps, ENV/WORKDIR/LABEL/CMD and a COPY of 2,000 small files;
#   (b) big:   a COPY of 400 MB of incompressible files plus a RUN writing 200 MB.
# BuildKit is dockerd 20.10's embedded one through buildx's `docker` driver, which cannot
# export a cache (`type=local`/`type=registry` need the docker-container driver, whose image
# comes from Docker Hub); the script checks that and then measures BuildKit's inline cache
# instead: a cold build with BUILDKIT_INLINE_CACHE=1 pushed to the same registry, and a build
# importing it with `--cache-from IMAGE` after `docker builder prune -af` and removing the
# built images (dockerd keeps only the base image, as store B does).
# Records the table in docs/BENCHMARKS.md (section build-cache).
#
#   bench/build-cache.sh      (as root; BENCH_RUNS_SMALL / BENCH_RUNS_BIG set the run counts)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
source bench/workloads.sh
source scripts/lib/peers.sh
[ "$(id -u)" -eq 0 ] || { echo "bench/build-cache.sh: needs root" >&2; exit 1; }
peers_install
cargo build --release -q -p rbuild-cli
rbuild=$PWD/target/release/rbuild

work=$(mktemp -d /tmp/rbuild-bench-cache.XXXXXX)
cleanup() {
  # rbuild's error output of the timed runs (hyperfine hides it).
  if [ -s "$work/errors.log" ]; then
    echo "rbuild errors:" >&2
    cat "$work/errors.log" >&2
  fi
  peers_stop || true
  rm -rf "$work"
}
trap cleanup EXIT
peers_start
reg=$RBUILD_TEST_REGISTRY
load_before=$(uptime | sed 's/.*load average: //')

# The busybox base in store A, in the archive every fresh store B loads, and in dockerd.
scripts/busybox-rootfs "$work/rootfs"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
"$rbuild" --root "$work/a" import --change 'CMD ["sh"]' "$work/rootfs.tar" busybox:local >/dev/null
"$rbuild" --root "$work/a" save -o "$work/busybox.tar" busybox:local
docker load -i "$work/busybox.tar" >/dev/null

# bench/build.sh's workloads: (a) small files, (b) 600 MB.
bench_build_workloads "$work"
rm -f "$work/gen200"

# Can this BuildKit export a cache? (Recorded in the notes either way.)
if DOCKER_BUILDKIT=1 docker buildx build -q --network none --cache-to "type=local,dest=$work/bk-local" \
    -t bench-probe "$work/small" >"$work/bk-probe.log" 2>&1; then
  bk_local=yes
else
  bk_local=no
fi
bk_probe=$(grep -m1 -i 'cache export\|error' "$work/bk-probe.log" | sed 's/^ *//' || true)

# rbuild on store A or B, its error output kept for the end (hyperfine hides it).
for s in a b; do
  printf '#!/bin/sh\nRUST_BACKTRACE=1 exec %s --root %s "$@" 2>>%s\n' "$rbuild" "$work/$s" "$work/errors.log" >"$work/rbuild-$s"
  chmod +x "$work/rbuild-$s"
done
a=$work/rbuild-a
b=$work/rbuild-b
# A fresh store B holding only the base image: a new directory each time (B is a link to it),
# since deleting the last one would slow the next run's file creations (see below).
cat >"$work/fresh-b.sh" <<EOF
#!/bin/sh
n=\$(cat $work/b-count 2>/dev/null || echo 0); echo \$((n + 1)) >$work/b-count
mkdir -p $work/b-\$n && ln -sfn $work/b-\$n $work/b && $b load -q -i $work/busybox.tar >/dev/null && sync
EOF
# dockerd as a fresh machine with the base image: no build cache, no built images.
cat >"$work/fresh-docker.sh" <<'EOF'
#!/bin/sh
docker images --format '{{.Repository}}:{{.Tag}}' | grep -v '^busybox:local$' | xargs -r docker rmi -f >/dev/null 2>&1
docker builder prune -af >/dev/null 2>&1
sync
EOF
# Between timed runs nothing is deleted: on this machine's journal-less ext4, for 60 s after
# files are deleted every new inode in their block group is allocated by scanning past them
# (`recently_deleted()` in fs/ext4/ialloc.c), so a build right after a prune pays for the files
# the prune removed, the more the more runs came before (bench/build.sh says more). So each
# cold run leaves its image and layers (`--no-cache` builds new ones), each local export goes
# into a directory of its own, and what a group of runs made is removed after the group,
# followed by a wait (BENCH_SETTLE seconds, 65 by default) before the next group.
cat >"$work/export-local.sh" <<EOF
#!/bin/sh
# A cold build on store A exporting to a new directory each call: ARGS... (the context last).
n=\$(cat $work/export-count 2>/dev/null || echo 0); echo \$((n + 1)) >$work/export-count
exec $a build -q --no-cache --network none --cache-to type=local,dest=$work/cache-timed/\$n,mode=max "\$@"
EOF
cat >"$work/settle.sh" <<EOF
#!/bin/sh
# After a group of runs: their images, layers, build caches and export directories removed,
# then time for ext4 to forget the deletions.
$rbuild --root $work/a image prune -f >/dev/null 2>&1
rm -rf $work/cache-timed $work/b-*
docker images --format '{{.Repository}}:{{.Tag}}' | grep -v '^busybox:local\$' | grep -v '/bench-bk/' | xargs -r docker rmi -f >/dev/null 2>&1
docker image prune -f >/dev/null 2>&1
docker builder prune -af >/dev/null 2>&1
sync
sleep ${BENCH_SETTLE:-65}
EOF
# The registry's own cost of receiving the layers: the layer blobs of a cache export pushed
# by a minimal client (HEAD, POST, then a PUT streaming the file, per blob), all at once as
# rbuild sends them, timed inside it (no process start counted).
cat >"$work/upload.py" <<'EOF'
# upload.py HOST REPO RUNS JSON BLOB...: one warm-up and RUNS timed rounds (medians to JSON,
# in hyperfine's shape), each round pushing every BLOB (a file named by its sha256) at once.
import http.client, json, os, statistics, subprocess, sys, threading, time, urllib.parse
host, repo, runs, out, files = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5:]
def push(path):
    digest = "sha256:" + os.path.basename(path)
    c = http.client.HTTPConnection(host)
    c.request("HEAD", f"/v2/{repo}/blobs/{digest}")
    c.getresponse().read()
    c.request("POST", f"/v2/{repo}/blobs/uploads/")
    r = c.getresponse()
    r.read()
    loc = urllib.parse.urlsplit(r.getheader("Location"))
    sep = "&" if loc.query else ""
    with open(path, "rb") as f:
        c.request("PUT", f"{loc.path}?{loc.query}{sep}digest={digest}", body=f,
                  headers={"Content-Type": "application/octet-stream",
                           "Content-Length": str(os.path.getsize(path))})
        r = c.getresponse()
        r.read()
    if r.status != 201:
        raise SystemExit(f"PUT {digest}: {r.status}")
def round_():
    subprocess.run(["sync"], check=True)
    start = time.perf_counter()
    threads = [threading.Thread(target=push, args=(p,)) for p in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start
round_()
times = [round_() for _ in range(runs)]
print(f"upload of the export's layers: median {statistics.median(times) * 1000:.0f} ms")
json.dump({"results": [{"command": "upload of the export's layers",
                        "median": statistics.median(times), "times": times}]}, open(out, "w"))
EOF
# The registry's own cost of serving an import: what an imported build asks it (GET /v2/,
# the cache's manifest by tag, its config blob), over one new connection per round, timed
# inside a minimal client.
cat >"$work/serve.py" <<'EOF'
# serve.py HOST REPO TAG RUNS JSON: one warm-up and RUNS timed rounds (medians to JSON, in
# hyperfine's shape), each round asking for what an import reads.
import http.client, json, statistics, sys, time
host, repo, tag, runs, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
def round_():
    start = time.perf_counter()
    c = http.client.HTTPConnection(host)
    c.request("GET", "/v2/")
    c.getresponse().read()
    c.request("GET", f"/v2/{repo}/manifests/{tag}",
              headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    manifest = json.loads(c.getresponse().read())
    c.request("GET", f"/v2/{repo}/blobs/{manifest['config']['digest']}")
    r = c.getresponse()
    r.read()
    if r.status != 200:
        raise SystemExit(f"GET config: {r.status}")
    c.close()
    return time.perf_counter() - start
round_()
times = [round_() for _ in range(runs)]
print(f"registry serving the import: median {statistics.median(times) * 1000:.1f} ms")
json.dump({"results": [{"command": "registry serving the import",
                        "median": statistics.median(times), "times": times}]}, open(out, "w"))
EOF
chmod +x "$work/fresh-b.sh" "$work/fresh-docker.sh" "$work/export-local.sh" "$work/settle.sh"
fresh_b=$work/fresh-b.sh
fresh_docker=$work/fresh-docker.sh

results=$work/results
mkdir -p "$results"
bench_workload() {
  local w=$1 runs=$2 ctx=$work/$1
  local to_reg="type=registry,ref=$reg/cache/$w:max,mode=max" to_dir="type=local,dest=$work/cache-$w,mode=max"
  local bk_img=$reg/bench-bk/$w:inline
  # Warm-ups that leave the caches to import in the registry, the directory and dockerd's push.
  $a build -q --network none --cache-to "$to_reg" --cache-to "$to_dir" -t "bench-$w" "$ctx" >/dev/null
  DOCKER_BUILDKIT=1 docker build -q --network none --build-arg BUILDKIT_INLINE_CACHE=1 -t "$bk_img" "$ctx" >/dev/null
  docker push -q "$bk_img" >/dev/null
  "$work/settle.sh"
  bench_interleaved "$results/$w-cold.json" "$runs" sync \
    "rbuild cold" "$a build -q --no-cache --network none -t bench-$w $ctx" \
    "rbuild cold + export registry" "$a build -q --no-cache --network none --cache-to $to_reg -t bench-$w $ctx" \
    "rbuild cold + export local" "$work/export-local.sh -t bench-$w $ctx"
  "$work/settle.sh"
  bench_interleaved "$results/$w-cold-bk.json" "$runs" sync \
    "BuildKit cold" "env DOCKER_BUILDKIT=1 docker build -q --no-cache --network none -t bench-bk-$w $ctx" \
    "BuildKit cold + inline cache + push" "sh -c 'DOCKER_BUILDKIT=1 docker build -q --no-cache --network none --build-arg BUILDKIT_INLINE_CACHE=1 -t $bk_img $ctx >/dev/null && docker push -q $bk_img >/dev/null'"
  "$work/settle.sh"
  # The registry receiving the layer blobs of the directory export made above.
  local manifest blobs
  manifest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"].split(":")[1])' "$work/cache-$w/index.json")
  blobs=$(python3 -c 'import json,sys; print(" ".join(sys.argv[2] + "/" + l["digest"].split(":")[1] for l in json.load(open(sys.argv[1]))["layers"]))' \
    "$work/cache-$w/blobs/sha256/$manifest" "$work/cache-$w/blobs/sha256")
  python3 "$work/upload.py" "$reg" bench-raw "$runs" "$results/$w-upload.json" $blobs
  python3 "$work/serve.py" "$reg" "cache/$w" max "$runs" "$results/$w-serve.json"
  bench_interleaved "$results/$w-import-rbuild.json" "$runs" "$fresh_b" \
    "rbuild fresh store, --cache-from registry" "$b build -q --network none --cache-from $reg/cache/$w:max -t bench-$w $ctx" \
    "rbuild fresh store, --cache-from local" "$b build -q --network none --cache-from type=local,src=$work/cache-$w -t bench-$w $ctx" \
    "rbuild fresh store, --cache-from registry, then run" "sh -c '$b build -q --network none --cache-from $reg/cache/$w:max -t bench-$w $ctx >/dev/null && $b run --rm --network none bench-$w true'"
  hyperfine -N --runs "$runs" --warmup 1 --prepare "$fresh_docker" --export-json "$results/$w-import-bk.json" \
    -n "BuildKit pruned, --cache-from inline image" "env DOCKER_BUILDKIT=1 docker build -q --network none --cache-from $bk_img -t bench-bk-$w $ctx"
  # Every step of the imported builds must have been cached, and no layer downloaded (the
  # registry's access log): check once, outside the timing.
  "$fresh_b"
  local reglog=$RBUILD_PEER_DIR/registry.log before
  before=$(wc -l <"$reglog")
  "$rbuild" --root "$work/b" build --progress plain --network none --cache-from "$reg/cache/$w:max" \
    -t "bench-$w" "$ctx" 2>"$results/$w-import.log"
  grep -q ' cache miss: ' "$results/$w-import.log" && { echo "imported build of $w missed:" >&2; grep 'cache miss' "$results/$w-import.log" >&2; exit 1; }
  "$rbuild" --root "$work/b" manifest inspect "$reg/cache/$w:max" |
    python3 -c 'import json,sys; print("\n".join(l["digest"] for l in json.load(sys.stdin)["layers"]))' >"$results/$w-layers"
  if tail -n +"$((before + 1))" "$reglog" | grep '"GET /v2/' | grep -qF -f "$results/$w-layers"; then
    echo "the imported build of $w downloaded a layer" >&2
    exit 1
  fi
  true
}
small_runs=${BENCH_RUNS_SMALL:-10}
big_runs=${BENCH_RUNS_BIG:-5}
bench_workload small "$small_runs"
bench_workload big "$big_runs"
load_after=$(uptime | sed 's/.*load average: //')

python3 - "$results" "$work/section.md" "$(bench_machine)" "$small_runs" "$big_runs" \
  "$load_before" "$load_after" "$bk_local" "$bk_probe" <<'PY'
import json, os, sys
res, out_path, machine, small_runs, big_runs, load_before, load_after, bk_local, bk_probe = sys.argv[1:10]
def med(name):
    data = json.load(open(os.path.join(res, name + ".json")))["results"]
    return {r["command"]: r["median"] for r in data}
fmt = lambda s: f"{s * 1000:.0f} ms" if s < 10 else f"{s:.1f} s"
out = ["## Build cache that travels: cold on store A vs cache-imported on a fresh store B", "",
       machine + f" Medians of {small_runs} runs for (a), {big_runs} for (b), after one warm-up; the "
       "commands of a group run in turn, one run each per round, each round starting with the "
       "next command (`bench_interleaved` in bench/lib.sh), so none of them meets a machine "
       "the others' runs left fuller more often than the others; single "
       "commands through hyperfine. "
       f"Load average {load_before} before, {load_after} after (a 2-core machine shared with "
       "other engineers' compiles).", "",
       "(a) 5 RUN steps, ENV/WORKDIR/LABEL/CMD and a COPY of 2,000 small files; "
       "(b) a COPY of 400 MB of incompressible files and a RUN writing 200 MB (bench/build.sh's). "
       "Nothing is deleted between timed runs (each cold run leaves its layers, each local "
       "export and each fresh store B gets a new directory); after each group of runs what it made is removed, "
       "followed by a 65 s wait, since on this machine's journal-less ext4 every file created "
       "within 60 s of deletions pays for them (bench/build.sh). "
       "All RUN steps `--network none`. *fresh store B*: a new `--root` holding only the base "
       "image (loaded before each run, not timed), importing A's `mode=max` cache from a "
       "docker-registry on loopback or from an OCI layout directory; the script checks that "
       "every step of the imported build is CACHED. BuildKit's *pruned* state: "
       "`docker builder prune -af` and the built images removed before each run (dockerd keeps "
       "the base image), importing the inline cache of the image pushed to the same registry.", "",
       "| workload | rbuild cold | + export registry | + export local | registry receiving the layers | imported (registry) | registry serving the import | imported (local) | imported / cold (registry, local) | imported (registry) + run | BuildKit cold | + inline + push | BuildKit imported |",
       "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
for w, label in (("small", "(a) small files"), ("big", "(b) 600 MB")):
    c, ir, ib = med(f"{w}-cold"), med(f"{w}-import-rbuild"), med(f"{w}-import-bk")
    c.update(med(f"{w}-cold-bk"))
    upload = med(f"{w}-upload")["upload of the export's layers"]
    serve = med(f"{w}-serve")["registry serving the import"]
    cold = c["rbuild cold"]
    reg_exp, loc_exp = c["rbuild cold + export registry"], c["rbuild cold + export local"]
    imp_reg = ir["rbuild fresh store, --cache-from registry"]
    imp_loc = ir["rbuild fresh store, --cache-from local"]
    imp_run = ir["rbuild fresh store, --cache-from registry, then run"]
    out.append(f"| {label} | {fmt(cold)} | {fmt(reg_exp)} ({100 * (reg_exp / cold - 1):+.0f}%) | "
               f"{fmt(loc_exp)} ({100 * (loc_exp / cold - 1):+.0f}%) | {fmt(upload)} ({100 * upload / cold:.0f}%) | "
               f"{fmt(imp_reg)} | {serve * 1000:.1f} ms ({100 * serve / cold:.0f}%) | {fmt(imp_loc)} | "
               f"{100 * imp_reg / cold:.0f}%, {100 * imp_loc / cold:.0f}% | {fmt(imp_run)} | {fmt(c['BuildKit cold'])} | "
               f"{fmt(c['BuildKit cold + inline cache + push'])} | "
               f"{fmt(ib['BuildKit pruned, --cache-from inline image'])} |")
note = ("can export a local cache" if bk_local == "yes" else
        f"cannot export a cache here (`--cache-to type=local` with buildx's docker driver: `{bk_probe}`), "
        "so BuildKit is measured with its inline cache")
out += ["", f"BuildKit {note}. Targets of #17: an imported fully cached build ≤ 10% of the cold "
        "build's time and ≤ 1 s for (a); export adds ≤ 10% to a cold build. An export sends a "
        "layer's gzip form when a push made one, the tar itself when its data does not compress, "
        "else a new gzip form (level 1, several layers at a time). The tar of a layer kept as "
        "its directory is made again: into a cache directory with the kernel copying each "
        "file's content (`copy_file_range`) and several blobs at a time, to a registry streamed; "
        "neither is hashed again on the way (the registry checks each blob's digest, an import "
        "from a directory verifies every blob). *registry receiving the layers*: the layer "
        "blobs of that export pushed by a minimal client timed inside itself (bench/build-cache.sh's "
        "upload.py: HEAD, POST, then a PUT streaming the file, per blob, all at once), with the percentage "
        "of rbuild's cold build: what docker-registry itself "
        "takes to receive, hash and store those bytes, which bounds any export to it. "
        "*registry serving the import*: what an imported build asks the registry (`GET /v2/`, "
        "the cache's manifest by tag, its config blob) over a new connection, timed inside a "
        "minimal client (bench/build-cache.sh's serve.py): the registry's share of an import. "
        "Import is lazy: the imported build reads the cache's manifest and config and commits "
        "the image with layers the store knows only by where they are (registry repository or "
        "layout directory); nothing is downloaded until something needs the bytes. *imported "
        "(registry) + run* is that build followed by `rbuild run --rm IMAGE true`, which fetches "
        "and verifies every layer of the image (by blob digest, then by diffID) and unpacks it: "
        "the cost the lazy build defers. A push of the image back to the cache's registry "
        "downloads nothing (the blobs are found or mounted there). (b)'s imported build is "
        "mostly the hashing of the 400 MB context for the COPY's cache key (a fresh store has "
        "no digest cache of the context), which a build on any new machine does.", "",
        "Command lines (CTX is the workload's context, REG the registry):", "",
        "- `rbuild --root A build -q --no-cache --network none [--cache-to type=registry,ref=REG/cache/W:max,mode=max | --cache-to type=local,dest=DIR,mode=max] -t bench-W CTX`",
        "- `rbuild --root B build -q --network none --cache-from REG/cache/W:max | --cache-from type=local,src=DIR -t bench-W CTX`",
        "- `sh -c 'rbuild --root B build -q --network none --cache-from REG/cache/W:max -t bench-W CTX && rbuild --root B run --rm --network none bench-W true'`",
        "- `DOCKER_BUILDKIT=1 docker build -q --no-cache --network none [--build-arg BUILDKIT_INLINE_CACHE=1 -t REG/bench-bk/W:inline CTX && docker push REG/bench-bk/W:inline]`",
        "- `DOCKER_BUILDKIT=1 docker build -q --network none --cache-from REG/bench-bk/W:inline -t bench-bk-W CTX`"]
open(out_path, "w").write("\n".join(out) + "\n")
PY
bench_record build-cache "$work/section.md"
cat "$work/section.md"
