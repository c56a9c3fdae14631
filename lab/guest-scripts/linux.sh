# Scenario "linux": the Linux aoe driver against one target.
# Parameters (all sizes in MiB, offsets in MiB from the start of the export):
#   mtu, knownoff/knownmib (a region the host filled with pseudo-random data),
#   patoff/patmib (O_DIRECT write + read-back), fsmib (ext4 at offset 0),
#   tputoff/tputmib (dd throughput, written then read).

net_up "$P_mtu"
discover 30

res size bytes="$(blockdev --getsize64 "$DEV")"
frames=$(dmesg | sed -n 's/.*setting \([0-9]*\) byte data frames.*/\1/p' | tail -n 1)
res frames bytes="${frames:-none}"
res identify fw="$(cat "/sys/block/etherd!e$P_shelf.$P_slot/firmware-version" 2>/dev/null)" \
	sectors="$(dmesg | sed -n 's/.* has \([0-9]*\) sectors.*/\1/p' | tail -n 1)"

# 1. read what the host wrote (read path alone)
step read-known 60
res known md5="$(dd if="$DEV" bs=1M skip="$P_knownoff" count="$P_knownmib" iflag=direct 2>/dev/null | md5)"
step_done

# 2. O_DIRECT write of random data in 1 MiB requests, then 512-byte requests over
#    its first 128 KiB, then read the whole region back
step integrity 180
dd if=/dev/urandom of=/tmp/pat bs=1M count="$P_patmib" 2>/dev/null
dd if=/dev/urandom of=/tmp/small bs=512 count=256 2>/dev/null
dd if="/tmp/pat" of="$DEV" bs=1M seek="$P_patoff" oflag=direct conv=notrunc 2>/dev/null || fail write-1m
dd if="/tmp/small" of="$DEV" bs=512 seek=$((P_patoff * 2048)) oflag=direct conv=notrunc 2>/dev/null || fail write-512
dd if=/tmp/small of=/tmp/pat bs=512 conv=notrunc 2>/dev/null
written=$(md5 </tmp/pat)
readback=$(dd if="$DEV" bs=1M skip="$P_patoff" count="$P_patmib" iflag=direct 2>/dev/null | md5)
res integrity mib="$P_patmib" written="$written" readback="$readback"
[ "$written" = "$readback" ] || fail integrity
rm -f /tmp/pat /tmp/small
step_done

# 3. ext4: mkfs, mount, write files, unmount, remount, verify
step mkfs 240
/opt/host/mke2fs -q -F -t ext4 -b 4096 -E lazy_itable_init=0,lazy_journal_init=0,nodiscard "$DEV" $((P_fsmib * 256)) >/tmp/mkfs.log 2>&1 || {
	sed 's/^/DIAG mkfs: /' /tmp/mkfs.log
	fail mkfs
}
step_done
step ext4 240
if mount -t ext4 "$DEV" /mnt; then
	mkdir -p /mnt/dir
	cp /bin/busybox /mnt/busybox
	dd if=/dev/urandom of=/mnt/random bs=64k count=32 2>/dev/null
	i=0
	while [ $i -lt 100 ]; do
		echo "file $i written at $(now_cs)" >"/mnt/dir/f$i"
		i=$((i + 1))
	done
	(cd /mnt && find . -type f | sort | xargs md5sum) >/tmp/sums
	files=$(wc -l </tmp/sums)
	umount /mnt || fail umount
	echo 3 >/proc/sys/vm/drop_caches
	if mount -t ext4 "$DEV" /mnt; then
		if (cd /mnt && md5sum -c /tmp/sums) >/tmp/check 2>&1; then ok=1; else
			ok=0
			sed 's/^/DIAG md5sum: /' /tmp/check | grep -v ': OK$'
			fail ext4-verify
		fi
		umount /mnt || fail umount2
		res ext4 files="$files" verified="$ok"
	else
		fail remount
	fi
else
	fail mount
fi
step_done

# 4. throughput (reported, not judged): O_DIRECT 1 MiB requests
step throughput $((60 + P_tputmib))
t0=$(now_cs)
dd if=/dev/zero of="$DEV" bs=1M seek="$P_tputoff" count="$P_tputmib" oflag=direct 2>/dev/null || fail tput-write
t1=$(now_cs)
res tput dir=write bytes=$((P_tputmib * 1048576)) cs=$((t1 - t0))
t0=$(now_cs)
dd if="$DEV" of=/dev/null bs=1M skip="$P_tputoff" count="$P_tputmib" iflag=direct 2>/dev/null || fail tput-read
t1=$(now_cs)
res tput dir=read bytes=$((P_tputmib * 1048576)) cs=$((t1 - t0))
step_done

# 5. (aoetest.late=1) a target that starts after the driver, then grows online
[ -n "$P_late" ] && . /aoetest/late.sh
