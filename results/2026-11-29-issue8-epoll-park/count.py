#!/usr/bin/env python3
"""System calls per published message from `perf script` of raw_syscalls (syscalls.sh).
rooms-500 sends 5 frames per published message (4 subscribers + the publisher's ack)."""
import re, sys, collections
names = {426: 'io_uring_enter', 44: 'sendto', 45: 'recvfrom', 232: 'epoll_wait', 441: 'epoll_pwait2',
         72: 'fcntl', 3: 'close', 324: 'membarrier', 10: 'mprotect', 228: 'clock_gettime'}
c = collections.Counter()
for line in open(sys.argv[1]):
    m = re.search(r'sys_enter: NR (\d+) ', line)
    if m:
        c[names.get(int(m.group(1)), 'NR ' + m.group(1))] += 1
msgs = c['sendto'] / 5
print(f"published messages in the trace: {msgs:.0f}")
for k, v in c.most_common():
    print(f"  {k:16} {v / msgs:6.2f}")
print(f"  {'all':16} {sum(c.values()) / msgs:6.2f}")
