#!/bin/sh
# Builds the throw-away image the pip plugin's plan is run against by hand
# (examples/docker_run.rs), and unpacks its root for detection:
#
#   - Debian bookworm with apt's python3, python3-pip, python3-venv and
#     python3-idna (BASE, default salve-dev/py:1: debootstrap --variant=minbase
#     bookworm plus those packages);
#   - a pip install into the system environment, which is externally
#     managed: requests 2.25.1 into /usr/local/lib/python3.11/dist-packages
#     (it pulls idna 2.10 there too, shadowing apt's 3.3);
#   - a venv in /opt/venv made by python3 -m venv, with requests 2.25.1,
#     urllib3 1.26.5 and flask 2.0.0;
#   - a user `app` with `pip install --user` of rich 13.0.0 in
#     /home/app/.local/lib/python3.11/site-packages;
#   - a venv without pip in /opt/nopip (python3 -m venv --without-pip), with
#     requests 2.25.1 installed into it by the system pip (--python).
#
# Usage: build.sh OUTDIR   (writes OUTDIR/rootfs; tags salve-pip-test:1)
set -eu
BASE=${BASE:-salve-dev/py:1}
OUT=${1:?usage: build.sh OUTDIR}
CA=/etc/ssl/certs/ca-certificates.crt

name=salve-pip-build-$$
docker run --name "$name" --network host -v "$CA:/ca.pem:ro" "$BASE" sh -ec '
    export PIP_CERT=/ca.pem PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
    python3 -m pip install --break-system-packages -q requests==2.25.1
    python3 -m venv /opt/venv
    /opt/venv/bin/python -m pip install -q requests==2.25.1 urllib3==1.26.5 flask==2.0.0
    python3 -m venv --without-pip /opt/nopip
    python3 -m pip --python /opt/nopip/bin/python install -q requests==2.25.1
    useradd --create-home app
    su app -c "PIP_CERT=/ca.pem python3 -m pip install -q --no-cache-dir --user --break-system-packages rich==13.0.0"
'
docker commit "$name" salve-pip-test:1 >/dev/null
rm -rf "$OUT/rootfs" && mkdir -p "$OUT/rootfs"
docker export "$name" | tar -x -C "$OUT/rootfs" --exclude='dev/*'
docker rm -f "$name" >/dev/null
echo "built salve-pip-test:1, root in $OUT/rootfs"
