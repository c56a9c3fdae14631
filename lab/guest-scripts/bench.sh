# Scenario "bench": the Linux aoe driver against several targets at once, for
# `npm run bench:initiator` (bench/initiator.ts), which parses the lines below.
# Parameters:
#   mtu; devs (comma list of shelf.slot names, one per target: e1.1,e2.1);
#   rounds; ddmib (MiB per dd); fiomib (MiB of the export fio works in);
#   fiosec (measured seconds per fio job, after 1 s of ramp); iodepth;
#   work (comma list of workloads: dd-write dd-read seq-write seq-read rand-read rand-write).
# Each round runs every workload against every target in turn (A, B, A, B, ...), so
# that a slow moment of the shared host falls on both; even rounds take the
# targets in reverse order (B, A), so that neither always goes first. Result lines:
#   AOETEST bench round=R dev=eS.L workload=dd-write bytes=N s=SECONDS
#   AOETEST bench round=R dev=eS.L workload=seq-read terse=<fio --terse-version=3 line>
# GNU dd (/opt/host/dd) is used because busybox dd prints no timing, and
# /proc/uptime counts only hundredths of a second.

net_up "$P_mtu"
DEVS=$(echo "$P_devs" | tr , ' ')
WORK=$(echo "$P_work" | tr , ' ')

use_dev() {
	DEV=/dev/etherd/$1
	DBG=/sys/kernel/debug/aoe/$1
}

t0=$(now_cs)
insmod /modules/aoe.ko || fail insmod-aoe
# one step per export, so that a watchdog line names the one that never appeared
for d in $DEVS; do
	step "discover-$d" 60
	while [ ! -b "/dev/etherd/$d" ]; do sleep 0.05; done
	res discover dev="$d" bytes="$(blockdev --getsize64 "/dev/etherd/$d")" cs=$(($(now_cs) - t0))
	step_done
done
frames=$(dmesg | sed -n 's/.*setting \([0-9]*\) byte data frames.*/\1/p' | sort -u | tr '\n' ,)
res frames bytes="${frames%,}"

# dd_run write|read: O_DIRECT 1 MiB requests over the first ddmib MiB of $DEV;
# prints "bytes=N s=SECONDS" from GNU dd's summary
# ("67108864 bytes (67 MB, 64 MiB) copied, 0.81234 s, 82.6 MB/s").
dd_run() {
	if [ "$1" = write ]; then
		/opt/host/dd if=/dev/zero of="$DEV" bs=1M count="$2" oflag=direct conv=notrunc 2>/tmp/dd.err
	else
		/opt/host/dd if="$DEV" of=/dev/null bs=1M count="$2" iflag=direct 2>/tmp/dd.err
	fi || {
		sed 's/^/DIAG dd: /' /tmp/dd.err
		return 1
	}
	sed -n 's/^\([0-9]*\) bytes .* copied, \([0-9.e+-]*\) s, .*/bytes=\1 s=\2/p' /tmp/dd.err
}

# fio_run <rw> <bs>: one libaio job at iodepth, O_DIRECT, time based; prints its terse line
fio_run() {
	/opt/host/fio --name="$1" --filename="$DEV" --direct=1 --ioengine=libaio --iodepth="$P_iodepth" \
		--rw="$1" --bs="$2" --size="${P_fiomib}M" --time_based --runtime="$P_fiosec" --ramp_time=1 \
		--disk_util=0 --output-format=terse --terse-version=3 >/tmp/fio.out 2>/tmp/fio.err || {
		sed 's/^/DIAG fio: /' /tmp/fio.err /tmp/fio.out
		return 1
	}
	line=$(grep '^3;' /tmp/fio.out | head -n 1)
	[ -n "$line" ] || {
		sed 's/^/DIAG fio: /' /tmp/fio.err /tmp/fio.out
		return 1
	}
	echo "terse=$line"
}

measure() {
	case "$1" in
	dd-write) dd_run write "$P_ddmib" ;;
	dd-read) dd_run read "$P_ddmib" ;;
	seq-write) fio_run write 1M ;;
	seq-read) fio_run read 1M ;;
	rand-read) fio_run randread 4k ;;
	rand-write) fio_run randwrite 4k ;;
	*) return 1 ;;
	esac
}

# Not measured: a target just started runs its first second or so before its hot
# path is compiled (ours: V8), and the driver sizes its window on first use.
warm=$((P_ddmib < 16 ? P_ddmib : 16))
for d in $DEVS; do
	use_dev "$d"
	step "warmup-$d" $((120 + warm * 4))
	w=$(dd_run write "$warm") && r=$(dd_run read "$warm") || fail "warmup-$d"
	res warmup dev="$d" write="$(echo $w | tr ' ' ,)" read="$(echo $r | tr ' ' ,)"
	step_done
done

REVERSED=""
for d in $DEVS; do REVERSED="$d $REVERSED"; done

r=1
while [ "$r" -le "$P_rounds" ]; do
	order=$DEVS
	[ $((r % 2)) -eq 0 ] && order=$REVERSED
	for w in $WORK; do
		for d in $order; do
			use_dev "$d"
			step "$w-$d-$r" $((120 + P_fiosec + P_ddmib * 4))
			if out=$(measure "$w"); then
				res bench round="$r" dev="$d" workload="$w" $out
			else
				echo "$out"
				fail "$w-$d-$r"
			fi
			step_done
		done
	done
	r=$((r + 1))
done
