#!/bin/sh
# Builds weave-ts_<version>_<arch>.deb from a built checkout (make build) into OUTDIR (default: the
# checkout) and prints its path. It carries the Node that runs this script as /usr/lib/weave-ts/node
# (cap and our addon are built for its ABI), dist/ less the tests, benchmarks and lab, the production
# node_modules copied from the checkout's (nothing is fetched), the native addon and weavewait.
set -eu
umask 022
root=$(cd "$(dirname "$0")/.." && pwd)
here="$root/packaging"
out=$(cd "${1:-$root}" && pwd)
for f in dist/cli/main.js native/build/Release/weave_native.node native/wait/build/weavewait native/relay/build/relay node_modules/cap; do
  [ -e "$root/$f" ] || { echo "build-deb: $f is missing: build the checkout first (make build)" >&2; exit 1; }
done
node=$(node -p process.execPath)
version=$(node -p "require('$root/package.json').version")
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
lib="$stage/usr/lib/weave-ts"
mkdir -p "$lib"

# The tree the code expects: it finds its addon, weavewait and status page from the nearest package.json.
install -m 755 "$node" "$lib/node"
cp "$root/package.json" "$lib/"
tar -C "$root" -cf - --exclude=dist/test --exclude=dist/bench --exclude=dist/lab --exclude='*.map' \
  dist api/page native/build/Release/weave_native.node native/wait/build native/relay/build | tar -C "$lib" -xf -
# The production packages, top-level entries only (a package's own node_modules comes with it), less
# their TypeScript sources, type declarations and source maps: half the bytes, none of them ever loaded.
(cd "$root" && npm ls --omit=dev --all --parseable) >"$stage/prod"
sed "s|^$root/||" "$stage/prod" | grep -E '^node_modules/(@[^/]+/)?[^/]+$' |
  tar -C "$root" -cf - --exclude='*.map' --exclude='*.ts' --exclude='*.mts' --exclude='*.cts' -T - | tar -C "$lib" -xf -
rm "$stage/prod"
"$lib/node" -e "require('$lib/node_modules/cap'); require('$lib/native/build/Release/weave_native.node')" ||
  { echo "build-deb: cap or the addon does not load in $node (built for another Node?)" >&2; exit 1; }

install -D -m 755 "$here/weave" "$stage/usr/bin/weave"
install -D -m 755 "$here/weave-net" "$stage/usr/lib/cni/weave-net"
install -D -m 644 "$here/weave.service" "$stage/usr/lib/systemd/system/weave.service"
install -D -m 644 "$here/weave.default" "$stage/etc/default/weave"
install -D -m 644 "$here/copyright" "$stage/usr/share/doc/weave-ts/copyright"
chmod -R u+rwX,go+rX,go-w "$stage"

mkdir -m 755 "$stage/DEBIAN"
size=$(du -sk "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" "$here/control" >"$stage/DEBIAN/control"
echo /etc/default/weave >"$stage/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 755 "$here/$s" "$stage/DEBIAN/$s"; done
deb="$out/weave-ts_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"${DEB_COMPRESSION:-gzip}" --build "$stage" "$deb" >/dev/null
echo "$deb"
