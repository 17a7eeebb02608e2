#!/bin/sh
# Installs the Debian/Ubuntu packages that building and testing rosterd need,
# when run as root; otherwise prints the one command that installs them.
set -eu

# compiler and headers: the NSS/PAM modules and systemd-python's C extension;
# the rest are the real tools the test suite drives.
PACKAGES="gcc make pkg-config libsystemd-dev libpam0g-dev python3 python3-venv python3-dev
valgrind pamtester openssh-server util-linux openssl nginx
debootstrap dpkg-dev debhelper fakeroot lintian rpm chromium chromium-driver"

missing=""
for p in $PACKAGES; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        "install ok installed") ;;
        *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "rosterd needs these system packages:$missing" >&2
    echo "Install them with:  sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "Installing system packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
