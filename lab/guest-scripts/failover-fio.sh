# Scenario "failover-fio": fio with verification on the AoE disk while the
# host kills the target serving it (test/interop/rbd-failover.test.ts). fio
# writes random 16 KiB blocks, each with a crc32c header, reads back every
# block it wrote (verify_backlog, then the rest at the end) and stops at the
# first I/O error or mismatch (verify_fatal; its exit status says so).
# The host kills the target a few seconds after "fio-start".
# Needs the guest variant with /opt/host/fio.
# Parameters: mtu, fiomib (MiB of the disk fio works in), fiosec (seconds of writing).

net_up "$P_mtu"
discover 30

res fio-start
step fio $((P_fiosec + 240))
/opt/host/fio --name=failover --filename="$DEV" --direct=1 --ioengine=libaio --iodepth=4 \
	--rw=randwrite --bs=16k --size="${P_fiomib}M" --time_based --runtime="$P_fiosec" \
	--verify=crc32c --verify_backlog=16 --verify_fatal=1 --do_verify=1 >/tmp/fio.out 2>&1
rc=$?
sed 's/^/DIAG fio: /' /tmp/fio.out
err=$(sed -n 's/.*: (groupid=.*err= *\([0-9]*\).*/\1/p' /tmp/fio.out | head -n 1)
# "write: IOPS=86, BW=1376KiB/s (1409kB/s)(53.8MiB/39996msec)"; "issued rwts: total=3436,3440,0,0 ..." (reads are the verifications)
writes=$(sed -n 's/.*write: IOPS=.*)(\([0-9.]*[KMG]i*B\)\/.*/\1/p' /tmp/fio.out | head -n 1)
verified=$(sed -n 's/.*issued rwts: total=\([0-9]*\),.*/\1/p' /tmp/fio.out | head -n 1)
verify_errors=$(grep -c 'verify: bad' /tmp/fio.out)
step_done

res fio-failover rc=$rc err="${err:-none}" written="${writes:-none}" verified_blocks="${verified:-none}" verify_errors="$verify_errors" targets_now="$(aoe_targets)"
[ "$rc" -eq 0 ] || fail fio-exit
[ "${err:-none}" = 0 ] || fail fio-err
