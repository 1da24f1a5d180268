#!/bin/sh
# Debian chroots holding a distribution Blender, for `make test-gui`.
#
#   tests/gui/chroots.sh build [trixie|sid|all]   build (once) and cache outside the repository
#   tests/gui/chroots.sh path DIST                 print the cached root (empty if not built)
#   tests/gui/chroots.sh run DIST CMD [ARGS...]    run CMD inside, with /proc /sys /dev /dev/pts /tmp
#                                                  bound only for the duration, always unmounted after
#
# trixie ships Blender 4.3 (Python 3.13), sid ships Blender 5.2 LTS (Python 3.14). Neither installs
# on the host's bookworm, hence the chroots. Each is ~1.9 GB and takes minutes, so it is built once
# under $INHABIT_GUI_CACHE (default ~/.cache/inhabit-gui) and reused; a build that stopped half way
# is redone from scratch because only a finished one carries the .inhabit-ready stamp.
# Needs root (debootstrap, chroot, mount).
set -eu

CACHE=${INHABIT_GUI_CACHE:-$HOME/.cache/inhabit-gui}
MIRROR=${INHABIT_GUI_MIRROR:-http://deb.debian.org/debian}
PACKAGES="blender xvfb xauth x11-apps imagemagick xdotool x11-utils libgl1-mesa-dri libglx-mesa0 \
libegl-mesa0 python3-numpy tesseract-ocr tesseract-ocr-eng"
# sid's Blender 5.2 also imports these at start-up (its extension tooling).
SID_EXTRA="python3-cattr python3-requests"
STAMP=.inhabit-ready

die() { echo "chroots.sh: $*" >&2; exit 1; }

root_of() { echo "$CACHE/$1"; }

check_dist() {
    case "$1" in trixie|sid) ;; *) die "unknown distribution '$1': use trixie or sid" ;; esac
}

# POSIX sh has no local variables: the helpers below use their own names (mb_, ub_) so they never
# overwrite a caller's.
mount_binds() {
    mb_root=$1
    mount -t proc proc "$mb_root/proc"
    mount --rbind /sys "$mb_root/sys"
    mount --make-rslave "$mb_root/sys"
    mount --bind /dev "$mb_root/dev"
    mount --bind /dev/pts "$mb_root/dev/pts"
    mount --bind /tmp "$mb_root/tmp"
}

unmount_binds() {
    ub_root=$1
    # Reverse order; lazy as a last resort so a process still exiting never leaves a bind behind.
    for ub_m in tmp dev/pts dev sys proc; do
        if mountpoint -q "$ub_root/$ub_m"; then
            umount -R "$ub_root/$ub_m" 2>/dev/null || umount -R -l "$ub_root/$ub_m"
        fi
    done
}

extra_for() {
    if [ "$1" = sid ]; then echo "$SID_EXTRA"; fi
}

update_options_for() {
    # sid's Release file reads as expired against some clocks.
    if [ "$1" = sid ]; then echo "-o Acquire::Check-Valid-Until=false"; fi
}

# A cached root built from an older package list gets what the list gained since.
add_missing() {
    am_missing=""
    for am_p in $PACKAGES $(extra_for "$1"); do
        chroot "$2" dpkg -s "$am_p" >/dev/null 2>&1 || am_missing="$am_missing $am_p"
    done
    [ -n "$am_missing" ] || return 0
    echo "chroots.sh: adding$am_missing to $1"
    trap 'unmount_binds "$2"' EXIT INT TERM
    mount_binds "$2"
    # shellcheck disable=SC2046,SC2086
    chroot "$2" env DEBIAN_FRONTEND=noninteractive apt-get $(update_options_for "$1") update
    # shellcheck disable=SC2086
    chroot "$2" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $am_missing
    chroot "$2" apt-get clean
    unmount_binds "$2"
    trap - EXIT INT TERM
}

build_one() {
    dist=$1
    root=$(root_of "$dist")
    if [ -e "$root/$STAMP" ]; then
        add_missing "$dist" "$root"
        echo "chroots.sh: $dist ready at $root: $(cat "$root/$STAMP")"
        return 0
    fi
    command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install -y debootstrap"
    partial="$root.partial"
    if [ -d "$partial" ]; then
        unmount_binds "$partial"
        rm -rf --one-file-system "$partial"
    fi
    mkdir -p "$CACHE"
    echo "chroots.sh: debootstrap $dist into $partial"
    debootstrap --variant=minbase "$dist" "$partial" "$MIRROR"
    cp /etc/resolv.conf "$partial/etc/resolv.conf"
    # Tools that list mounts (Blender among them) read /etc/mtab.
    ln -sf /proc/self/mounts "$partial/etc/mtab"
    extra=$(extra_for "$dist")
    update_opts=$(update_options_for "$dist")
    trap 'unmount_binds "$partial"' EXIT INT TERM
    mount_binds "$partial"
    # shellcheck disable=SC2086
    chroot "$partial" env DEBIAN_FRONTEND=noninteractive apt-get $update_opts update
    # shellcheck disable=SC2086
    chroot "$partial" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        $PACKAGES $extra
    chroot "$partial" apt-get clean
    chroot "$partial" blender --version | head -1 > "$partial/$STAMP"
    unmount_binds "$partial"
    trap - EXIT INT TERM
    mv "$partial" "$root"
    echo "chroots.sh: $dist ready at $root: $(cat "$root/$STAMP")"
}

cmd=${1:-}
[ -n "$cmd" ] || die "usage: chroots.sh build [trixie|sid|all] | path DIST | run DIST CMD..."
shift
case "$cmd" in
build)
    which=${1:-all}
    if [ "$which" = all ]; then
        build_one trixie
        build_one sid
    else
        check_dist "$which"
        build_one "$which"
    fi
    ;;
path)
    check_dist "${1:-}"
    root=$(root_of "$1")
    if [ -e "$root/$STAMP" ]; then echo "$root"; fi
    ;;
run)
    dist=${1:-}
    check_dist "$dist"
    shift
    root=$(root_of "$dist")
    [ -e "$root/$STAMP" ] || die "$dist is not built: run tests/gui/chroots.sh build $dist"
    # One user of a root's mounts at a time.
    exec 9>"$root.lock"
    flock 9
    trap 'unmount_binds "$root"' EXIT INT TERM
    mount_binds "$root"
    status=0
    chroot "$root" "$@" || status=$?
    exit $status
    ;;
*)
    die "unknown command '$cmd'"
    ;;
esac
