#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager from Debian's `kubernetes` source package
# (1.20.2, versioned 1.20.5+really1.20.2 in bookworm) into a project-local prefix, for the workspaces tests against a real API server
# (tests/kube/cluster.py). etcd comes from Debian's etcd-server package.
#
#   scripts/install-kube-apiserver.sh [PREFIX]
#
# PREFIX: the argument, else $TESSERA_KUBE_PREFIX, else <repo>/out/tools/kube-1.20.2.
# Layout afterwards (what tests/kube/cluster.py looks for):
#   PREFIX/bin/kube-apiserver
#   PREFIX/bin/kube-controller-manager
#   PREFIX/.tessera-installed            the stamp, written last
# Idempotent: a prefix whose stamp names the same version is left alone.
#
# The machine's apt configuration is not changed: the deb-src entry, the package lists it needs
# and the downloaded source live in a private directory under PREFIX and are passed to apt with
# -o options for this one download. Go's build cache ($GOCACHE, default ~/.cache/go-build) makes
# a rebuild take a fraction of a cold one.
#
# Three things the tarball needs that upstream's hack/ scripts would do (docs/WORKSPACES.md,
# "Tests against a real API server"):
#   1. build in GOPATH mode (module mode fails: "updates to go.mod needed");
#   2. generate pkg/generated/openapi/zz_generated.openapi.go with the vendored openapi-gen (grep
#      -R: vendor/k8s.io/api and friends are symlinks into staging/);
#   3. replace the vendored github.com/modern-go/reflect2 1.0.1, which crashes under Go >= 1.18
#      on the first custom-resource write, with Debian's 1.0.2.
set -euo pipefail

KUBE_VERSION=1.20.2

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="${1:-${TESSERA_KUBE_PREFIX:-$repo/out/tools/kube-$KUBE_VERSION}}"
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"
stamp="$prefix/.tessera-installed"
want="kubernetes@$KUBE_VERSION kube-apiserver kube-controller-manager version-ldflags-2"

if [ -f "$stamp" ] && [ "$(head -n1 "$stamp")" = "$want" ] &&
  [ -x "$prefix/bin/kube-apiserver" ] && [ -x "$prefix/bin/kube-controller-manager" ]; then
  exit 0
fi

log() { echo "install-kube-apiserver: $*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

rm -f "$stamp"
t_all="$(now)"

# Debian packages: the Go toolchain, etcd, dpkg-source, openssl for the tests' certificates.
missing=()
for pkg in golang-go etcd-server dpkg-dev openssl; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
fi

# The source package, through a private apt state: a deb-src twin of every `Types: deb` entry
# of the machine's deb822 sources (or deb-src lines of a one-line sources.list).
work="$prefix/work"
apt_dir="$work/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$work/src"
src_list="$apt_dir/sources.list"
: >"$src_list"
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  awk '
    function emit() {
      if (uris == "") return
      print "deb-src" (key != "" ? " [signed-by=" key "]" : " [lang=none]") " " uris " " suites " " comps
      uris = ""; key = ""; suites = ""; comps = ""
    }
    /^[[:space:]]*$/ { emit(); next }
    /^Types:/ { next }
    /^URIs:/ { uris = $2 }
    /^Suites:/ { $1 = ""; suites = substr($0, 2) }
    /^Components:/ { $1 = ""; comps = substr($0, 2) }
    /^Signed-By:/ { key = $2 }
    END { emit() }
  ' "$f" |
    while read -r kind opts uri suites_and_comps; do
      # deb822 lists several suites on one line; a one-line entry takes one suite each.
      read -r -a words <<<"$suites_and_comps"
      comps=""
      suites=()
      for w in "${words[@]}"; do
        if [[ "$w" == main || "$w" == contrib || "$w" == non-free* ]]; then
          comps+=" $w"
        else
          suites+=("$w")
        fi
      done
      for s in "${suites[@]}"; do echo "$kind $opts $uri $s$comps"; done
    done >>"$src_list"
done
if [ -f /etc/apt/sources.list ]; then
  sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' /etc/apt/sources.list >>"$src_list"
fi
# The binary twins too: `apt-get download` of reflect2 below reads the binary package lists.
sed -n 's/^deb-src /deb /p' "$src_list" >"$src_list.bin"
cat "$src_list.bin" >>"$src_list"
rm -f "$src_list.bin"
if [ ! -s "$src_list" ]; then
  log "found no Debian archive in /etc/apt/sources.list{,.d} to take a deb-src entry from"
  exit 1
fi
apt_opts=(-o "Dir::Etc::SourceList=$src_list" -o "Dir::Etc::SourceParts=-"
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache::Archives=$apt_dir/archives"
  -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "APT::Get::List-Cleanup=0" -o "APT::Sandbox::User=root")

tree="$work/src/kubernetes-$KUBE_VERSION"
apt_updated=0
apt_update() {
  if [ "$apt_updated" = 0 ]; then
    apt-get "${apt_opts[@]}" -q update >&2
    apt_updated=1
  fi
}
if [ ! -f "$tree/.tessera-extracted" ]; then
  t="$(now)"
  log "fetching the kubernetes source package (private apt lists in $apt_dir)"
  apt_update
  rm -rf "$work/src"
  mkdir -p "$work/src"
  (cd "$work/src" && apt-get "${apt_opts[@]}" -q source --download-only kubernetes >&2)
  (cd "$work/src" && dpkg-source --no-check -x kubernetes_*.dsc "$tree" >&2)
  touch "$tree/.tessera-extracted"
  log "source ready ($(elapsed "$t"))"
fi

# Debian's reflect2 1.0.2 over the vendored 1.0.1.
if [ ! -f "$tree/.tessera-reflect2" ]; then
  deb_dir="$work/reflect2"
  rm -rf "$deb_dir"
  mkdir -p "$deb_dir"
  apt_update
  (cd "$deb_dir" && apt-get "${apt_opts[@]}" -q download golang-github-modern-go-reflect2-dev >&2)
  dpkg-deb -x "$deb_dir"/golang-github-modern-go-reflect2-dev_*.deb "$deb_dir/x"
  new_src="$deb_dir/x/usr/share/gocode/src/github.com/modern-go/reflect2"
  vendored="$tree/vendor/github.com/modern-go/reflect2"
  if [ ! -f "$new_src/reflect2.go" ] || [ ! -d "$vendored" ]; then
    log "reflect2: expected $new_src/reflect2.go and $vendored"
    exit 1
  fi
  find "$vendored" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) -delete
  find "$new_src" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' \
    -exec cp {} "$vendored/" \;
  touch "$tree/.tessera-reflect2"
