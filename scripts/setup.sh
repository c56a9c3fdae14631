#!/usr/bin/env bash
# Install what the project and its test suite need, then build it.
#
#   sudo bash scripts/setup.sh
#
# 1. Debian packages (as root only): the reference initiators (aoetools),
#    iproute2 for namespaces, tshark for captures, QEMU
#    with SeaBIOS and iPXE for the interop tests, and the tools that build the
#    guests' initramfs, debootstrap for the package test, and Ceph (a
#    one-node cluster the rbd export tests start in a namespace). Only the missing
#    ones are installed; `apt-get update` runs only when something is missing
#    and the package lists are absent or do not know a missing package, or
#    when installing from them fails.
# 2. `npm ci`: the exact dependencies of package-lock.json, then the
#    package's own install script (node-gyp rebuild: the native addon, and
#    the bench's C reflector and load generator in build/bench/) and prepare
#    script (tsc: dist/).
# 3. The reference target, Debian's vblade, unpacked (as root only) into
#    /opt/aoe-target-peers/vblade where only the tests and the bench look
#    (lab/peers.ts). Installed as a package, its /usr/sbin/vblade and vbladed
#    would come before our commands on root's PATH.
#
# Safe to run again: a second run installs nothing and only redoes `npm ci`.
set -euo pipefail

cd "$(dirname "$0")/.."

PACKAGES=(
  aoetools         # aoeping, aoecfg, aoe-sancheck
  iproute2         # ip netns, veth, bridge, tuntap
  tshark           # packet captures in tests
  qemu-system-x86  # guests for the Linux aoe driver and iPXE (depends on seabios, ipxe-qemu)
  ipxe             # ipxe.lkrn
  ipxe-qemu        # iPXE option ROMs for QEMU NICs
  busybox-static   # the guests' userland
  e2fsprogs        # mke2fs for guest file systems, ext4 for the reflink refusal tests
  fio              # copied into the guest by npm run bench:initiator
  xfsprogs         # mkfs.xfs -m reflink=1 for the views and snapshot tests
  util-linux       # losetup, mount
  util-linux-extra # fincore: what of a view is in the page cache (views tests)
  kmod             # modprobe/depmod to order guest modules
  cpio             # initramfs archives
  gzip
  systemd          # systemd-analyze verify for the unit files
  procps           # sysctl, ps
  psmisc           # fuser, killall -0 style checks in tests
  strace           # counting fdatasync calls in the group-commit tests
  debootstrap      # the clean Debian root the package test installs the .deb in
  libnbd-dev       # headers native/nbd.c builds with (it loads libnbd.so.0 at run time)
  libnbd-bin       # nbdcopy, nbdinfo: the nbd tests read back what the target wrote
  nbdkit           # NBD servers (memory, file, error and delay filters) for the nbd tests
  qemu-utils       # qemu-img, qemu-io: qcow2 images and snapshots for the nbd tests
  ceph-mon         # the rbd tests' single-node Ceph: its monitor,
  ceph-osd         #   its one OSD (memstore, in memory),
  ceph-common      #   the ceph and rbd commands that make its pool and images
  librbd-dev       # librbd.h/librados.h to build native/rbd.c (librbd is loaded with dlopen at run time)
)

log() { printf '[setup] %s\n' "$*"; }

start=$SECONDS
step_start=$SECONDS
step_done() { log "$1 took $((SECONDS - step_start)) s"; step_start=$SECONDS; }

# ------------------------------------------------------------ Debian packages

installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done

# True when the package lists are missing or have no candidate for one of the
# missing packages. (Their age says little: apt keeps the mirror's dates on
# the files. Lists too old to install from are caught by the retry below.)
lists_need_update() {
  local lists=(/var/lib/apt/lists/*_Packages*)
  if [[ ! -e "${lists[0]}" ]]; then
    log "no package lists yet"
    return 0
  fi
  local p
  for p in "$@"; do
    local policy
    policy=$(apt-cache policy "$p" 2>/dev/null || true)
    if ! [[ $policy =~ Candidate:\ [^\(] ]]; then
      log "package lists do not know $p"
      return 0
    fi
  done
  return 1
}

if ((${#missing[@]} == 0)); then
  log "Debian packages: all ${#PACKAGES[@]} already installed"
elif [[ $EUID -ne 0 ]]; then
  log "NOT ROOT: cannot install the missing Debian packages: ${missing[*]}"
  log "run 'sudo bash scripts/setup.sh', or 'sudo apt-get install --no-install-recommends ${missing[*]}'"
  log "(the tests that need them will be skipped outside CI and fail in CI)"
else
  log "Debian packages missing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark's wireshark-common asks whether non-root users may capture: no.
  echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
  apt_install() {
    log "apt-get install -y --no-install-recommends $*"
    apt-get install -y -q --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
  }
  updated=0
  if lists_need_update "${missing[@]}"; then
    log "apt-get update"
    apt-get update -q
    updated=1
  else
    log "package lists are fresh: no apt-get update"
  fi
  if ! apt_install "${missing[@]}"; then
    if ((updated)); then
      log "apt-get install failed"
      exit 1
    fi
    # Lists a few hours old can name versions the mirror no longer has.
    log "apt-get install failed; refreshing the package lists and trying again"
    apt-get update -q
    apt_install "${missing[@]}"
  fi
  still=()
  for p in "${missing[@]}"; do installed "$p" || still+=("$p"); done
  if ((${#still[@]} > 0)); then
    log "still not installed: ${still[*]}"
    exit 1
  fi
fi
step_done "Debian packages"

# ------------------------------------------------------------------------ npm

for tool in node npm; do
  command -v "$tool" >/dev/null || { log "$tool not found: install Node.js 20 or later"; exit 1; }
done
log "node $(node --version), npm $(npm --version 2>/dev/null)"
log "npm ci (dependencies from package-lock.json, then node-gyp rebuild and tsc)"
npm ci --no-audit --no-fund
step_done "npm ci"

# ------------------------------------------------------- the reference target

if [[ $EUID -eq 0 ]]; then
  node dist/lab/peers.js
  step_done "reference target"
else
  log "NOT ROOT: Debian's vblade is not unpacked for the comparison tests (they will be skipped outside CI)"
fi
if installed vblade; then
  log "WARNING: Debian's vblade package is installed: its /usr/sbin/vblade and vbladed come before"
  log "  this project's commands on root's PATH. The tests do not need it; remove it with: apt-get remove vblade"
fi

log "done in $((SECONDS - start)) s"
