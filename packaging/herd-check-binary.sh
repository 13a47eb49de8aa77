#!/bin/sh
# Run by herd.service before the agent (ExecStartPre): a damaged or truncated executable
# dies by a signal before any of its own code runs, so it cannot say why itself. This
# compares it with the checksum recorded at install time and says so in one line.
#   usage: herd-check-binary.sh [BINARY] [SUMFILE]
bin=${1:-/usr/local/bin/herd}
sums=${2:-/etc/herd/herd.sha256}
if [ ! -f "$sums" ]; then
  echo "herd-check-binary: no $sums: not checking $bin (docs/raspberry-pi.md: record it at install)" >&2
  exit 0
fi
want=$(awk 'NR==1 {print $1}' "$sums")
have=$(sha256sum "$bin" 2>/dev/null | awk '{print $1}')
if [ -z "$have" ]; then
  echo "herd: cannot read $bin: install it again" >&2
  exit 78
fi
if [ "$want" != "$have" ]; then
  echo "herd: $bin is damaged or truncated (its SHA-256 is not the one in $sums): install it again from a verified copy" >&2
  exit 78
fi
exit 0
