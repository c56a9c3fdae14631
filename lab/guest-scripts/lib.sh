# Shell functions shared by the guest scenario scripts (sourced by /init).
#
# Result lines:   AOETEST <tag> key=value ...    (values never contain spaces)
# Watchdog: every step sets a deadline; a background loop checks it once a
# second. When a step overruns, the watchdog looks at the aoe driver's debugfs
# file and the NIC counters to tell
#   verdict=target-silent      frames outstanding and nothing received: the target stopped answering
#   verdict=replies-unmatched  frames outstanding, frames arriving, none completing
#   verdict=initiator-stalled  nothing outstanding: the driver itself stopped sending
# then prints the evidence and powers off.

res() { echo "AOETEST $*"; }

now_cs() { awk '{ printf "%d", $1 * 100 }' /proc/uptime; }

# aoetest.<key>=<value> on the kernel command line becomes $P_<key>
read_params() {
	for w in $(cat /proc/cmdline); do
		case "$w" in
		aoetest.*=*)
			k=${w%%=*}
			k=${k#aoetest.}
			eval "P_$k=\${w#*=}"
			;;
		esac
	done
	: "${P_shelf:=1}" "${P_slot:=1}" "${P_mtu:=1500}"
	DEV=/dev/etherd/e$P_shelf.$P_slot
	DBG=/sys/kernel/debug/aoe/e$P_shelf.$P_slot
}

# every module but aoe (loaded once the NIC is up, because it discovers on load)
load_modules() {
	for m in $(cat /modules/order); do
		[ "$m" = aoe.ko ] && continue
		insmod "/modules/$m" 2>/dev/null || echo "insmod $m failed (ignored)"
	done
}

FAILED=""
fail() {
	FAILED="$FAILED $1"
	res fail step="$STEP" reason="$1"
}

# step <name> <seconds>: start a step with a watchdog deadline
step() {
	STEP=$1
	STEP_T0=$(now_cs)
	echo "$1 $((STEP_T0 + $2 * 100))" >/tmp/wd
}

# step_done: report the step's duration and clear the deadline
step_done() {
	res step name="$STEP" cs=$(($(now_cs) - STEP_T0))
	rm -f /tmp/wd
}

# "<outstanding frames> <targets>" from the driver's debugfs file; a target line
# is "<mac>:<nout>:<maxout>:<nframes>"
aoe_outstanding() {
	if [ -r "$DBG" ]; then
		awk -F: '/^[0-9a-f]+:[0-9]+:[0-9]+:[0-9]+$/ { n += $2; t++ } END { printf "%d %d", n, t }' "$DBG"
	else
		echo "0 0"
	fi
}

aoe_targets() { set -- $(aoe_outstanding); echo "$2"; }

# eth0 here is the QEMU guest's own virtio NIC, whose other end is tap0 inside
# the test's network namespace (lab/topology.ts); never a host interface.
netstat_eth0() { echo "$(cat /sys/class/net/eth0/statistics/rx_packets) $(cat /sys/class/net/eth0/statistics/tx_packets)"; }

wd_diagnose() {
	set -- $(aoe_outstanding)
	nout=$1 ntgt=$2
	set -- $(netstat_eth0)
	rx1=$1 tx1=$2
	sleep 2
	set -- $(netstat_eth0)
	rx=$(($1 - rx1)) tx=$(($2 - tx1))
	set -- $(aoe_outstanding)
	[ "$1" -gt "$nout" ] && nout=$1
	if [ "$nout" -gt 0 ] && [ "$rx" -eq 0 ]; then
		v=target-silent
	elif [ "$nout" -gt 0 ]; then
		v=replies-unmatched
	else
		v=initiator-stalled
	fi
	echo "verdict=$v nout=$nout targets=$ntgt rx_2s=$rx tx_2s=$tx"
}

wd_start() {
	(
		while :; do
			sleep 1
			[ -f /tmp/wd ] || continue
			read -r wstep deadline </tmp/wd || continue
			[ "$(now_cs)" -gt "$deadline" ] || continue
			res watchdog step="$wstep" $(wd_diagnose)
			[ -r "$DBG" ] && sed 's/^/DIAG debugfs: /' "$DBG"
			dmesg | tail -n 40 | sed 's/^/DIAG dmesg: /'
			res done status=watchdog
			poweroff -f
		done
	) &
	WD_PID=$!
}

wd_stop() { [ -n "$WD_PID" ] && kill "$WD_PID" 2>/dev/null; WD_PID=""; }

net_up() {
	i=0
	while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	ip link set lo up
	ip link set eth0 mtu "$1" up || fail "mtu-$1"
}

# load aoe (it broadcasts a Query Config on every interface) and wait for the device
discover() {
	step discover "${1:-30}"
	t0=$(now_cs)
	insmod /modules/aoe.ko || fail insmod-aoe
	while [ ! -b "$DEV" ]; do sleep 0.05; done
	res discover dev="$DEV" cs=$(($(now_cs) - t0))
	step_done
}

md5() { md5sum | cut -d' ' -f1; }

finish() {
	wd_stop
	dmesg | grep -i aoe | sed 's/^/DIAG dmesg: /'
	[ -r "$DBG" ] && sed 's/^/DIAG debugfs: /' "$DBG"
	if [ -z "$FAILED" ]; then res done status=ok uptime_cs="$(now_cs)"; else res done status=fail failed="$(echo $FAILED | tr ' ' ,)" uptime_cs="$(now_cs)"; fi
	sync
	# the console may still hold the last lines; poweroff -f would drop them
	sleep 1
	poweroff -f
}
