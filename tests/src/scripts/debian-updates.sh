# Lists what bookworm-security and bookworm-updates carry that is newer than
# the installed packages, and the CVE ids the newer changelogs name.
#
# Runs in a throw-away container of the built image (never committed), with
# the image's own apt and dpkg, so versions compare exactly as dpkg does.
# Output, tab-separated:
#   update  PACKAGE INSTALLED CANDIDATE SUITE SOURCE SOURCE-VERSION
#   fix     SOURCE  VERSION   CVE
# where VERSION is the changelog entry that names the CVE.
set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
apt-get update -qq >/dev/null
work=$(mktemp -d)
chmod 755 "$work"
cd "$work"

apt list --upgradable 2>/dev/null |
    sed -n 's#^\([^/]*\)/\([^ ]*\) \([^ ]*\) [^ ]* \[upgradable from: \([^]]*\)\]$#\1 \2 \3 \4#p' \
    > upgradable

while read -r pkg suite candidate installed; do
    source=$(dpkg-query -W -f '${source:Package}' "$pkg")
    source_version=$(dpkg-query -W -f '${source:Version}' "$pkg")
    printf 'update\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$pkg" "$installed" "$candidate" "${suite%%,*}" "$source" "$source_version"

    # One changelog per source package; a binary package whose doc directory
    # is a link to another's has none, so try the next one of that source.
    [ -e "done.$source" ] && continue
    apt-get download -qq "$pkg=$candidate" >/dev/null 2>&1 || continue
    # Native packages (apt, dpkg...) keep their Debian changelog as
    # changelog.gz; other packages' changelog.gz is the upstream one.
    for deb in ./*.deb; do
        for name in changelog.Debian.gz changelog.gz; do
            dpkg-deb --fsys-tarfile "$deb" |
                tar -xO --wildcards "./usr/share/doc/*/$name" 2>/dev/null |
                gzip -dc > changelog 2>/dev/null || true
            [ -s changelog ] && break
        done
    done
    rm -f ./*.deb
    [ -s changelog ] || continue
    touch "done.$source"

    version=
    while IFS= read -r line; do
        case "$line" in
        [a-z0-9]*" ("*")"*";"*)
            version=${line#*(}
            version=${version%%)*}
            if dpkg --compare-versions "$version" le "$source_version"; then break; fi
            ;;
        *)
            [ -n "$version" ] || continue
            for cve in $(printf '%s\n' "$line" | grep -o 'CVE-[0-9]\{4\}-[0-9]\{4,\}' || true); do
                printf 'fix\t%s\t%s\t%s\n' "$source" "$version" "$cve"
            done
            ;;
        esac
    done < changelog
    rm -f changelog
done < upgradable
