#!/usr/bin/env bash
# Build the container image for real and prove it: podman builds the Dockerfile unchanged, the
# image goes through a registry and back by digest, the SBOM of its locked packages is checked
# against what is installed in it, and every service is started from it read-only and
# unprivileged. `make image` runs it; the image tests (tests/image/test_built_image.py) too.
#
#   deploy/image.sh [--fresh] [OUT_DIR]   build, publish, pull back, check and run the image
#   deploy/image.sh sbom IMAGE FILE         write the SBOM to FILE and check it against IMAGE
#
# The second form is the publish stage's, for an image built elsewhere: CONTAINER_ENGINE=docker
# runs IMAGE with Docker instead of podman. In the first, OUT_DIR (default build/image) holds
# podman's image store and configuration for this checkout, and receives:
#   image.json      what was built: reference, id, digest, Python version, base, size, packages
#   sbom.cdx.json   the SBOM (CycloneDX 1.5) of the packages locked in the image
#   podman.env      the podman configuration of this store, to `source` before using podman
# --fresh builds every layer again instead of reusing the store's build cache.
#
# No base-image registry needs to be reachable: the Dockerfile's Python base is made from the
# Debian mirror apt uses (debootstrap) and its uv image from the uv wheel on PyPI, each once per
# store. Needs root (apt-get, debootstrap, rootful podman), Debian, and PyPI over HTTPS.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REGISTRY_BIN=/usr/bin/docker-registry
# What the image contains besides Python: certificates for AWS, /etc/services for the resolver.
BASE_PACKAGES=python3,ca-certificates,netbase
SERVICES=(frontend stock-symbol stock-price logo-resizer queue-worker)
SMOKE_TIMEOUT=${SMOKE_TIMEOUT:-60}

say() { printf "== [%3ds] %s\n" "$SECONDS" "$*" >&2; }

die() {
    echo "image.sh: $*" >&2
    exit 2
}

