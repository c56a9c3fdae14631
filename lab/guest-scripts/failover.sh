# Scenario "failover": the guest writes and verifies 256 KiB chunks with O_DIRECT
# in a loop while the host kills a target (and, for active/standby, starts the
# other one). The host tells the guest through the serial input when it has
# killed the target, so that the guest can measure the interruption.
# Parameters: mtu, targets (how many targets to wait for before starting),
#   chunks (how many 256 KiB chunks the region has), maxsecs (hard stop),
#   after (iterations required after the kill), minafter (seconds of I/O
#   required after the kill).

net_up "$P_mtu"
discover 30

step targets 30
while [ "$(aoe_targets)" -lt "${P_targets:-1}" ]; do sleep 0.2; done
res targets n="$(aoe_targets)"
step_done

# host -> guest messages: "<uptime_cs> <line>" in /tmp/hostmsg
stty -F /dev/console -echo 2>/dev/null
(while read -r line; do echo "$(now_cs) $line" >>/tmp/hostmsg; done) </dev/console &

: >/tmp/sums
i=0 errors=0 maxcs=0 kill_cs="" killed_at="" after=0 maxafter=0
start=$(now_cs)
res fo-start
step io $((P_maxsecs + 30))
while :; do
	t0=$(now_cs)
	off=$((i % P_chunks))
	dd if=/dev/urandom of=/tmp/c bs=256k count=1 2>/dev/null
	want=$(md5 </tmp/c)
	if dd if=/tmp/c of="$DEV" bs=256k seek="$off" oflag=direct conv=notrunc 2>/dev/null; then
		got=$(dd if="$DEV" bs=256k skip="$off" count=1 iflag=direct 2>/dev/null | md5)
	else
		got=write-error
	fi
	if [ "$got" != "$want" ]; then
		errors=$((errors + 1))
		res fo-error i=$i off=$off got="$got" want="$want"
	fi
	echo "$off $want" >>/tmp/sums
	t1=$(now_cs)
	dt=$((t1 - t0))
	[ $dt -gt $maxcs ] && maxcs=$dt
	if [ -z "$kill_cs" ] && [ -s /tmp/hostmsg ]; then
		read -r kill_cs _ </tmp/hostmsg
		killed_at=$i
	fi
	if [ -n "$kill_cs" ] && [ "$t1" -ge "$kill_cs" ]; then
		# this iteration ended after the kill: it counts towards the interruption
		[ $dt -gt $maxafter ] && maxafter=$dt
		[ "$t0" -ge "$kill_cs" ] && after=$((after + 1))
	fi
	res fo-iter i=$i cs=$dt
	i=$((i + 1))
	[ $((t1 - start)) -ge $((P_maxsecs * 100)) ] && break
	if [ -n "$kill_cs" ] && [ $after -ge "$P_after" ] && [ $((t1 - kill_cs)) -ge $((P_minafter * 100)) ]; then break; fi
done
step_done

# read every chunk again, as last written
step verify 180
awk '{ s[$1] = $2 } END { for (o in s) print o, s[o] }' /tmp/sums >/tmp/final
verrs=0
last=0
while read -r off want; do
	got=$(dd if="$DEV" bs=256k skip="$off" count=1 iflag=direct 2>/dev/null | md5)
	[ "$got" = "$want" ] || verrs=$((verrs + 1))
	[ "$off" -gt "$last" ] && last=$off
done </tmp/final
res fo-region chunks=$((last + 1)) md5="$(dd if="$DEV" bs=256k count=$((last + 1)) iflag=direct 2>/dev/null | md5)"
step_done

res failover iterations=$i errors=$errors verify_errors=$verrs chunks="$(wc -l </tmp/final)" \
	kill_cs="${kill_cs:-none}" killed_at="${killed_at:-none}" iters_after_kill=$after \
	maxstall_cs=$maxcs maxstall_after_kill_cs=$maxafter targets_now="$(aoe_targets)"
[ "$errors" -eq 0 ] || fail io-errors
[ "$verrs" -eq 0 ] || fail verify-errors
[ -n "$kill_cs" ] || fail no-kill-message
