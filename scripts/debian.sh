# need_debian COMMAND PACKAGE: installs PACKAGE from Debian unless COMMAND (a command or
# a path) exists; as root or through sudo. Sourced by the scripts that need host tools.
# Waits up to two minutes for another install to finish (scripts/test builds the node in
# the background while the images are built, and both may install).
need_debian() {
  command -v "$1" >/dev/null || [[ -e $1 ]] && return 0
  printf '%s: installing %s (Debian) for %s\n' "${0##*/}" "$2" "$1" >&2
  local sudo=()
  [[ $(id -u) == 0 ]] || sudo=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -o DPkg::Lock::Timeout=120 -y -qq "$2" >/dev/null ||
    { "${sudo[@]}" apt-get update -o DPkg::Lock::Timeout=120 -qq >/dev/null && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -o DPkg::Lock::Timeout=120 -y -qq "$2" >/dev/null; } ||
    { printf '%s: could not install %s (apt-get install %s)\n' "${0##*/}" "$2" "$2" >&2; exit 1; }
}