# podman with runc (crun refuses hybrid cgroups), debootstrap for the base, Debian's registry.
install_missing() {
    local needed=()
    command -v podman >/dev/null 2>&1 || needed+=(podman)
    command -v runc >/dev/null 2>&1 || test -x /usr/sbin/runc || needed+=(runc)
    command -v debootstrap >/dev/null 2>&1 || test -x /usr/sbin/debootstrap || needed+=(debootstrap)
    test -x "$REGISTRY_BIN" || needed+=(docker-registry)
    ((${#needed[@]})) || return 0
    say "installing ${needed[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local install=(apt-get install -y -qq --no-install-recommends "${needed[@]}")
    "${install[@]}" >/dev/null 2>&1 || { apt-get update -qq && "${install[@]}" >/dev/null; }
}

# A podman configuration of this OUT_DIR's own: its store, runc, limits this machine can grant,
# and a registries.conf that trusts nothing but the local registry started below.
configure_podman() {
    local conf=$OUT/podman
    # Short paths on /run: podman's sockets live there and a socket path has a length limit.
    local state
    state=/run/stockday-image/$(printf '%s' "$OUT" | sha256sum | cut -c1-12)
    mkdir -p "$conf" "$state/run" "$state/tmp"
    # overlay cannot stack on an overlayfs (a CI job's container file system): copy layers there.
    local driver=overlay
    [[ $(stat -f -c %T "$OUT") != overlayfs ]] || driver=vfs
    cat >"$conf/containers.conf" <<EOF
[containers]
# The default limits are higher than this machine lets a container raise them to.
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$state/tmp"
EOF
    cat >"$conf/storage.conf" <<EOF
[storage]
driver = "$driver"
graphroot = "$OUT/store"
runroot = "$state/run"
EOF
    printf 'unqualified-search-registries = []\n' >"$conf/registries.conf"
    cat >"$OUT/podman.env" <<EOF
export CONTAINERS_CONF=$conf/containers.conf
export CONTAINERS_STORAGE_CONF=$conf/storage.conf
export CONTAINERS_REGISTRIES_CONF=$conf/registries.conf
EOF
    # shellcheck source=/dev/null
    source "$OUT/podman.env"
}

# The image names the Dockerfile builds from: its PYTHON_IMAGE default and the uv image.
dockerfile_images() {
    PYTHON_IMAGE=$(sed -n 's/^ARG PYTHON_IMAGE=//p' "$ROOT/Dockerfile")
    UV_IMAGE=$(sed -n 's|^COPY --from=\([^ ]*\) /uv .*|\1|p' "$ROOT/Dockerfile")
    [[ -n $PYTHON_IMAGE && -n $UV_IMAGE ]] || die "no PYTHON_IMAGE or uv image in the Dockerfile"
    UV_VERSION=${UV_IMAGE##*:}
    PYTHON_IMAGE=$(qualified "$PYTHON_IMAGE")
}

# A reference as Docker reads it: a short name such as python:3.11 is on Docker Hub.
qualified() {
    local name=$1 first=${1%%/*}
    if [[ $name != */* ]]; then
        echo "docker.io/library/$name"
    elif [[ $first != *.* && $first != *:* && $first != localhost ]]; then
        echo "docker.io/$name"
    else
        echo "$name"
    fi
}

# The Debian mirror and release apt uses, from sources.list or deb822 .sources files.
debian_mirror() {
    local codename
    codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
    python3 - "$codename" /etc/apt/sources.list /etc/apt/sources.list.d/* <<'PY'
import re, sys
codename, files = sys.argv[1], sys.argv[2:]
for name in files:
    try:
        text = open(name).read()
    except OSError:
        continue
    if name.endswith(".sources"):
        stanzas = [dict(re.findall(r"(?m)^(\w[\w-]*):\s*(.*)$", s)) for s in text.split("\n\n")]
        stanzas = [s for s in stanzas if s.get("Types") == "deb"]
        pairs = [(s.get("URIs", ""), s.get("Suites", "")) for s in stanzas]
    else:
        pairs = re.findall(r"(?m)^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", text)
    for uris, suites in pairs:
        if codename in suites.split():
            print(uris.split()[0], codename)
            sys.exit(0)
sys.exit(f"no Debian mirror for {codename} in {' '.join(files)}")
PY
}

# The Python base: Debian's minimal system with python3, standing in for the Dockerfile's image.
make_python_base() {
    if podman image exists "$PYTHON_IMAGE"; then
        say "base $PYTHON_IMAGE: in the store"
        return
    fi
    local mirror suite rootfs
    read -r mirror suite < <(debian_mirror)
    rootfs=$(mktemp -d "$OUT/rootfs.XXXXXX")
    say "base $PYTHON_IMAGE: debootstrap $suite from $mirror"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" "$suite" "$rootfs" "$mirror" \
        >"$OUT/debootstrap.log" 2>&1 || die "debootstrap failed: see $OUT/debootstrap.log"
    printf '%s\n' "$suite" "$mirror" >"$rootfs/etc/stockday-base"
    # Package caches and lists, documentation and translations are not part of a slim image.
    tar -C "$rootfs" -c \
        --exclude=./var/cache/apt/archives/*.deb --exclude=./var/lib/apt/lists/* \
        --exclude=./usr/share/doc/* --exclude=./usr/share/man/* --exclude=./usr/share/info/* \
        --exclude=./usr/share/locale/* . |
        podman import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$PYTHON_IMAGE" >/dev/null
    rm -rf "$rootfs"
}

# The uv image: /uv and /uvx from the uv wheel on PyPI, fetched by uv as the build fetches.
make_uv_image() {
    if podman image exists "$UV_IMAGE"; then
        say "uv image $UV_IMAGE: in the store"
        return
    fi
    say "uv image $UV_IMAGE: from the uv $UV_VERSION wheel"
    local work
    work=$(mktemp -d "$OUT/uv.XXXXXX")
    "$UV" pip install --quiet --no-deps --target "$work" --python-version 3.11 \
        --python-platform "$(uname -m)-manylinux_2_17" "uv==$UV_VERSION" ||
        die "could not fetch the uv $UV_VERSION wheel"
    tar -C "$work/bin" -c uv uvx | podman import - "$UV_IMAGE" >/dev/null
    rm -rf "$work"
}

# uv in the build reaches PyPI as uv does here: the host's CA bundle and uv configuration,
# mounted read-only for the build's RUN steps only, never copied into a layer.
build_mounts() {
    local ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt} config=$OUT/podman/uv.toml
    [[ -r $ca ]] || die "no CA bundle at $ca"
    : >"$config"
    local host_config
    for host_config in /etc/uv/uv.toml "${XDG_CONFIG_HOME:-$HOME/.config}/uv/uv.toml"; do
        [[ -r $host_config ]] && cat "$host_config" >>"$config"
    done
    grep -q '^system-certs' "$config" || echo 'system-certs = true' >>"$config"
    BUILD_MOUNTS=(
        --volume "$ca:/etc/ssl/certs/ca-certificates.crt:ro"
        --volume "$config:/etc/uv/uv.toml:ro"
    )
}

build_image() {
    build_mounts
    local started=$SECONDS cache=()
    [[ $FRESH == yes ]] && cache=(--no-cache)
    say "building $IMAGE"
    # Docker's format keeps the Dockerfile's HEALTHCHECK (OCI's image config has no field for it);
    # TMPDIR keeps the build's uv cache mount in this store rather than in /var/tmp.
    mkdir -p "$OUT/tmp"
    TMPDIR=$OUT/tmp podman build --format docker --network host "${cache[@]}" "${BUILD_MOUNTS[@]}" \
        --label "org.opencontainers.image.revision=$REVISION" \
        --tag "$IMAGE" --file "$ROOT/Dockerfile" "$ROOT" >"$OUT/build.log" 2>&1 ||
        die "podman build failed: see $OUT/build.log"
    BUILD_SECONDS=$((SECONDS - started))
}

# The SBOM: the packages uv.lock pins for the image (no dev group), the project included.
write_sbom() {
    local file=$1
    (cd "$ROOT" && "$UV" export --frozen --no-dev --no-editable --format cyclonedx1.5 --quiet \
        --output-file "$file")
}

free_port() {
    python3 - <<'PY'
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for port in random.sample(range(10_000, min(low, 32_768)), 200):
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(port)
        break
PY
}

# Poll until URL answers 200, for SMOKE_TIMEOUT seconds at most.
answers_in_time() {
    local url=$1 deadline=$((SECONDS + SMOKE_TIMEOUT))
    until python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
        "$url" 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

stop_registry() {
    [[ -n ${REGISTRY_PID:-} ]] && kill "$REGISTRY_PID" 2>/dev/null && wait "$REGISTRY_PID" || true
    [[ -n ${REGISTRY_DIR:-} ]] && rm -rf "$REGISTRY_DIR"
    REGISTRY_PID='' REGISTRY_DIR=''
}

# Debian's registry on a free loopback port, its storage in a temporary directory.
start_registry() {
    local port
    port=$(free_port)
    REGISTRY_DIR=$(mktemp -d)
    cat >"$REGISTRY_DIR/config.yml" <<EOF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $REGISTRY_DIR/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
EOF
    "$REGISTRY_BIN" serve "$REGISTRY_DIR/config.yml" >"$OUT/registry.log" 2>&1 &
    REGISTRY_PID=$!
    REGISTRY=127.0.0.1:$port
    # Plain HTTP to this registry only, in this store's own registries.conf.
    printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$REGISTRY" \
        >>"$CONTAINERS_REGISTRIES_CONF"
    answers_in_time "http://$REGISTRY/v2/" ||
        die "the registry did not start: see $OUT/registry.log"
}

# Push, then pull back by the digest the registry answered: what runs is what was published.
push_and_pull() {
    start_registry
    local tag=$REGISTRY/stockday:$REVISION
    say "pushing to $tag"
    podman push --quiet --digestfile "$OUT/digest" "$IMAGE" "$tag" >/dev/null
    DIGEST=$(cat "$OUT/digest")
    PULLED=$REGISTRY/stockday@$DIGEST
    say "pulling $PULLED"
    podman pull --quiet "$PULLED" >/dev/null
    stop_registry
    [[ $(podman image inspect --format '{{.Id}}' "$PULLED") == "$IMAGE_ID" ]] ||
        die "the image pulled by digest is not the image built"
}

# How every container of the image runs: host network on loopback, read-only, no privileges.
CONTAINER_OPTIONS=(--network host --read-only --cap-drop ALL --security-opt no-new-privileges)

# Python code run by the image's interpreter, with no network and nothing writable.
in_image() {
    local image=$1 code=$2
    "$ENGINE" run --rm --network none --read-only --cap-drop ALL \
        --security-opt no-new-privileges --no-healthcheck --entrypoint python "$image" -c "$code"
}

# Every distribution installed in the image's Python environment is in the SBOM with its version.
# uv exports the lock for every platform: what the SBOM lists beyond that must be conditional
# on a platform marker (colorama on Windows, say), never a locked package that went missing.
check_sbom() {
    local image=$1 sbom=$2 listing
    listing=$(in_image "$image" 'import importlib.metadata as m, json
print(json.dumps({d.metadata["Name"]: d.version for d in m.distributions()}))')
    PACKAGES=$(python3 - "$sbom" "$listing" <<'PY'
import json, re, sys

def key(name):
    return re.sub(r"[-_.]+", "-", name).lower()

with open(sys.argv[1]) as file:
    sbom = json.load(file)
parts = [sbom["metadata"]["component"], *sbom["components"]]
# A package may be locked twice, at two versions for two Python ranges (its marker says which).
listed = {(key(part["name"]), part["version"]): part for part in parts}
installed = {(key(name), version) for name, version in json.loads(sys.argv[2]).items()}
wrong = sorted(installed - set(listed))
if wrong:
    sys.exit(f"installed, but not so in the SBOM (name, version): {wrong}")
markers = {
    entry: {p["name"]: p["value"] for p in part.get("properties", [])}.get("uv:package:marker")
    for entry, part in listed.items()
    if entry not in installed
}
if None in markers.values():
    sys.exit(f"locked for the image but not installed: {sorted(markers)}")
print(len(installed))
PY
) || die "the SBOM does not match the image"
    say "SBOM: all $PACKAGES installed packages listed with their versions"
}

remove_smoke_containers() {
    local name
    for name in "${SMOKE_CONTAINERS[@]}"; do
        podman rm --force --time 5 "$name" >/dev/null 2>&1 || true
    done
    SMOKE_CONTAINERS=()
    [[ -n ${SMOKE_DATA:-} ]] && rm -rf "$SMOKE_DATA"
    SMOKE_DATA=''
}

# The five services, one container each, wired together on the embedded backend in a shared
# data directory: every one answers its probes as uid 10001 and cannot write its root.
smoke() {
    local service port name pid
    declare -A ports
    for service in "${SERVICES[@]}"; do ports[$service]=$(free_port); done
    SMOKE_DATA=$(mktemp -d)
    chown 10001:10001 "$SMOKE_DATA"
    for service in "${SERVICES[@]}"; do
        name=stockday-smoke-$service-$$
        SMOKE_CONTAINERS+=("$name")
        podman run --detach --name "$name" "${CONTAINER_OPTIONS[@]}" \
            --volume "$SMOKE_DATA:/data" \
            --env STOCKDAY_BACKEND=local --env STOCKDAY_DATA_DIR=/data \
            --env "STOCKDAY_SYMBOL_URL=http://127.0.0.1:${ports[stock-symbol]}" \
            --env "STOCKDAY_PRICE_URL=http://127.0.0.1:${ports[stock-price]}" \
            --env "PORT=${ports[$service]}" "$PULLED" "$service" --host 127.0.0.1 \
            >/dev/null 2>>"$OUT/smoke.log" || die "$service did not start: see $OUT/smoke.log"
    done
    for service in "${SERVICES[@]}"; do
        name=stockday-smoke-$service-$$
        answers_in_time "http://127.0.0.1:${ports[$service]}/api/ready" || {
            podman logs "$name" >>"$OUT/smoke.log" 2>&1
            die "$service was not ready in ${SMOKE_TIMEOUT}s: see $OUT/smoke.log"
        }
        pid=$(podman inspect --format '{{.State.Pid}}' "$name")
        [[ $(awk '/^Uid:/ {print $2}' "/proc/$pid/status") == 10001 ]] ||
            die "$service: not uid 10001"
        ! podman exec "$name" touch /opt/stockday/written 2>/dev/null ||
            die "$service: its root file system is writable"
        # Run on demand: podman schedules it with systemd timers, and logs that it cannot here.
        podman healthcheck run "$name" >/dev/null || die "$service: the image's HEALTHCHECK failed"
    done
    say "smoke: ${SERVICES[*]} ready, as uid 10001, on a read-only root"
    remove_smoke_containers
}

# image.json: what was built, from what, how big, and how long it took.
record() {
    local facts
    facts=$(in_image "$PULLED" 'import json, os, platform
marker = "/etc/stockday-base"
print(json.dumps({"python": platform.python_version(),
    "debian": open("/etc/debian_version").read().strip(),
    "made_from": open(marker).read().split() if os.path.exists(marker) else None}))')
    FACTS=$facts IMAGE=$IMAGE IMAGE_ID=$IMAGE_ID REVISION=$REVISION DIGEST=$DIGEST PULLED=$PULLED \
        SIZE=$SIZE PACKAGES=$PACKAGES PYTHON_IMAGE=$PYTHON_IMAGE UV_IMAGE=$UV_IMAGE \
        BASE_PACKAGES=$BASE_PACKAGES BUILD_SECONDS=$BUILD_SECONDS TOTAL_SECONDS=$SECONDS \
        python3 - "$OUT/image.json" <<'PY'
import json, os, sys
env, facts = os.environ, json.loads(os.environ["FACTS"])
base = {"image": env["PYTHON_IMAGE"], "debian": facts["debian"]}
if facts["made_from"]:
    suite, mirror = facts["made_from"]
    base["made_by"] = f"debootstrap --variant=minbase {suite} {mirror}"
    base["packages"] = env["BASE_PACKAGES"].split(",")
record = {
    "image": env["IMAGE"],
    "id": env["IMAGE_ID"],
    "revision": env["REVISION"],
    "registry_digest": env["DIGEST"],
    "pulled_as": env["PULLED"],
    "size_bytes": int(env["SIZE"]),
    "size_mb": round(int(env["SIZE"]) / 1e6, 1),
    "python_version": facts["python"],
    "base": base,
    "uv_image": env["UV_IMAGE"],
    "packages": int(env["PACKAGES"]),
    "sbom": "sbom.cdx.json",
    "build_seconds": int(env["BUILD_SECONDS"]),
    "total_seconds": int(env["TOTAL_SECONDS"]),
}
with open(sys.argv[1], "w") as out:
    json.dump(record, out, indent=2)
print(json.dumps(record, indent=2))
PY
}

cleanup() {
    remove_smoke_containers
    stop_registry
}

# Build, publish to a local registry, pull back by digest, check the SBOM, run every service.
build_and_check() {
    FRESH=no
    if [[ ${1:-} == --fresh ]]; then
        FRESH=yes
        shift
    fi
    [[ $# -le 1 ]] || die "usage: image.sh [--fresh] [OUT_DIR] | image.sh sbom IMAGE FILE"
    [[ $(id -u) -eq 0 ]] ||
        die "needs root (apt-get, debootstrap, rootful podman): run it with sudo"
    OUT=$(mkdir -p "${1:-$ROOT/build/image}" && cd "${1:-$ROOT/build/image}" && pwd)
    REVISION=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo dev)
    [[ -z $(git -C "$ROOT" status --porcelain 2>/dev/null) ]] || REVISION+=-dirty
    IMAGE=localhost/stockday:$REVISION
    SMOKE_CONTAINERS=()
    trap cleanup EXIT
    install_missing
    configure_podman
    dockerfile_images
    make_python_base
    make_uv_image
    build_image
    IMAGE_ID=$(podman image inspect --format '{{.Id}}' "$IMAGE")
    SIZE=$(podman image inspect --format '{{.Size}}' "$IMAGE")
    write_sbom "$OUT/sbom.cdx.json"
    push_and_pull
    check_sbom "$PULLED" "$OUT/sbom.cdx.json"
    smoke
    record
}

ENGINE=${CONTAINER_ENGINE:-podman}
UV=${UV:-$(command -v uv || echo "$HOME/.local/bin/uv")}
[[ -x $UV ]] || die "needs uv (make bootstrap installs it), or UV=/path/to/uv"
if [[ ${1:-} == sbom ]]; then
    [[ $# -eq 3 ]] || die "usage: image.sh sbom IMAGE FILE"
    write_sbom "$3"
    check_sbom "$2" "$3"
else
    build_and_check "$@"
fi
