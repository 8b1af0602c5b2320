# The build workloads of bench/build.sh, also used by bench/rootless.sh (sourced):
#   (a) DIR/small: 5 RUN steps, ENV/WORKDIR/LABEL/CMD and a COPY of 2,000 small files;
#   (b) DIR/big:   a COPY of 400 MB of incompressible files plus a RUN writing 200 MB;
# and DIR/gen200, 200 MB of random bytes (the raw-limit measurement's second input).
# Both Dockerfiles start FROM busybox:local.

# bench_build_workloads DIR: write the workloads into DIR.
bench_build_workloads() {
  local dir=${1:?usage: bench_build_workloads DIR}
# (a) small context.
mkdir -p "$dir/small/src"
python3 - "$dir/small/src" <<'PY'
import os, sys
root = sys.argv[1]
for i in range(2000):
    d = os.path.join(root, f"d{i // 100:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:04d}.txt"), "w") as f:
        f.write(f"file {i}\n" * 40)
PY
cat >"$dir/small/Dockerfile" <<'EOF'
FROM busybox:local
ENV APP=/app MODE=bench
WORKDIR /app
LABEL bench=small
RUN echo one > /one
RUN for i in $(seq 1 500); do echo $i; done > /numbers
RUN mkdir -p /var/x && cp /numbers /var/x/
COPY src/ /app/src/
RUN find /app/src -type f | wc -l > /count
RUN cat /app/src/d00/f0000.txt > /first
CMD ["sh"]
EOF

# (b) big context: 4 x 100 MB incompressible files; the RUN writes 200 MB.
mkdir -p "$dir/big/data"
for i in 1 2 3 4; do head -c 100M /dev/urandom >"$dir/big/data/blob$i"; done
cat >"$dir/big/Dockerfile" <<'EOF'
FROM busybox:local
COPY data/ /data/
RUN head -c 200m /dev/urandom > /generated
EOF
head -c 200M /dev/urandom >"$dir/gen200"
}
