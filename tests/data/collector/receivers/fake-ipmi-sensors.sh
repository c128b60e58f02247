#!/bin/sh
# Fake FreeIPMI ipmi-sensors for tests: records its arguments in $FAKE_IPMI_ARGS and prints the
# recorded CSV output $FAKE_IPMI_OUTPUT once per BMC of --hostname, prefixed like --always-prefix.
# With $FAKE_IPMI_FAIL set it prints that text to stderr and exits 1.
echo "$@" >> "$FAKE_IPMI_ARGS"
hosts=""
while [ $# -gt 0 ]; do
  case "$1" in
    --hostname) hosts="$2"; shift ;;
  esac
  shift
done
if [ -n "$FAKE_IPMI_FAIL" ]; then
  echo "$FAKE_IPMI_FAIL" >&2
  exit 1
fi
IFS=,
for h in $hosts; do
  sed "s/^/$h: /" "$FAKE_IPMI_OUTPUT"
done
