#!/usr/bin/env bash
# Kernel command line for low-latency trading (the deployment seed's setup_kernel.sh):
#   isolcpus=CORES   take the trading cores away from the scheduler
#   nohz_full=CORES  stop the scheduler tick on them while one task runs
#   hugepagesz=1G hugepages=N  reserve 1 GiB pages at boot (no TLB misses on big buffers)
#
# Dry run by default: shows the current command line, the GRUB line before and after, and
# the commands to finish. Changes nothing unless --apply, which backs the GRUB file up first.
# A reboot is needed afterwards.
#
# Usage: scripts/setup_kernel.sh [--cores 6,7] [--hugepages 8] [--hugepagesz 1G] [--apply]
# Env:   GRUB_FILE (default /etc/default/grub): the file edited; tests point it at a copy.
set -euo pipefail

CORES="6,7"
HUGEPAGES="8"
HUGEPAGESZ="1G"
APPLY=0
GRUB_FILE="${GRUB_FILE:-/etc/default/grub}"
DEFAULT_GRUB=/etc/default/grub

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --cores) CORES="${2:?--cores needs a list such as 6,7}"; shift 2 ;;
        --cores=*) CORES="${1#*=}"; shift ;;
        --hugepages) HUGEPAGES="${2:?--hugepages needs a count}"; shift 2 ;;
        --hugepages=*) HUGEPAGES="${1#*=}"; shift ;;
        --hugepagesz) HUGEPAGESZ="${2:?--hugepagesz needs a size such as 1G}"; shift 2 ;;
        --hugepagesz=*) HUGEPAGESZ="${1#*=}"; shift ;;
        --apply) APPLY=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "setup_kernel.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

if ! [[ "$CORES" =~ ^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$ ]]; then
    echo "setup_kernel.sh: --cores must be a CPU list such as 6,7 or 4-7 (got '$CORES')" >&2; exit 2
fi
if ! [[ "$HUGEPAGES" =~ ^[0-9]+$ ]]; then
    echo "setup_kernel.sh: --hugepages must be a number (got '$HUGEPAGES')" >&2; exit 2
fi
if ! [[ "$HUGEPAGESZ" =~ ^[0-9]+[KMG]$ ]]; then
    echo "setup_kernel.sh: --hugepagesz must look like 2M or 1G (got '$HUGEPAGESZ')" >&2; exit 2
fi

PARAMS="isolcpus=$CORES nohz_full=$CORES hugepagesz=$HUGEPAGESZ hugepages=$HUGEPAGES"
# Parameters this script owns: any old value is replaced, never duplicated.
OWNED_RE='^(isolcpus|nohz_full|hugepagesz|hugepages|default_hugepagesz)='

echo "Kernel parameters for trading cores $CORES:"
echo "  $PARAMS"
echo
echo "Current kernel command line (/proc/cmdline):"
echo "  $(cat /proc/cmdline 2>/dev/null || echo '(not readable)')"
echo

# The new value of GRUB_CMDLINE_LINUX_DEFAULT: old words minus the owned ones, plus PARAMS.
new_value() {
    local old="$1" out="" word
    for word in $old; do
        if ! [[ "$word" =~ $OWNED_RE ]]; then out="$out $word"; fi
    done
    echo "${out# } $PARAMS" | sed 's/^ //'
}

if [ ! -f "$GRUB_FILE" ]; then
    echo "GRUB file $GRUB_FILE not found."
    echo "Add these parameters to your boot loader's kernel command line by hand:"
    echo "  $PARAMS"
    [ "$APPLY" = 1 ] && { echo "setup_kernel.sh: cannot apply without $GRUB_FILE" >&2; exit 1; }
    exit 0
fi

OLD_LINE="$(grep -E '^GRUB_CMDLINE_LINUX_DEFAULT=' "$GRUB_FILE" | tail -n 1 || true)"
OLD_VALUE="$(printf '%s' "$OLD_LINE" | sed -E 's/^GRUB_CMDLINE_LINUX_DEFAULT=//; s/^"(.*)"$/\1/; s/^'"'"'(.*)'"'"'$/\1/')"
NEW_LINE="GRUB_CMDLINE_LINUX_DEFAULT=\"$(new_value "$OLD_VALUE")\""

echo "GRUB edit in $GRUB_FILE:"
echo "  - ${OLD_LINE:-(no GRUB_CMDLINE_LINUX_DEFAULT line)}"
echo "  + $NEW_LINE"
echo

if [ "$OLD_LINE" = "$NEW_LINE" ]; then
    echo "Already configured: nothing to change."
    exit 0
fi

if [ "$APPLY" != 1 ]; then
    echo "Dry run: nothing changed. To apply:"
    echo "  sudo $0 --cores $CORES --hugepages $HUGEPAGES --hugepagesz $HUGEPAGESZ --apply"
    echo "then: sudo update-grub (Debian/Ubuntu) or sudo grub2-mkconfig -o /boot/grub2/grub.cfg, and reboot."
    echo "After the reboot: latentspeed verify (or scripts/verify_system.sh)."
    exit 0
fi

if [ ! -w "$GRUB_FILE" ]; then
    echo "setup_kernel.sh: $GRUB_FILE is not writable (run with sudo)" >&2; exit 1
fi
BACKUP="$GRUB_FILE.bak.$(date -u +%Y%m%d_%H%M%S)"
cp -p "$GRUB_FILE" "$BACKUP"
echo "Backup: $BACKUP"

TMP="$(mktemp "$GRUB_FILE.XXXXXX")"
if [ -n "$OLD_LINE" ]; then
    # Replace the last GRUB_CMDLINE_LINUX_DEFAULT line (the one GRUB uses), keep every other line.
    last="$(grep -nE '^GRUB_CMDLINE_LINUX_DEFAULT=' "$GRUB_FILE" | tail -n 1 | cut -d: -f1)"
    awk -v n="$last" -v line="$NEW_LINE" 'NR == n { print line; next } { print }' "$GRUB_FILE" > "$TMP"
else
    { cat "$GRUB_FILE"; echo "$NEW_LINE"; } > "$TMP"
fi
chmod --reference="$GRUB_FILE" "$TMP" 2>/dev/null || true
mv "$TMP" "$GRUB_FILE"
echo "Updated $GRUB_FILE."

if [ "$GRUB_FILE" = "$DEFAULT_GRUB" ]; then
    if command -v update-grub >/dev/null 2>&1; then
        update-grub
    elif command -v grub2-mkconfig >/dev/null 2>&1; then
        grub2-mkconfig -o /boot/grub2/grub.cfg
    else
        echo "Regenerate the GRUB config with your distribution's tool."
    fi
    echo "Reboot to apply, then run: latentspeed verify"
else
    echo "(Not the system GRUB file: boot config not regenerated.)"
fi
