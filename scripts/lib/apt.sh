# Shared by scripts/toolchains/*.sh (source it): installing a server from Debian's packages.
#
#   apt_install_server NAME SERVICE PACKAGE...
#
# installs PACKAGE... with apt-get (as root, or through sudo), refreshing the package lists only if they are
# over an hour old (so that several toolchain scripts in one run update them once), then stops the system
# service SERVICE if the package started one (the tests and the `just` recipes start their own servers on
# their own ports and directories). Without apt-get it fails, naming what to install by hand (NAME).
apt_install_server() {
    local name="$1" service="$2"
    shift 2
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$name is missing and apt-get is not available: install it by hand" >&2
        return 1
    fi
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    echo "installing $name (apt $*)..." >&2
    if [ -z "$(find /var/lib/apt/lists -maxdepth 0 -mmin -60 2>/dev/null)" ]; then
        $sudo apt-get update -qq
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
        $sudo systemctl stop "$service" || true
    fi
}
