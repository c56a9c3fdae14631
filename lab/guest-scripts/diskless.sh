# Scenario "diskless": the root file system is the AoE export. Mount it, move
# /dev, /proc and /sys over, and switch_root to its /sbin/init
# (guest/rootfs/init.sh, put in the image by the host), which starts a shell on
# the console that the host types into.

net_up "$P_mtu"
discover 30

step mount-root 60
mount -t ext4 "$DEV" /newroot || fail mount-root
[ -x /newroot/sbin/init ] || fail no-init-on-root
res diskless phase=initramfs root_mounted="$([ -z "$FAILED" ] && echo 1 || echo 0)"
step_done

if [ -z "$FAILED" ]; then
	wd_stop
	umount /sys/kernel/debug 2>/dev/null
	mount -o move /dev /newroot/dev
	mount -o move /proc /newroot/proc
	mount -o move /sys /newroot/sys
	umount /tmp
	exec switch_root /newroot /sbin/init
fi