fi

# GOPATH mode, as upstream's hack/ scripts build.
gopath="$work/gopath"
mkdir -p "$gopath/src/k8s.io"
ln -sfn "$tree" "$gopath/src/k8s.io/kubernetes"
export GOPATH="$gopath" GO111MODULE=off GOPROXY=off CGO_ENABLED=0 GOFLAGS=
pkg_root="$gopath/src/k8s.io/kubernetes"

openapi="$tree/pkg/generated/openapi/zz_generated.openapi.go"
if [ ! -f "$openapi" ]; then
  t="$(now)"
  log "generating $openapi"
  (cd "$pkg_root" && go build -p 2 -o "$work/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen)
  dirs="$(cd "$pkg_root" && grep -Rl --include='*.go' '+k8s:openapi-gen=' \
    pkg cmd plugin third_party vendor/k8s.io 2>/dev/null |
    grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' |
    xargs -n1 dirname | sort -u |
    sed -e 's#^vendor/##' -e 't' -e 's#^#k8s.io/kubernetes/#' | paste -sd, -)"
  (cd "$pkg_root" && "$work/openapi-gen" --input-dirs "$dirs" \
    --output-package k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
    -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt --output-base "$gopath/src" \
    --report-filename /dev/null >&2)
  if [ ! -f "$openapi" ]; then
    log "openapi-gen did not write $openapi"
    exit 1
  fi
  log "openapi generated ($(elapsed "$t"))"
fi

t="$(now)"
# Both version packages (as upstream's hack/lib/version.sh): component-base answers --version,
# client-go's answers the server's /version, which clients (and tessera-operator) read.
ldflags="-s -w"
for version_pkg in k8s.io/kubernetes/vendor/k8s.io/component-base/version \
  k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
  ldflags+=" -X $version_pkg.gitVersion=v$KUBE_VERSION -X $version_pkg.gitMajor=1"
  ldflags+=" -X $version_pkg.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)"
  ldflags+=" -X $version_pkg.gitTreeState=clean -X $version_pkg.gitCommit=debian-$KUBE_VERSION"
done
mkdir -p "$prefix/bin"
for cmd in kube-apiserver kube-controller-manager; do
  log "go build $cmd"
  (cd "$pkg_root" && go build -p 2 -ldflags "$ldflags" -o "$prefix/bin/$cmd.new" "./cmd/$cmd")
  mv "$prefix/bin/$cmd.new" "$prefix/bin/$cmd"
done
log "built ($(elapsed "$t"))"

"$prefix/bin/kube-apiserver" --version >&2
echo "$want" >"$stamp"
log "done in $(elapsed "$t_all"): $prefix/bin"
