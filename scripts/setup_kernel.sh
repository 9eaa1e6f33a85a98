#!/usr/bin/env bash
# Kernel command line for low-latency trading:
#   isolcpus=CORES   take the trading cores away from the scheduler
#   nohz_full=CORES  stop the scheduler tick on them while one task runs
#   hugepagesz=1G hugepages=N  reserve huge pages at boot (no TLB misses on big buffers)
#
# Defaults come from this machine (latentspeed verify uses the same rules): the last two CPUs
# (the last one on a 2-3 CPU machine), 1 GiB pages if the kernel has them (else 2 MiB), at
# most an eighth of RAM and at most 8 GiB. Dry run by default: shows the current command line,
# the GRUB line before and after, and the commands to finish. Changes nothing unless --apply,
# which backs the GRUB file up first. A reboot is needed afterwards.
#
# Usage: scripts/setup_kernel.sh [--cores 6,7] [--hugepages 8] [--hugepagesz 1G] [--apply]
# Env:   GRUB_FILE (default /etc/default/grub): the file edited; tests point it at a copy.
#        SYSROOT (default /): where proc/ and sys/ are read from; tests point it at a fake tree.
set -euo pipefail

CORES=""
HUGEPAGES=""
HUGEPAGESZ=""
APPLY=0
GRUB_FILE="${GRUB_FILE:-/etc/default/grub}"
DEFAULT_GRUB=/etc/default/grub
SYSROOT="${SYSROOT:-}"
SYSROOT="${SYSROOT%/}"

usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }

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

# --- recommendation for this machine (same rules as latentspeed_core/datacollect/checks.py) ---
# Online CPUs, expanded from the kernel's list format ("0-3,6") into one number per line.
online_cpus() {
    local list
    list="$(cat "$SYSROOT/sys/devices/system/cpu/online" 2>/dev/null || true)"
    if [ -z "$list" ]; then
        grep -oE '^cpu[0-9]+ ' "$SYSROOT/proc/stat" 2>/dev/null | tr -dc '0-9\n' && return
        echo 0; return
    fi
    echo "$list" | tr ',' '\n' | awk -F- 'NF == 2 { for (i = $1; i <= $2; i++) print i; next } NF == 1 && $1 != "" { print $1 }'
}
mapfile -t ONLINE < <(online_cpus | sort -n)
NCPU=${#ONLINE[@]}
if [ "$NCPU" -ge 4 ]; then TAKE=2; elif [ "$NCPU" -ge 2 ]; then TAKE=1; else TAKE=0; fi
REC_CORES=""
if [ "$TAKE" -gt 0 ]; then REC_CORES="$(IFS=,; echo "${ONLINE[*]:NCPU-TAKE}")"; fi
MEM_KB="$(awk '/^MemTotal:/ { print $2 }' "$SYSROOT/proc/meminfo" 2>/dev/null || true)"
MEM_KB="${MEM_KB:-0}"
BUDGET_KB=$(( MEM_KB / 8 ))
[ "$BUDGET_KB" -gt $(( 8 * 1048576 )) ] && BUDGET_KB=$(( 8 * 1048576 ))
if { [ -d "$SYSROOT/sys/kernel/mm/hugepages/hugepages-1048576kB" ] || grep -qw pdpe1gb "$SYSROOT/proc/cpuinfo" 2>/dev/null; } \
        && [ "$BUDGET_KB" -ge 1048576 ]; then
    REC_SZ="1G"; REC_PAGES=$(( BUDGET_KB / 1048576 )); UNIT="1 GiB"
else
    REC_SZ="2M"; REC_PAGES=$(( BUDGET_KB / 2048 )); UNIT="2 MiB"
fi

echo "This machine: $NCPU CPU(s), $(( (MEM_KB + 524288) / 1048576 )) GiB RAM. Recommended:"
if [ "$TAKE" -gt 0 ]; then
    echo "  cores $REC_CORES: the last $TAKE of $NCPU CPUs; the others keep the OS and interrupts"
else
    echo "  no isolated cores: with one CPU there is nothing to isolate"
fi
if [ "$MEM_KB" -gt 0 ]; then
    echo "  $REC_PAGES x $UNIT huge pages: at most an eighth of RAM and at most 8 GiB, so most memory stays free"
else
    echo "  huge pages: RAM size unknown ($SYSROOT/proc/meminfo unreadable); reserve at most an eighth of RAM"
fi
echo

CORES="${CORES:-$REC_CORES}"
HUGEPAGESZ="${HUGEPAGESZ:-$REC_SZ}"
HUGEPAGES="${HUGEPAGES:-$REC_PAGES}"
if [ -z "$CORES" ]; then
    echo "setup_kernel.sh: no core to isolate on this machine; give --cores LIST to choose anyway" >&2; exit 2
fi
if [ "$HUGEPAGES" = 0 ]; then
    echo "setup_kernel.sh: no room for huge pages on this machine; give --hugepages N to choose anyway" >&2; exit 2
fi

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
echo "  $(cat "$SYSROOT/proc/cmdline" 2>/dev/null || echo '(not readable)')"
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
