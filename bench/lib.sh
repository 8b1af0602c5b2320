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
