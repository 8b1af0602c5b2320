# Shared by scripts/test and bench/: install and run the real peers rbuild is tested against.
# Every function is idempotent; peers_stop undoes everything peers_start did.

# Debian packages the tests and benchmarks use, as "command:package".
RBUILD_PEER_PACKAGES=(
  busybox:busybox-static
  dockerd:docker.io
  skopeo:skopeo
  docker-registry:docker-registry
  runc:runc
  buildah:buildah
  htpasswd:apache2-utils
  slirp4netns:slirp4netns
  iptables-restore:iptables
  docker-compose:docker-compose
  newuidmap:uidmap
  setpriv:util-linux
)

peers_install() {
  local missing=() entry cmd pkg
  for entry in "${RBUILD_PEER_PACKAGES[@]}"; do
    cmd=${entry%%:*} pkg=${entry#*:}
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    [ "$(id -u)" -ne 0 ] || { peers_install_buildx; peers_install_emulation; peers_install_docker_py; peers_rootless_users; }
    return
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    return 1
  fi
  echo "installing: ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  peers_install_buildx
  peers_install_emulation
  peers_install_docker_py
  peers_rootless_users
}

# Unprivileged users for the rootless tests (crates/cli/tests/rootless.rs), as root:
# rbuild-test with 65536 subordinate uids and gids (what useradd gives a new user),
# rbuild-test-noid without any (rbuild maps its single id and warns), rbuild-test-small with
# too few (rbuild refuses, naming the fix).
peers_rootless_users() {
  [ "$(id -u)" -eq 0 ] || return 0
  # slirp4netns opens /dev/net/tun as the user: Debian's udev makes it 0666, some VMs 0600.
  [ ! -c /dev/net/tun ] || chmod 0666 /dev/net/tun
  local entry user range
  for entry in rbuild-test:100000:65536 rbuild-test-noid: rbuild-test-small:300000:1000; do
    user=${entry%%:*} range=${entry#*:}
    id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$user" >/dev/null
    for f in /etc/subuid /etc/subgid; do
      touch "$f"
      # Only the ranges given here: useradd may have added its own.
      sed -i "/^$user:/d" "$f"
      [ -z "$range" ] || echo "$user:$range" >>"$f"
    done
  done
}

# The Docker SDK for Python (PyPI `docker`), a client of rbuild's Engine API service in the
# tests: installed from PyPI with pip when python3 cannot import it.
peers_install_docker_py() {
  python3 -c 'import docker' >/dev/null 2>&1 && return 0
  echo "installing: docker (PyPI, the Docker SDK for Python)" >&2
  python3 -m pip install -q --break-system-packages docker >/dev/null 2>&1 ||
    python3 -m pip install -q docker >/dev/null
}

# arm64 emulation for multi-platform builds: Debian's qemu-user-static registers its handlers
# with binfmt_misc (flags PF: the interpreter is opened at registration, so it works inside a
# container's root) through binfmt-support. binfmt_misc is mounted if it is not.
peers_install_emulation() {
  [ "$(id -u)" -eq 0 ] || return 0
  if ! command -v qemu-aarch64-static >/dev/null 2>&1 || ! command -v update-binfmts >/dev/null 2>&1; then
    echo "installing: qemu-user-static binfmt-support" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user-static binfmt-support >/dev/null ||
      { echo "qemu-user-static could not be installed: multi-platform tests will skip" >&2; return 0; }
  fi
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || return 0
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
}

# The static busybox of Debian's busybox-static for another architecture (ARCH: Debian's name,
# e.g. arm64), fetched once with `apt-get download` under that architecture with a private
# sources list, lists and cache (no dpkg --add-architecture, nothing system-wide), unpacked
# with dpkg -x, kept in /var/cache/rbuild-peers. Prints its path.
peers_busybox_arch() {
  local arch=${1:?usage: peers_busybox_arch ARCH} cache=/var/cache/rbuild-peers
  local out="$cache/busybox-$arch"
  [ -x "$out" ] && { echo "$out"; return 0; }
  [ "$(id -u)" -eq 0 ] || return 1
  local dir; dir=$(mktemp -d /tmp/rbuild-busybox-$arch.XXXXXX)
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$cache"
  echo "deb [arch=$arch signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main" >"$dir/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache" -o APT::Sandbox::User=root
    -o "APT::Architecture=$arch" -o "APT::Architectures=$arch")
  echo "fetching: busybox-static:$arch" >&2
  (cd "$dir" && apt-get "${opts[@]}" update -qq >/dev/null && apt-get "${opts[@]}" download "busybox-static:$arch" >/dev/null) &&
    dpkg -x "$dir"/busybox-static_*_"$arch".deb "$dir/x" &&
    install -m 0755 "$dir/x/bin/busybox" "$out.tmp" && mv "$out.tmp" "$out"
  local rc=$?
  rm -rf "$dir"
  [ $rc -eq 0 ] && echo "$out"
  return $rc
}

# The buildx CLI plugin (BuildKit through dockerd's embedded builder: `DOCKER_BUILDKIT=1 docker
# build`). Bookworm has no package for it; trixie's `docker-buildx` runs here. It is fetched with
# apt-get under a private sources list and state directory (the system's apt sources and lists
# are not touched), unpacked with dpkg -x, and its plugin copied to ~/.docker/cli-plugins.
peers_install_buildx() {
  local plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
  [ -x "$plugins/docker-buildx" ] && return 0
  [ "$(id -u)" -eq 0 ] || { echo "docker-buildx missing (run as root to fetch it)" >&2; return 1; }
  local dir; dir=$(mktemp -d /tmp/rbuild-buildx.XXXXXX)
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" >"$dir/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache" -o APT::Sandbox::User=root)
  echo "installing: docker-buildx (trixie) into $plugins" >&2
  (cd "$dir" && apt-get "${opts[@]}" update -qq >/dev/null && apt-get "${opts[@]}" download docker-buildx >/dev/null) &&
    dpkg -x "$dir"/docker-buildx_*.deb "$dir/x" &&
    mkdir -p "$plugins" &&
    install -m 0755 "$dir/x/usr/libexec/docker/cli-plugins/docker-buildx" "$plugins/docker-buildx"
  local rc=$?
  rm -rf "$dir"
  return $rc
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

peers_start() {
  RBUILD_PEER_DIR=$(mktemp -d /tmp/rbuild-peers.XXXXXX)
  export RBUILD_PEER_DIR
  export RBUILD_BUSYBOX=${RBUILD_BUSYBOX:-$(command -v busybox)}
  # An arm64 busybox for the multi-platform tests (they skip without it or without emulation).
  if [ -z "${RBUILD_BUSYBOX_ARM64:-}" ] && [ "$(id -u)" -eq 0 ]; then
    RBUILD_BUSYBOX_ARM64=$(peers_busybox_arch arm64 || true)
    export RBUILD_BUSYBOX_ARM64
  fi

  # dockerd: no bridge, no iptables, its own data root and socket, so nothing else is touched.
  if [ "$(id -u)" -eq 0 ] && command -v dockerd >/dev/null; then
    local sock="$RBUILD_PEER_DIR/docker.sock"
    dockerd --bridge=none --iptables=false --ip-masq=false --ip-forward=false \
      --data-root "$RBUILD_PEER_DIR/docker" --exec-root "$RBUILD_PEER_DIR/docker-exec" \
      --pidfile "$RBUILD_PEER_DIR/docker.pid" --host "unix://$sock" \
      >"$RBUILD_PEER_DIR/dockerd.log" 2>&1 &
    echo $! >"$RBUILD_PEER_DIR/dockerd.launcher"
    export DOCKER_HOST="unix://$sock"
    local i
    for i in $(seq 100); do
      docker version >/dev/null 2>&1 && break
      sleep 0.2
    done
    docker version >/dev/null 2>&1 || { echo "dockerd did not start:" >&2; tail -20 "$RBUILD_PEER_DIR/dockerd.log" >&2; return 1; }
  fi

  # docker-registry: open, on a free loopback port, storage in the temp dir.
  if command -v docker-registry >/dev/null; then
    local port; port=$(free_port)
    mkdir -p "$RBUILD_PEER_DIR/registry"
    cat >"$RBUILD_PEER_DIR/registry.yml" <<YML
version: 0.1
log: { level: error }
storage:
  filesystem: { rootdirectory: $RBUILD_PEER_DIR/registry }
  delete: { enabled: true }
http:
  addr: 127.0.0.1:$port
YML
    docker-registry serve "$RBUILD_PEER_DIR/registry.yml" >"$RBUILD_PEER_DIR/registry.log" 2>&1 &
    echo $! >"$RBUILD_PEER_DIR/registry.pid"
    export RBUILD_TEST_REGISTRY="127.0.0.1:$port"
    local i
    for i in $(seq 100); do
      python3 - "$port" <<'PY' && break
import socket, sys
s = socket.socket()
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
      sleep 0.1
    done
  fi
}

peers_stop() {
  [ -n "${RBUILD_PEER_DIR:-}" ] && [ -d "$RBUILD_PEER_DIR" ] || return 0
  local f pid
  for f in registry.pid docker.pid; do
    [ -f "$RBUILD_PEER_DIR/$f" ] || continue
    pid=$(cat "$RBUILD_PEER_DIR/$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  # dockerd may leave its own mounts (overlay, netns) behind under its roots.
  # (grep finds nothing in the usual case; under `set -eo pipefail` that must not abort the trap.)
  { grep -o " $RBUILD_PEER_DIR[^ ]*" /proc/mounts 2>/dev/null || true; } | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$RBUILD_PEER_DIR"
}
