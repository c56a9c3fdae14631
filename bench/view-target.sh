#!/bin/sh
# A target for `npm run bench -- --custom`: our vbladed serving the bench's
# pattern file from a directory on XFS with reflinks, as a plain export or
# with per-initiator views, so that the two can be compared on the same file
# system (docs/views.md):
#
#   npm run bench -- --targets plain,views \
#     --custom "plain=bench/view-target.sh plain /mnt/xfs {shelf} {slot} {if} {file}" \
#     --custom "views=bench/view-target.sh views /mnt/xfs {shelf} {slot} {if} {file}"
#
# Each start copies the file to DIR/bench-MODE/image.img (removing what an
# earlier start left there), so that every round begins with no view.
set -eu
mode=$1 dir=$2 shelf=$3 slot=$4 ifname=$5 file=$6
case $mode in plain | views) ;; *) echo "view-target.sh: mode is plain or views, not $mode" >&2; exit 2 ;; esac
work=$dir/bench-$mode
rm -rf "$work"
mkdir -p "$work/run"
cp "$file" "$work/image.img"
{
  printf '[daemon]\nname = bench-%s\nrun-dir = %s/run\nlog = stderr\nduplicate-probe-ms = 0\n' "$mode" "$work"
  printf '[export e%s.%s]\nfile = %s/image.img\ninterfaces = %s\n' "$shelf" "$slot" "$work" "$ifname"
  if [ "$mode" = views ]; then printf 'views = per-initiator\nviews-dir = %s/views\n' "$work"; fi
} >"$work/vblade.conf"
exec node "$(dirname "$0")/../bin/vbladed.js" --foreground --config "$work/vblade.conf"
