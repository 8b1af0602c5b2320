# Shared by every bench/*.sh: machine description and recording a section of docs/BENCHMARKS.md.
#
# Each benchmark owns one section of docs/BENCHMARKS.md, between the lines
#   <!-- bench:NAME -->  and  <!-- /bench:NAME -->
# and replaces only that section, so benchmarks can be re-run independently.

bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# A markdown paragraph describing this machine.
bench_machine() {
  local cpu mem kernel
  cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
  mem=$(free -g | awk '/Mem:/ {print $2 " GiB"}')
  kernel=$(uname -r)
  echo "Machine: $(nproc) cores ($cpu), $mem RAM, Linux $kernel, $(date -u +%Y-%m-%d)."
}

# bench_record NAME FILE: replace section NAME of docs/BENCHMARKS.md with FILE's contents.
bench_record() {
  local name=$1 body=$2 doc="$bench_root/docs/BENCHMARKS.md"
  [ -f "$doc" ] || printf '# Benchmarks\n\nSide-by-side measurements of rbuild and its peers, recorded by the scripts in `bench/`.\nMedians; every row of a table comes from the same run on the same machine.\n' >"$doc"
  python3 - "$doc" "$name" "$body" <<'PY'
import sys, re
doc, name, body = sys.argv[1], sys.argv[2], open(sys.argv[3]).read().rstrip("\n")
text = open(doc).read()
start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
section = f"{start}\n{body}\n{end}"
if start in text and end in text:
    text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda m: section, text, flags=re.S)
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
open(doc, "w").write(text)
PY
}

# bench_interleaved JSON RUNS PREPARE NAME CMD [NAME CMD ...]: time the commands in turn — one
# warm-up of each, then RUNS rounds in which each runs once, each round starting with the next
# command (so each follows every other equally often), PREPARE (a command, not timed) before
# every run — and write their wall times and medians to JSON in hyperfine's
# `--export-json` shape. Unlike hyperfine, which runs all of one command's runs before the
# next command's, each command meets the machine in the same state: when runs leave files
# behind (cold builds, exports) or the VM's speed drifts, the later command is not the one
# that pays. Commands are split as a shell splits words and run without a shell.
bench_interleaved() {
  python3 - "$@" <<'PY'
import json, shlex, statistics, subprocess, sys, time
out, runs, prepare = sys.argv[1], int(sys.argv[2]), sys.argv[3]
pairs = list(zip(sys.argv[4::2], sys.argv[5::2]))
times = {name: [] for name, _ in pairs}
def run(cmd):
    subprocess.run(shlex.split(prepare), check=True)
    start = time.perf_counter()
    done = subprocess.run(shlex.split(cmd), stdout=subprocess.DEVNULL)
    took = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"bench_interleaved: {cmd!r} exited {done.returncode}")
    return took
for _, cmd in pairs:
    run(cmd)
for i in range(runs):
    # Each round starts with the next command, so each follows every other equally often.
    for name, cmd in pairs[i % len(pairs):] + pairs[:i % len(pairs)]:
        times[name].append(run(cmd))
for name, _ in pairs:
    t = times[name]
    print(f"{name}: median {statistics.median(t) * 1000:.0f} ms, min {min(t) * 1000:.0f}, max {max(t) * 1000:.0f} ({len(t)} runs)")
json.dump({"results": [{"command": name, "median": statistics.median(times[name]),
                        "mean": statistics.mean(times[name]), "times": times[name]}
                       for name, _ in pairs]}, open(out, "w"), indent=1)
PY
}
