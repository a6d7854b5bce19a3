#!/usr/bin/env bash
# vm.sh - the RDMA harness's guest runner: boot throw-away QEMU guests that
# each have a real RDMA verbs device (Soft-RoCE, rdma_rxe) and run a command
# in every one of them. See tests/rdma/README.md.
#
# Usage: tests/rdma/vm.sh [--guests N] [--share DIR] [--timeout S] [--expose DIR]...
#                         [--env VAR=VALUE]... [--verbose] -- CMD [ARG]...
#        tests/rdma/vm.sh --prepare
#
#   --guests N     guests to boot (1..8, default 2), all on one virtual Ethernet
#   --share DIR    host directory the guests share read-write, at the same path;
#                  CMD runs in it (default: the current directory). Each guest's
#                  console goes to DIR/console.gI.log.
#   --timeout S    power everything off after S seconds (default 1200): exit 124
#   --expose DIR   a host directory the guest must see although it lies under
#                  /tmp, /run or /var/tmp (which are fresh tmpfs in the guests);
#                  the project tree is always exposed
#   --env VAR=VAL  export VAR to CMD (repeatable)
#   --verbose      consoles live on stdout too (prefixed [gI]), kernel messages on
#   --prepare      only build the cache (kernel, busybox, modules, initramfs)
#
# In guest I (0-based), CMD runs as root, chrooted in the host's / (read-only),
# with the environment IPCD_VM=1 IPCD_VM_INDEX=I IPCD_VM_COUNT=N
# IPCD_VM_IP=10.77.0.(I+1) IPCD_VM_PEERS="10.77.0.1 ... 10.77.0.N" (every
# guest, itself included) IPCD_VM_SHARE=DIR IPCD_VM_DEV=rxe0, and unlimited
# locked memory (RDMA registrations). /tmp, /run, /var/tmp and /dev/shm are
# its own tmpfs. Sockets cannot be bound on the share (9p): keep them in /tmp.
#
# Exit status: 0 when CMD exited 0 in every guest; else guest 0's status if it
# failed, else the first failing guest's; 124 timeout; 125 a guest did not run
# CMD (boot or setup failed: its console log says why); 2 usage, missing host
# packages (scripts/setup.sh rdma installs them) or a failed --prepare.
#
# Environment: IPCD_VM_CACHE (default /var/cache/ipcd-rdma-vm, or
# ~/.cache/ipcd-rdma-vm when that is not writable), IPCD_VM_MEM (MiB per
# guest, 1024), IPCD_VM_SMP (vCPUs per guest; 2 for one guest, else 1),
# IPCD_VM_ACCEL (auto, tcg or kvm).
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)

die() {
	echo "vm.sh: $*" >&2
	exit 2
}
note() { echo "vm.sh: $*" >&2; }

# ---- the cache: guest kernel and initramfs ----------------------------------------
#
# The guests boot Debian's own kernel: the image linux-image-amd64 depends on,
# fetched with apt-get download and unpacked, never installed on the host.
# Its rdma_rxe is the only software RDMA device it has (CONFIG_RDMA_SIW is
# off). The initramfs is busybox (from the busybox-static .deb, same way),
# these modules and guest-init.sh; everything else comes from the host's /
# over 9p, so nothing here needs rebuilding when the project changes.
#
# crc32_generic: rdma_rxe computes the RoCE ICRC with the crypto API's
# "crc32" and cannot load its provider itself (no modprobe in the guest):
# without it `rdma link add` fails with "failed to init crc32 algorithm".
guest_modules="crc32_generic virtio_pci virtio_net 9pnet_virtio 9p rdma_rxe ib_uverbs rdma_ucm ib_umad"
cache_format=1	# bump when what build_cache() makes changes

cache_dir() {
	if [[ -n ${IPCD_VM_CACHE:-} ]]; then
		echo "$IPCD_VM_CACHE"
	elif mkdir -p /var/cache/ipcd-rdma-vm 2>/dev/null && [[ -w /var/cache/ipcd-rdma-vm ]]; then
		echo /var/cache/ipcd-rdma-vm
	else
		echo "${XDG_CACHE_HOME:-$HOME/.cache}/ipcd-rdma-vm"
	fi
}

