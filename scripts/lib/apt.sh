# Sourced by scripts/*.sh: `apt_install [APT-GET OPTIONS] PACKAGE...` installs the Debian packages
# that are missing, and nothing else: naming an installed package in `apt-get install` upgrades it,
# and `apt-get update` is the slow part, so both happen only when something is missing.
apt_install() {
    local opts=() missing=() pkg
    while (($#)) && [[ $1 == -* ]]; do opts+=("$1"); shift; done
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        echo "installing Debian packages: ${missing[*]}" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${opts[@]}" "${missing[@]}" >/dev/null
    fi
}
