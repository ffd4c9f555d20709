#!/usr/bin/env bash
# Installs the Debian packages a target needs when they are missing, or says what is missing.
#   scripts/install-system-deps.sh test   -> what `make test` needs
#   scripts/install-system-deps.sh demo   -> what `make demo` needs (nothing external yet)
set -euo pipefail
target=${1:-test}

# command (or an absolute path glob, for binaries off PATH) -> Debian package
declare -A needs
case "$target" in
  test) needs=([dcmcjpeg]=dcmtk [storescu]=dcmtk
               ['/usr/lib/postgresql/*/bin/initdb']=postgresql
               ['/usr/sbin/Orthanc']=orthanc
               ['/usr/share/orthanc/plugins/libOrthancDicomWeb.so']=orthanc-dicomweb
               ['/usr/bin/chromium']=chromium
               ['/usr/sbin/nginx']=nginx  # the TLS-terminating proxy of the page test
               # the independent SR/IOD validators: dciodvfy, PixelMed's DicomSRValidator
               [dciodvfy]=dicom3tools [java]=pixelmed-apps [javac]=default-jdk-headless
               ['/usr/share/java/pixelmed.jar']=pixelmed-apps
               # promtool judges the shipped Prometheus alerting rules
               [promtool]=prometheus) ;;
  demo) needs=() ;;
  *) echo "usage: $0 test|demo" >&2; exit 2 ;;
esac

missing=()
for cmd in "${!needs[@]}"; do
  if [[ $cmd == /* ]]; then
    compgen -G "$cmd" >/dev/null || missing+=("${needs[$cmd]}")
  else
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${needs[$cmd]}")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's orthanc package starts its own service (port 8042/4242) where policy-rc.d allows
  # it; the tests start their own Orthanc on free ports and want the system one stopped.
  if [[ " ${missing[*]} " == *" orthanc"* ]]; then
    service orthanc stop >/dev/null 2>&1 || true
  fi
  # Only its promtool is wanted: no Prometheus server (port 9090) runs for the tests.
  if [[ " ${missing[*]} " == *" prometheus "* ]]; then
    service prometheus stop >/dev/null 2>&1 || true
  fi
  exit 0
fi
echo "missing system packages for 'make $target': ${missing[*]}" >&2
echo "install them with: sudo apt-get install ${missing[*]}" >&2
exit 1
