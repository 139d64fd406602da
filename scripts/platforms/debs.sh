# Sourced by the runtime scripts: Debian packages for another release or CPU, fetched with apt
# under a directory of their own (apt's own lists, cache and sources there; nothing installed,
# the system's apt state untouched, and not read either: a package installed here in a newer
# version does not stand in for the release's own) and unpacked.
#
#   fetch_debs <suite> <deb-arch> <work-dir> <unpack-dir> <package>...
#
# <work-dir> is removed afterwards; <unpack-dir> is replaced by the packages' files.
fetch_debs() {
  local suite=$1 deb_arch=$2 apt_dir=$3 dest=$4
  shift 4
  rm -rf "$apt_dir"
  mkdir -p "$apt_dir/parts" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
  cat >"$apt_dir/parts/$suite.sources" <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  local apt_opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt_dir/parts" -o "Dir::State::Lists=$apt_dir/lists"
    -o "Dir::Cache=$apt_dir/cache" -o Dir::State::status=/dev/null -o "APT::Sandbox::User=$(id -un)" -o "APT::Architecture=$deb_arch" -o "APT::Architectures::=$deb_arch")
  local packages=()
  for p in "$@"; do packages+=("$p:$deb_arch"); done
  apt-get "${apt_opts[@]}" update -qq
  (cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" download "${packages[@]}" >/dev/null)
  rm -rf "$dest"
  for deb in "$apt_dir"/debs/*.deb; do dpkg -x "$deb" "$dest"; done
  rm -rf "$apt_dir"
}
