# Phase "late" of the linux scenario (aoetest.late=1), sourced by linux.sh.
# 1. A second target, e$P_lshelf.$P_lslot, starts only now -- long after the
#    driver was loaded -- while the bridge drops broadcasts to the guest, so
#    its start-up announcement is lost; the host then lets them pass again
#    and says "late-open". The disk must appear within the target's announce
#    interval, not at the driver's next discovery round (60 s).
# 2. ext4 on it, mounted; the host grows the backing file, runs
#    `vblade ctl resize` and says "grown"; aoe-revalidate, resize2fs online,
#    data written past the old end, everything verified after a remount.
# Parameters: lshelf, lslot, lwait (seconds to wait for the disk at most),
#   lfill (MiB to write after the grow: more than the old size).
LDEV=/dev/etherd/e$P_lshelf.$P_lslot

# host -> guest messages: "<uptime_cs> <word>" in /tmp/hostmsg
stty -F /dev/console -echo 2>/dev/null
(while read -r line; do echo "$(now_cs) $line" >>/tmp/hostmsg; done) </dev/console &
READER=$!

# wait_msg <word> <seconds>: prints the uptime (cs) at which the host's word arrived
wait_msg() {
	n=0
	while ! grep -q " $1\$" /tmp/hostmsg 2>/dev/null; do
		sleep 0.1
		n=$((n + 1))
		[ $n -gt $(($2 * 10)) ] && return 1
	done
	grep " $1\$" /tmp/hostmsg | head -n 1 | cut -d' ' -f1
}

step late-discover $((P_lwait + 150))
res late-ready uptime_cs="$(now_cs)"
if open_cs=$(wait_msg late-open 120); then
	deadline=$((open_cs + P_lwait * 100))
	while [ ! -b "$LDEV" ] && [ "$(now_cs)" -lt $deadline ]; do sleep 0.05; done
	if [ -b "$LDEV" ]; then
		res late-discover dev="$LDEV" cs=$(($(now_cs) - open_cs))
	else
		res late-discover dev=none cs=$(($(now_cs) - open_cs))
		fail late-discover
	fi
else
	fail no-late-open-message
fi
step_done

if [ -b "$LDEV" ]; then
	step late-grow 300
	size0=$(blockdev --getsize64 "$LDEV")
	/opt/host/mke2fs -q -F -t ext4 -b 4096 -E lazy_itable_init=0,lazy_journal_init=0,nodiscard "$LDEV" >/tmp/lmkfs.log 2>&1 || {
		sed 's/^/DIAG mkfs: /' /tmp/lmkfs.log
		fail late-mkfs
	}
	mkdir -p /mnt2
	mount -t ext4 "$LDEV" /mnt2 || fail late-mount
	dd if=/dev/urandom of=/mnt2/before bs=64k count=64 2>/dev/null
	(cd /mnt2 && md5sum before) >/tmp/lsums
	kb0=$(df -k /mnt2 | awk 'NR == 2 { print $2 }')
	sync
	res late-grow-ready size="$size0" fs_kb="$kb0"
	if wait_msg grown 120 >/dev/null; then
		# with the file system mounted: the driver re-reads IDENTIFY on revalidate
		/opt/host/aoe-revalidate "e$P_lshelf.$P_lslot" || fail late-revalidate
		n=0
		while [ "$(blockdev --getsize64 "$LDEV")" = "$size0" ] && [ $n -lt 200 ]; do
			sleep 0.1
			n=$((n + 1))
		done
		size1=$(blockdev --getsize64 "$LDEV")
		/opt/host/resize2fs "$LDEV" >/tmp/lresize.log 2>&1 || fail late-resize2fs
		sed 's/^/DIAG resize2fs: /' /tmp/lresize.log
		kb1=$(df -k /mnt2 | awk 'NR == 2 { print $2 }')
		# more than the old file system could hold: lands past the old end
		dd if=/dev/zero of=/mnt2/after bs=1M count="$P_lfill" conv=fsync 2>/dev/null || fail late-fill
		(cd /mnt2 && md5sum after) >>/tmp/lsums
		umount /mnt2 || fail late-umount
		echo 3 >/proc/sys/vm/drop_caches
		ok=0
		if mount -t ext4 "$LDEV" /mnt2; then
			if (cd /mnt2 && md5sum -c /tmp/lsums) >/tmp/lcheck 2>&1; then ok=1; else sed 's/^/DIAG md5sum: /' /tmp/lcheck; fi
			umount /mnt2 || fail late-umount2
		fi
		[ $ok = 1 ] || fail late-verify
		sectors=$(dmesg | sed -n "s/.* e$P_lshelf\.$P_lslot .* has \([0-9]*\) sectors.*/\1/p" | tr '\n' ',')
		res late-grow size0="$size0" size1="$size1" fs_kb0="$kb0" fs_kb1="$kb1" verified="$ok" dmesg_sectors="${sectors%,}"
	else
		fail no-grown-message
	fi
	step_done
fi
kill "$READER" 2>/dev/null
