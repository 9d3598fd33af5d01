#!/bin/sh
# The orphan/zombie experiment of the VM test, run as `reaper-init -s -- sh experiment.sh`
# (reaper-init is then a subreaper) under `reaper-trace record`.
#
# A zombie: `sleep 0.2` exits while its parent, the exec'ed `sleep 4`, never waits. When
# `sleep 4` exits, the zombie goes to reaper-init, which reaps it.
sh -c 'sleep 0.2 & exec sleep 4' &
# An orphan: its parent exits at once, so reaper-init adopts it (and reaps it at its exit).
sh -c 'sleep 3 & exit 0'
# What the kernel shows, twice, half a second apart: the host checks the recording against it.
sleep 1.5
cat /proc/[0-9]*/stat > /tmp/proc1.txt 2>/dev/null
sleep 0.5
cat /proc/[0-9]*/stat > /tmp/proc2.txt 2>/dev/null
wait