need_tools() {	# command...
	local t missing=()

	for t in "$@"; do
		command -v "$t" >/dev/null || missing+=("$t")
	done
	[[ ${#missing[@]} -eq 0 ]] ||
		die "missing ${missing[*]}: run scripts/setup.sh rdma (as root)"
}

# The kernel package linux-image-amd64 points at now, e.g. linux-image-6.1.0-56-amd64.
kernel_package() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}

# apt-get download PKG and unpack it into DIR.
fetch_deb() {	# package dir
	local pkg=$1 dir=$2 dl

	dl=$(mktemp -d "$cache/dl.XXXXXX")
	# _apt cannot write to the cache dir: let root download unsandboxed, quietly
	if ! (cd "$dl" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null 2>&1); then
		rm -rf "$dl"
		return 1
	fi
	mkdir -p "$dir"
	dpkg-deb -x "$dl"/*.deb "$dir"
	rm -rf "$dl"
}

# The bzImage's payload is an xz stream; unpacked, it is an ELF vmlinux that
# QEMU boots through its PVH entry point. Under TCG that saves the ~5 s the
# guest would spend decompressing itself on every boot.
extract_vmlinux() {	# bzimage out
	local off

	for off in $(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$1" | cut -d: -f1); do
		# xz stops reading at the stream's end: tail's SIGPIPE is no failure
		if { tail -c +"$((off + 1))" "$1" || true; } | xz -dc --single-stream >"$2" 2>/dev/null &&
			[[ $(head -c 4 "$2" | od -An -tx1 | tr -d ' ') == 7f454c46 ]]; then
			return 0
		fi
	done
	rm -f "$2"
	return 1
}

build_cache() {	# kernel-package stamp
	local kpkg=$1 stamp=$2 work kver m f

	note "building the guest cache in $cache ($kpkg, busybox-static)"
	rm -rf "$cache"/build.* "$cache"/dl.*	# an earlier build that died (we hold the lock)
	work=$(mktemp -d "$cache/build.XXXXXX")
	fetch_deb "$kpkg" "$work/kernel" || die "apt-get download $kpkg failed"
	fetch_deb busybox-static "$work/busybox" || die "apt-get download busybox-static failed"
	kver=$(ls "$work/kernel/lib/modules")
	[[ -n $kver && -e $work/kernel/boot/vmlinuz-$kver ]] || die "$kpkg: no kernel or modules"

	mkdir -p "$work/initrd/bin" "$work/initrd/lib/modules"
	cp "$work/busybox/bin/busybox" "$work/initrd/bin/busybox"
	cp "$here/guest-init.sh" "$work/initrd/init"
	chmod 755 "$work/initrd/init"
	# The modules and their dependencies in load order, from the package's own
	# module index (depmod -b builds it in the unpacked tree).
	depmod -b "$work/kernel" "$kver"
	for m in $guest_modules; do
		modprobe -d "$work/kernel" -S "$kver" --show-depends "$m" |
			awk '$1 == "insmod" { print $2 }'
	done | awk '!seen[$0]++' | while read -r f; do
		cp "$f" "$work/initrd/lib/modules/"
		basename "$f" >>"$work/initrd/lib/modules/order"
	done
	grep -q '^rdma_rxe\.ko' "$work/initrd/lib/modules/order" || die "$kpkg has no rdma_rxe"
	# Not compressed: under TCG unpacking it costs more than loading 6 MB.
	(cd "$work/initrd" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$work/initrd.cpio"

	if ! extract_vmlinux "$work/kernel/boot/vmlinuz-$kver" "$work/kernel.img"; then
		note "no xz payload found: booting the bzImage itself (slower)"
		cp "$work/kernel/boot/vmlinuz-$kver" "$work/kernel.img"
	fi
	mv -f "$work/kernel.img" "$cache/kernel.img"
	mv -f "$work/initrd.cpio" "$cache/initrd.cpio"
	echo "$stamp" >"$cache/stamp"
	rm -rf "$work"
}

# Make the cache current (idempotent; one builder at a time).
prepare() {
	local kpkg stamp

	need_tools apt-get apt-cache dpkg-deb depmod modprobe cpio xz flock
	cache=$(cache_dir)
	mkdir -p "$cache" || die "cannot create $cache"
	exec 9>"$cache/.lock"
	flock 9
	kpkg=$(kernel_package)
	if [[ -z $kpkg && $(id -u) -eq 0 ]]; then
		apt-get update -qq >/dev/null 2>&1 || true
		kpkg=$(kernel_package)
	fi
	if [[ -z $kpkg ]]; then
		# Offline, or no package lists: an existing cache still boots.
		[[ -s $cache/stamp ]] || die "cannot resolve linux-image-amd64 (apt-get update as root?)"
		note "cannot resolve linux-image-amd64: using the cached $(cut -d' ' -f1 "$cache/stamp")"
	else
		stamp="$kpkg $cache_format $(cat "$here/guest-init.sh" <(echo "$guest_modules") |
			sha256sum | cut -c1-16)"
		if [[ ! -s $cache/kernel.img || ! -s $cache/initrd.cpio ||
			$(cat "$cache/stamp" 2>/dev/null) != "$stamp" ]]; then
			build_cache "$kpkg" "$stamp"
		fi
	fi
	exec 9>&-
}

# ---- running guests ----------------------------------------------------------------

# TCG (QEMU's software CPU) unless the host has real hardware virtualisation:
# on a nested host /dev/kvm may be a paravirtual stand-in (kvm_pvm) under
# which an unmodified kernel makes no visible progress, so /dev/kvm alone is
# no reason to use it.
accel_args() {
	local accel=${IPCD_VM_ACCEL:-auto}

	if [[ $accel == auto ]]; then
		accel=tcg
		if [[ -w /dev/kvm && (-d /sys/module/kvm_intel || -d /sys/module/kvm_amd) ]]; then
			accel=kvm
		fi
	fi
	case $accel in
	kvm) echo "-accel kvm -cpu host" ;;
	tcg) echo "-accel tcg,thread=multi,tb-size=256 -cpu max" ;;
	*) die "IPCD_VM_ACCEL must be auto, tcg or kvm" ;;
	esac
}

# One guest's QEMU, its console (CRs dropped) into the share's console log,
# unbuffered: when a run is killed, the log still shows how far it got.
# QEMU's exit status goes to $ctl/qemu.I.rc: 124 is our timeout.
run_guest() {	# index
	local i=$1 wire mac kappend accel log=$share/console.g$1.log
	local -a qemu

	read -ra accel <<<"$(accel_args)"
	mac=$(printf '52:54:00:77:00:%02x' $((i + 1)))
	if [[ $guests -gt 1 ]]; then
		# One Ethernet segment for every guest: QEMU carries the frames as UDP
		# multicast, and localaddr keeps them on the host's loopback.
		# The port is random per run, so that runs side by side do not share a wire.
		wire="socket,id=net0,mcast=239.255.78.1:$mcast_port,localaddr=127.0.0.1"
	else
		# Alone: a NIC on an empty hub. rxe loops local traffic back itself.
		wire="hubport,id=net0,hubid=0"
	fi
	# acpi=noirq: under TCG, the ACPI PCI interrupt links cost ~0.5 s per
	# virtio device to set up, and virtio uses MSI-X anyway.
	kappend="console=ttyS0 panic=-1 mitigations=off random.trust_cpu=on acpi=noirq"
	kappend+=" ipcdvm.idx=$i ipcdvm.n=$guests ipcdvm.verbose=$verbose"
	[[ $verbose -eq 1 ]] || kappend+=" quiet loglevel=1"
	# shellcheck disable=SC2054  # the commas are QEMU's
	qemu=(qemu-system-x86_64 "${accel[@]}" -M pc -m "$mem" -smp "$smp"
		-nodefaults -no-user-config -display none -vga none -no-reboot
		-pidfile "$ctl/qemu.$i.pid"
		# qboot: a minimal firmware that boots in milliseconds, SeaBIOS in seconds
		-bios qboot.rom
		-kernel "$cache/kernel.img" -initrd "$cache/initrd.cpio" -append "$kappend"
		-chardev stdio,id=con,signal=off -serial chardev:con
		# romfile=: no PXE option ROM (ipxe-qemu is only a recommended package)
		-netdev "$wire" -device "virtio-net-pci,netdev=net0,mac=$mac,romfile="
		# 9p, not a disk image: the guest runs the host's programs from its /
		-fsdev "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap"
		-device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot
		-fsdev "local,id=share,path=$share,security_model=none,multidevs=remap"
		-device virtio-9p-pci,fsdev=share,mount_tag=share
		-fsdev "local,id=ctl,path=$ctl,security_model=none"
		-device virtio-9p-pci,fsdev=ctl,mount_tag=ctl)
	{
		local rc=0
		timeout -k 10 "$timeout" "${qemu[@]}" </dev/null 2>"$ctl/qemu.$i.err" || rc=$?
		echo "$rc" >"$ctl/qemu.$i.rc"
	} | awk '{ sub(/\r$/, ""); print; fflush() }' | if [[ $verbose -eq 1 ]]; then
		tee "$log" | sed -u "s/^/[g$i] /"
	else
		cat >"$log"
	fi
}

stop_guests() {
	local f

	for f in "$ctl"/qemu.*.pid; do
		if [[ -e $f ]]; then kill "$(cat "$f")" 2>/dev/null || true; fi
	done
}

run_guests() {
	local i rc=0 r start
	local -a pids=()

	ctl=$(mktemp -d "${TMPDIR:-/tmp}/ipcd-vm.XXXXXX")
	# shellcheck disable=SC2064  # $ctl is fixed now
	trap "stop_guests; rm -rf '$ctl'" EXIT
	trap 'exit 130' INT TERM
	echo "$share" >"$ctl/share"
	printf '%s\n' "${expose[@]}" >"$ctl/expose"
	{
		[[ ${#envs[@]} -eq 0 ]] || printf 'export %q\n' "${envs[@]}"
		printf '%q ' "$@"
		echo
	} >"$ctl/cmd.sh"
	mcast_port=$((20000 + RANDOM % 20000))
	rm -f "$share"/console.g*.log
	start=$SECONDS
	for ((i = 0; i < guests; i++)); do
		run_guest "$i" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do
		wait "$i" || true
	done
	note "$guests guest(s), $((SECONDS - start)) s"

	for ((i = guests - 1; i >= 0; i--)); do
		if [[ -s $ctl/status.$i ]]; then
			r=$(cat "$ctl/status.$i")
		elif [[ $(cat "$ctl/qemu.$i.rc" 2>/dev/null) == @(124|137) ]]; then
			r=124
			note "guest $i: timed out after $timeout s"
		else
			r=125
			note "guest $i: no status (QEMU exited $(cat "$ctl/qemu.$i.rc" 2>/dev/null || echo '?'))"
			sed 's/^/  qemu: /' "$ctl/qemu.$i.err" >&2 || true
		fi
		if [[ $r -ne 0 ]]; then
			note "guest $i: status $r; console: $share/console.g$i.log (last lines below)"
			tail -n 15 "$share/console.g$i.log" | sed "s/^/  [g$i] /" >&2 || true
			rc=$r	# the loop runs down to guest 0: the lowest failing guest wins
		fi
	done
	return "$rc"
}

# ---- arguments ---------------------------------------------------------------------

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
	exit "${1:-0}"
}

guests=2
share=$PWD
timeout=1200
verbose=0
only_prepare=0
expose=("$top")
envs=()
while [[ $# -gt 0 ]]; do
	case $1 in
	--guests) guests=${2:?--guests N}; shift ;;
	--share) share=${2:?--share DIR}; shift ;;
	--timeout) timeout=${2:?--timeout S}; shift ;;
	--expose)
		d=$(cd "${2:?--expose DIR}" 2>/dev/null && pwd -P) || die "no directory $2"
		expose+=("$d")
		shift ;;
	--env) [[ ${2:-} == [A-Za-z_]*=* ]] || die "--env wants VAR=VALUE"; envs+=("$2"); shift ;;
	--verbose) verbose=1 ;;
	--prepare) only_prepare=1 ;;
	-h | --help) usage 0 ;;
	--) shift; break ;;
	*) die "unknown option '$1' (--help)" ;;
	esac
	shift
done
[[ $guests =~ ^[1-8]$ ]] || die "--guests wants 1..8"
[[ $timeout =~ ^[0-9]+$ && $timeout -gt 0 ]] || die "--timeout wants seconds"
[[ $only_prepare -eq 1 || $# -gt 0 ]] || die "no command (--help)"
share=$(cd "$share" 2>/dev/null && pwd -P) || die "no share directory"
# QEMU's -fsdev and the guest's mount options are comma and space separated
[[ $share != *[[:space:],]* ]] || die "the share path must not contain spaces or commas"
mem=${IPCD_VM_MEM:-1024}
smp=${IPCD_VM_SMP:-$([[ $guests -eq 1 ]] && echo 2 || echo 1)}

prepare
[[ $only_prepare -eq 0 ]] || { note "cache ready: $cache"; exit 0; }
need_tools qemu-system-x86_64 timeout
run_guests "$@"
