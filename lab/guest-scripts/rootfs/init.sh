#!/bin/sh
# /sbin/init of the diskless root file system (the AoE export). It reports
# where / is mounted from and whether the file written on an earlier boot is
# there, then runs a shell on the console: the host types the rest
# (test/interop/diskless.test.ts). $M spares the typed commands, which the
# console echoes, from containing the result-line marker themselves.
export PATH=/bin
export M=AOETEST
mountpoint_of_root=$(awk '$2 == "/" { d = $1; t = $3 } END { print d ":" t }' /proc/mounts)
if [ -f /root/persist ]; then persist=$(cat /root/persist); else persist=none; fi
echo "$M diskless phase=root root=$mountpoint_of_root persist=$persist pid=$$"
echo "$M diskless phase=shell"
exec /bin/sh
