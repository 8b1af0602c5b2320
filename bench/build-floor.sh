#!/usr/bin/env bash
# The floor of the 600 MB build of bench/build.sh (issue #20): what reading the context once,
# writing the two layers once and hashing their tars once costs on two cores, with nothing
# else (no cache keys, no container, no store). Layer 1 is the COPY: every file of DATA is read
# once and written once under DEST/data while the tar stream of the copy (PAX headers, data,
# padding, end blocks) is hashed on a second thread (OpenSSL's sha256, SHA-NI where the CPU
# has it), so both cores work. Layer 2 is the RUN, which can only start once the COPY's files
# are complete (it may read them): the workload's own command, busybox's
# `head -c 200m /dev/urandom` (the same static busybox as the image's), writes
# DEST/run/generated once; then its tar is hashed (its content is only known when it ends).
# No cache keys, no container, no store, no fsync. Prints the two diffIDs.
#
# With CHANGED (one file of DATA), the floor of a rebuild after that file changed: only it is
# written (a build can link the unchanged files from its previous copy), the COPY's tar is still
# hashed whole, beside the RUN (which only needs the files complete).
#
#   bench/build-floor.sh DATA DEST [CHANGED]
set -euo pipefail
exec python3 - "$@" <<'PY'
import hashlib, os, queue, shutil, subprocess, sys, tarfile, threading

data, dest = sys.argv[1], sys.argv[2]
changed = os.path.abspath(sys.argv[3]) if len(sys.argv) > 3 else None
CHUNK = 4 << 20


def layer(name, files):
    """files: (tar name, source file object or None for a directory, size). Returns the diffID."""
    q = queue.Queue(maxsize=8)
    out = {}

    def hasher():
        h = hashlib.sha256()
        while (b := q.get()) is not None:
            h.update(b)
        out["digest"] = "sha256:" + h.hexdigest()

    t = threading.Thread(target=hasher)
    t.start()
    for arc, src, target, size in files:
        info = tarfile.TarInfo(arc)
        info.mtime, info.mode = 0, 0o644
        if src is None:
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            os.makedirs(target, exist_ok=True)
        else:
            info.size = size
        q.put(info.tobuf(tarfile.PAX_FORMAT))
        if src is None:
            continue
        with open(target, "wb") if target else open(os.devnull, "wb") as w:
            while b := src.read(CHUNK):
                if target:
                    w.write(b)
                q.put(b)
        src.close()
        if size % 512:
            q.put(b"\0" * (512 - size % 512))
    q.put(b"\0" * 1024)
    q.put(None)
    t.join()
    print(name, out["digest"])


def copy_files(hash_only=False):
    """The COPY's entries; with hash_only, its files are only read for the tar stream."""
    yield "data/", None, os.path.join(dest, "data"), 0
    for root, dirs, names in os.walk(data):
        dirs.sort()
        rel = os.path.relpath(root, data)
        for d in dirs:
            arc = os.path.normpath(os.path.join("data", rel, d)) + "/"
            yield arc, None, os.path.join(dest, arc), 0
        for n in sorted(names):
            src = os.path.join(root, n)
            arc = os.path.normpath(os.path.join("data", rel, n))
            target = None if hash_only else os.path.join(dest, arc)
            yield arc, open(src, "rb"), target, os.path.getsize(src)


busybox = os.environ.get("RBUILD_BUSYBOX") or shutil.which("busybox")
os.makedirs(os.path.join(dest, "run"), exist_ok=True)


def run_layer():
    generated = os.path.join(dest, "run", "generated")
    with open(generated, "wb") as out:
        subprocess.run([busybox, "head", "-c", "200m", "/dev/urandom"], stdout=out, check=True)
    layer("run", [("generated", open(generated, "rb"), None, os.path.getsize(generated))])


if changed is None:
    layer("copy", copy_files())
    run_layer()
else:
    rel = os.path.relpath(changed, data)
    os.makedirs(os.path.dirname(os.path.join(dest, "data", rel)), exist_ok=True)
    shutil.copyfile(changed, os.path.join(dest, "data", rel))
    hashing = threading.Thread(target=layer, args=("copy", copy_files(hash_only=True)))
    hashing.start()
    run_layer()
    hashing.join()
PY
