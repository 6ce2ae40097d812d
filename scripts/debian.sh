# need_debian COMMAND PACKAGE: installs PACKAGE from Debian unless COMMAND (a command or
# a path) exists; as root or through sudo. Sourced by the scripts that need host tools.
need_debian() {
  command -v "$1" >/dev/null || [[ -e $1 ]] && return 0
  printf '%s: installing %s (Debian) for %s\n' "${0##*/}" "$2" "$1" >&2
  local sudo=()
  [[ $(id -u) == 0 ]] || sudo=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$2" >/dev/null ||
    { "${sudo[@]}" apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$2" >/dev/null; } ||
    { printf '%s: could not install %s (apt-get install %s)\n' "${0##*/}" "$2" "$2" >&2; exit 1; }
}
