#!/bin/sh
# /init of the VM test's initramfs: runs reaper-trace on the booted kernel and prints what it
# found between `@@RT NAME BEGIN` / `@@RT NAME END` lines on the console, for `cargo xtask
# vm-test` to check. Only the guest's own kernel and /proc are looked at here; the checking
# is done on the host.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
[ -f /lib/modules/fuse.ko ] && insmod /lib/modules/fuse.ko
ip link set lo up 2>/dev/null
hostname vm-test

say() { echo "@@RT $*"; }
section() { say "$1 BEGIN"; cat "$2" 2>/dev/null; echo; say "$1 END"; }

say release "$(uname -r)"

# 1. Does every program load, and how much did the verifier process?
reaper-trace check --json > /tmp/check.json 2>/tmp/check.err
rc=$?
say check-rc $rc
section check /tmp/check.json
section check-stderr /tmp/check.err
if [ $rc != 0 ]; then
    # The end of each refused program's verifier log (where it gave up, and why).
    REAPER_TRACE_VERIFIER_LOG=/tmp/verifier reaper-trace check > /dev/null 2>&1
    for log in /tmp/verifier/*.log; do
        tail -n 60 "$log" > /tmp/tail.txt
        section "verifier-log-$(basename "$log" .log)" /tmp/tail.txt
    done
fi
# `cargo xtask vm-test --check-only`: the programs' verification only.
if grep -q rt.check_only /proc/cmdline; then
    say done
    poweroff -f
fi

# 2. The orphan/zombie experiment, recorded; /proc snapshots taken by the experiment itself.
reaper-trace record -q -o /tmp/experiment.jsonl -- reaper-init -s -- sh /experiment.sh \
    > /tmp/record.out 2>/tmp/record.err
say record-rc $?
section record-stderr /tmp/record.err
section experiment /tmp/experiment.jsonl
section proc1 /tmp/proc1.txt
section proc2 /tmp/proc2.txt

# 3. A whole-system recording stopped by SIGTERM: a valid file, and no program left attached.
# A link is gone as soon as the recorder's descriptors close; the program behind it is freed
# by the kernel only after an RCU grace period (a raw tracepoint link's deferred dealloc, on
# recent kernels), and a lazy RCU callback may wait up to 10 s: links are listed at once,
# programs once the ones loaded during the recording are gone, or after 20 s.
prog_ids() { bpftool prog show 2>/dev/null | sed -n 's/^\([0-9][0-9]*\): .*/\1/p'; }
reaper-trace record -q -o /tmp/sigterm.jsonl 2>/tmp/sigterm.err &
rec=$!
sleep 3
sh -c 'sleep 0.1 & exit 0'
sleep 1
prog_ids > /tmp/ids-during.txt
kill -TERM $rec
wait $rec
say sigterm-rc $?
bpftool link show > /tmp/links.txt 2>&1
section sigterm-stderr /tmp/sigterm.err
section sigterm /tmp/sigterm.jsonl
section links-after /tmp/links.txt
centis() { read -r up _ < /proc/uptime; echo "${up%.*}${up#*.}"; }
t0=$(centis)
while [ $(($(centis) - t0)) -lt 2000 ] && [ -s /tmp/ids-during.txt ] \
    && prog_ids | grep -qxFf /tmp/ids-during.txt; do
    sleep 0.1
done
say programs-freed-within-ms $((($(centis) - t0) * 10))
bpftool prog show > /tmp/progs.txt 2>&1
section programs-after /tmp/progs.txt

# 4. Every validate scenario, or those `vm-test --only` named, each `--runs` times (TCG is slow: a longer timeout than on hardware). The
# pid-reuse scenario forks until a pid comes back: with the default pid_max that takes
# longer than its 10 s under TCG, so the pid space is made smaller (wait-race needs about 1000).
# An emulated CPU on a shared host can leave a reaping init unscheduled for longer than the
# 100 ms a real machine is allowed: 2 s still tells an init that reaps from one that never does.
echo 2048 > /proc/sys/kernel/pid_max
only=""
for name in $(sed -n 's/.*rt\.only=\([^ ]*\).*/\1/p' /proc/cmdline | tr , ' '); do
    only="$only --only $name"
done
runs=$(sed -n 's/.*rt\.runs=\([0-9]*\).*/\1/p' /proc/cmdline)
# shellcheck disable=SC2086 # one word per flag
reaper-trace validate --json --timeout 120s --reap-within 2s --events /tmp/events \
    --runs "${runs:-1}" $only \
    > /tmp/validate.json 2>/tmp/validate.err
say validate-rc $?
section validate /tmp/validate.json
section validate-stderr /tmp/validate.err
# The events behind each failed scenario's verdict (the host saves them next to the console).
failed=$(awk '/"scenario": "/ { name = $0; sub(/.*"scenario": "/, "", name); sub(/".*/, "", name) }
              /"status": "FAIL"/ { print name }' /tmp/validate.json)
for name in $(echo "$failed" | sort -u); do
    for file in /tmp/events/"$name".jsonl /tmp/events/"$name".[0-9]*.jsonl; do
        [ -f "$file" ] && section "events-$(basename "$file" .jsonl)" "$file"
    done
done

say done
poweroff -f
