#!/bin/busybox sh
# shellcheck shell=dash
# guest-init.sh - PID 1 of a tests/rdma/vm.sh guest. vm.sh --prepare copies it
# into the initramfs as /init, next to busybox and the kernel modules.
#
# What it does, in order:
#   1. load the modules (virtio, 9p, rdma_rxe and the verbs character devices);
#   2. mount vm.sh's private control directory (9p tag "ctl"): the command,
#      the share path, the directories to expose, and where statuses go back;
#   3. mount the host's / read-only (9p tag "hostroot") and chroot into it, so
#      the host's build tree, libipcd.so, redis, socat and rdma-core run as
#      they are: no root filesystem image to build or keep in sync;
#   4. fresh tmpfs on /tmp, /run, /var/tmp, /dev/shm: each guest needs its own
#      writable scratch space for sockets and files (the host's / is read-only
#      here), and must not see the host's monitor sockets;
#   5. the share directory read-write (9p tag "share") at its host path;
#   6. eth0 = 10.77.0.(idx+1)/24, Soft-RoCE device rxe0 on it;
#   7. wait until every guest got that far, run the command, report its status
#      to the control directory, power off.
# Anything that goes wrong before the command runs reports status 125.
# Kernel arguments: ipcdvm.idx=I ipcdvm.n=N ipcdvm.verbose=0|1.

/bin/busybox mkdir -p /bin /proc /sys /dev /ctl /host /orig
/bin/busybox --install -s /bin
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

idx=0
n=1
verbose=0
for arg in $(cat /proc/cmdline); do
	case $arg in
	ipcdvm.idx=*) idx=${arg#*=} ;;
	ipcdvm.n=*) n=${arg#*=} ;;
	ipcdvm.verbose=*) verbose=${arg#*=} ;;
	esac
done
ip="10.77.0.$((idx + 1))"
say() { echo "ipcd-vm g$idx: $*"; }

# Power off without waiting for anything: nothing in here needs a clean
# shutdown, and the share is unmounted (flushed) before.
bye() {
	sync
	poweroff -f
	sleep 10
}

report() {	# status
	echo "$1" >"/ctl/status.$idx.tmp" && mv "/ctl/status.$idx.tmp" "/ctl/status.$idx"
}

setup_failed() {
	say "SETUP FAILED: $*"
	dmesg | tail -n 40
	report 125
	bye
}

# 1. Modules, in the dependency order vm.sh computed with modprobe --show-depends
# (there is no modprobe or module index in here).
while read -r m; do
	insmod "/lib/modules/$m" || setup_failed "insmod $m"
done </lib/modules/order

# 2. vm.sh's control directory.
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 ctl /ctl || setup_failed "mount ctl"
share=$(cat /ctl/share)

# 3. The host's /, read-only. cache=loose: it does not change under us while
# the guests run, and caching makes every exec and library load much cheaper.
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro hostroot /host ||
	setup_failed "mount the host's /"
# A second view of it that the tmpfs mounts below do not cover: exposed
# directories under /tmp or /run (a build tree in /tmp) come back from it.
mount --bind /host /orig || setup_failed "bind /orig"

# 4. The guest's own scratch space, then the kernel filesystems.
for d in tmp run var/tmp; do
	mount -t tmpfs -o mode=1777 tmpfs "/host/$d" || setup_failed "tmpfs on /$d"
done
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts devpts /host/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm
mkdir -p /host/tmp/home

# Exposed directories (vm.sh --expose, and the project tree): those the tmpfs
# mounts hid are bound back from the second view, read-only like the rest.
while read -r d; do
	case $d in
	/tmp/* | /run/* | /var/tmp/* | /dev/*) ;;
	*) continue ;;	# not hidden
	esac
	[ -d "/orig$d" ] || setup_failed "expose $d: no such directory on the host"
	mkdir -p "/host$d" && mount --bind "/orig$d" "/host$d" || setup_failed "expose $d"
done </ctl/expose

# 5. The share, read-write. cache=mmap: no caching of data or names (the
# guests see each other's files at once, which the cases' barriers rely on),
# yet shared writable mmap works.
mkdir -p "/host$share"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=mmap share "/host$share" ||
	setup_failed "mount the share $share"
mkdir -p /host/run/ipcd-vm && mount --bind /ctl /host/run/ipcd-vm || setup_failed "bind ctl"

# 6. Network and RDMA. rdma_rxe needed crc32_generic loaded (step 1): it asks
# the crypto API for "crc32", whose request_module() finds no modprobe here.
hostname "ipcd-vm$idx"
ip link set lo up
ip link set eth0 up || setup_failed "no eth0"
ip addr add "$ip/24" dev eth0 || setup_failed "ip addr add $ip"
chroot /host rdma link add rxe0 type rxe netdev eth0 || setup_failed "rdma link add rxe0"
[ -e /host/dev/infiniband/uverbs0 ] || setup_failed "no /dev/infiniband/uverbs0"
[ "$verbose" = 1 ] || echo 1 >/proc/sys/kernel/printk

# 7. Every guest up before anyone starts: a guest that boots late must not
# find its peers' servers gone. Then one ping each way primes ARP.
peers=""
i=1
while [ "$i" -le "$n" ]; do
	peers="$peers 10.77.0.$i"
	i=$((i + 1))
done
peers=${peers# }
guests_up() {
	set -- /ctl/up.*
	if [ -e "$1" ]; then echo $#; else echo 0; fi
}
echo "$ip" >"/ctl/up.$idx"
waited=0
while [ "$(guests_up)" -lt "$n" ]; do
	[ "$waited" -lt 3000 ] || setup_failed "the other guests did not come up within 300 s"
	sleep 0.1
	waited=$((waited + 1))
done
for p in $peers; do
	[ "$p" = "$ip" ] && continue
	ping -c 1 -W 10 "$p" >/dev/null 2>&1 || ping -c 1 -W 30 "$p" >/dev/null 2>&1 ||
		say "warning: $p does not answer ping"
done
say "up: $ip, rxe0 on eth0, $n guest(s), $(cut -d' ' -f1 /proc/uptime) s after boot"

# HOME in a tmpfs: the host's /root is read-only here.
chroot /host /usr/bin/env -i HOME=/tmp/home TERM=dumb LANG=C.UTF-8 \
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	IPCD_VM=1 IPCD_VM_INDEX="$idx" IPCD_VM_COUNT="$n" IPCD_VM_IP="$ip" \
	IPCD_VM_PEERS="$peers" IPCD_VM_SHARE="$share" IPCD_VM_DEV=rxe0 \
	/bin/bash -c 'ulimit -l unlimited; cd "$IPCD_VM_SHARE" && . /run/ipcd-vm/cmd.sh' \
	</dev/console >/dev/console 2>&1
rc=$?
say "command exited $rc"
report "$rc"
umount "/host$share" 2>/dev/null
bye
