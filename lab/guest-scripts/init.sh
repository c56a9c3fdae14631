#!/bin/sh
# /init of the interop guest: a busybox initramfs with Debian's aoe, virtio and
# ext4 modules. It reads its parameters from the kernel command line
# (aoetest.scenario=linux aoetest.mtu=9000 ...), runs /aoetest/<scenario>.sh,
# prints "AOETEST <tag> key=value ..." result lines on the serial console and
# powers the machine off. The host parses those lines (lab/qemu.ts).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null

. /aoetest/lib.sh

read_params
res boot kernel="$(uname -r)" scenario="$P_scenario" uptime_cs="$(now_cs)"
load_modules
wd_start

case "$P_scenario" in
linux | failover | failover-fio | diskless | bench) . "/aoetest/$P_scenario.sh" ;;
*) fail "unknown-scenario" ;;
esac
finish
