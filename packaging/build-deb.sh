#!/bin/sh
# Build a Debian package of provd from this repository:
#
#     packaging/build-deb.sh [OUTDIR]          (default OUTDIR: dist/)
#
# Result: OUTDIR/provd_<version>_<arch>.deb with
#   /opt/provd/                      a virtualenv (provd and its dependencies) on the
#                                    system's /usr/bin/python3
#   /usr/bin/provd                   -> /opt/provd/bin/provd
#   /lib/systemd/system/provd.service
#   /etc/provd/provd.toml            conffile (from etc/provd.toml); /etc/provd/tls (0700)
#   /usr/share/doc/provd/            README.md, copyright, examples/ (Documentation=)
#   /usr/share/man/man1/provd.1.gz, bash and zsh completions (generated from the parser)
#
# Needs: python3 with venv (python3-venv), dpkg-deb, and pip access to provd's dependencies
# (PyPI or a mirror configured for pip). Build on the Debian release you deploy to: the
# virtualenv is tied to that release's Python minor version.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-"$ROOT/dist"}
PYTHON=${PYTHON:-/usr/bin/python3}
PREFIX=/opt/provd

VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$ROOT/provd/__init__.py")
ARCH=$(dpkg --print-architecture)
PYVER=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
PYNEXT=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1] + 1}")')

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
STAGE="$WORK/root"
VENV="$STAGE$PREFIX"

echo "provd $VERSION ($ARCH, python$PYVER): building in $WORK" >&2

# 1. The virtualenv, built where it will live inside the staging tree; then every path
#    that names the staging tree is rewritten to the installed one.
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --no-compile "$ROOT"
"$VENV/bin/pip" uninstall --quiet --yes pip setuptools >/dev/null 2>&1 || true
grep -rlI --null "$STAGE" "$VENV" | xargs -0 -r sed -i "s|$STAGE||g"
find "$VENV" -name __pycache__ -prune -exec rm -rf {} +
"$PYTHON" -m compileall -q -s "$STAGE" -p / "$VENV/lib" >/dev/null

# 2. Man page and completions, generated from the parser (shtab, argparse-manpage) by a
#    throw-away tools venv that imports the staged provd.
"$PYTHON" -m venv "$WORK/tools"
"$WORK/tools/bin/pip" install --quiet shtab argparse-manpage
PYTHONPATH="$VENV/lib/python$PYVER/site-packages" "$WORK/tools/bin/python" \
    "$ROOT/packaging/gen_docs.py" "$WORK/gen"

# 3. The file system tree.
install -d "$STAGE/usr/bin" "$STAGE/lib/systemd/system" "$STAGE/etc/provd" \
    "$STAGE/usr/share/doc/provd/examples" "$STAGE/usr/share/man/man1" \
    "$STAGE/usr/share/bash-completion/completions" "$STAGE/usr/share/zsh/vendor-completions"
install -d -m 0700 "$STAGE/etc/provd/tls"
ln -s "$PREFIX/bin/provd" "$STAGE/usr/bin/provd"
install -m 0644 "$ROOT/systemd/provd.service" "$STAGE/lib/systemd/system/provd.service"
install -m 0640 "$ROOT/etc/provd.toml" "$STAGE/etc/provd/provd.toml"
install -m 0644 "$ROOT/README.md" "$STAGE/usr/share/doc/provd/README.md"
install -m 0644 "$ROOT/LICENSE" "$STAGE/usr/share/doc/provd/copyright"
install -m 0644 "$ROOT/etc/provd.toml" "$ROOT/etc/sim.toml" "$STAGE/usr/share/doc/provd/examples/"
gzip -9n -c "$WORK/gen/provd.1" > "$STAGE/usr/share/man/man1/provd.1.gz"
install -m 0644 "$WORK/gen/provd.bash" "$STAGE/usr/share/bash-completion/completions/provd"
install -m 0644 "$WORK/gen/_provd" "$STAGE/usr/share/zsh/vendor-completions/_provd"

# 4. Package metadata and maintainer scripts.
install -d "$STAGE/DEBIAN"
SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" \
    -e "s/@PYVER@/$PYVER/g" -e "s/@PYNEXT@/$PYNEXT/g" \
    "$ROOT/packaging/debian/control" > "$STAGE/DEBIAN/control"
install -m 0644 "$ROOT/packaging/debian/conffiles" "$STAGE/DEBIAN/conffiles"
for script in postinst prerm postrm; do
    install -m 0755 "$ROOT/packaging/debian/$script" "$STAGE/DEBIAN/$script"
done

mkdir -p "$OUT"
DEB="$OUT/provd_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DEB" >/dev/null
echo "$DEB"
