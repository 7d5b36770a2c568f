# Sourced by every build step, from a directory mounted at /dev/salve-build
# for that step only (/dev is a tmpfs, so nothing of it reaches the layer).
# It points the installers at the host's CA bundle, which trusts the
# machine's TLS-intercepting proxy; the image never holds that bundle.
export DEBIAN_FRONTEND=noninteractive
export PIP_CERT=/dev/salve-build/ca.crt
export PIP_DISABLE_PIP_VERSION_CHECK=1
export NODE_EXTRA_CA_CERTS=/dev/salve-build/ca.crt
export npm_config_cafile=/dev/salve-build/ca.crt
set -eu
