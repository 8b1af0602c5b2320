#!/usr/bin/env python3
"""Write a docker-archive with N incompressible layers of SIZE MB and one compressible layer.

usage: make-image.py OUT.tar NAME:TAG [--random N SIZE_MB] [--text SIZE_MB]
Layers are tars holding one file each; the archive is what `docker save` writes.
"""
import hashlib, io, json, os, sys, tarfile, tempfile

def layer_tar(path, name, size, gen):
    """A tar with one file of `size` bytes from `gen(n)`, hashed as it is written."""
    h = hashlib.sha256()
    class Tee(io.RawIOBase):
        def __init__(self, f): self.f = f
        def write(self, b): h.update(b); return self.f.write(b)
        def writable(self): return True
    with open(path, "wb") as raw:
        tee = io.BufferedWriter(Tee(raw), 1 << 20)
        with tarfile.open(fileobj=tee, mode="w|", format=tarfile.GNU_FORMAT) as t:
            info = tarfile.TarInfo(name)
            info.size = size
            info.mode = 0o644
            info.mtime = 0
            class Src(io.RawIOBase):
                left = size
                def readinto(self, b):
                    n = min(len(b), self.left)
                    if n == 0: return 0
                    b[:n] = gen(n)
                    self.left -= n
                    return n
                def readable(self): return True
            t.addfile(info, io.BufferedReader(Src(), 1 << 20))
        tee.flush()
    return "sha256:" + h.hexdigest()

def text_gen():
    words = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ".split()
    line_no = [0]
    buf = bytearray()
    def gen(n):
        while len(buf) < n:
            i = line_no[0]; line_no[0] += 1
            buf.extend(b"%08d " % i + b" ".join(words[(i + k) % len(words)] for k in range(12)) + b"\n")
        out = bytes(buf[:n]); del buf[:n]; return out
    return gen

def main():
    out, name = sys.argv[1], sys.argv[2]
    args = sys.argv[3:]
    specs = []
    while args:
        if args[0] == "--random":
            specs += [("random", int(args[2]))] * int(args[1]); args = args[3:]
        elif args[0] == "--text":
            specs.append(("text", int(args[1]))); args = args[2:]
        else:
            sys.exit(f"unknown argument {args[0]}")
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(out))) as d:
        diff_ids, files = [], []
        for i, (kind, mb) in enumerate(specs):
            p = os.path.join(d, f"layer{i}.tar")
            gen = os.urandom if kind == "random" else text_gen()
            diff_ids.append(layer_tar(p, f"data/{kind}{i}", mb << 20, gen))
            files.append(p)
        config = json.dumps({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": f"layer {i}"} for i in range(len(specs))],
        }).encode()
        cfg_name = hashlib.sha256(config).hexdigest() + ".json"
        layers = [f"{x.split(':')[1]}/layer.tar" for x in diff_ids]
        manifest = json.dumps([{"Config": cfg_name, "RepoTags": [name], "Layers": layers}]).encode()
        with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as t:
            def add(arc, data):
                ti = tarfile.TarInfo(arc); ti.size = len(data); ti.mtime = 0
                t.addfile(ti, io.BytesIO(data))
            add(cfg_name, config)
            for arc, p in zip(layers, files):
                t.add(p, arcname=arc)
            add("manifest.json", manifest)

main()
