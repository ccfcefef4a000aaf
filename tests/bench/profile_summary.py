#!/usr/bin/python3
"""Reads folded stacks (flamegraph.pl's format, as profile.sh writes them) and prints where the
time went, as shares of all samples: kernel against user space, the system call each kernel
sample ran under, the costliest leaf functions, and the callers of the costliest kernel leaf
(on a paravirtualized machine, pvm_irq_enable: re-enabling interrupts after a socket wake-up).

usage: profile_summary.py FILE.folded [TOP (12)]"""
import collections
import sys


def syscall_of(frames):
    """The system call a stack is in: the kernel's entry point for it, else the libc wrapper
    that entered the kernel (write(2) shows as ksys_write, and time spent on the way in and
    out, re-enabling interrupts, under do_syscall_64 alone)."""
    for k, f in enumerate(frames):
        if f.startswith("__x64_sys_") or f.startswith("__sys_"):
            return f.replace("__x64_sys_", "").replace("__sys_", "")
        if f.startswith("entry_SYSCALL") and k > 0:
            name = frames[k - 1]
            for prefix in ("__GI___libc_", "__libc_", "__GI___", "__GI_", "__"):
                if name.startswith(prefix):
                    name = name[len(prefix):]
                    break
            name = name.removesuffix("_syscall")
            # the same call entered through its wrapper: count it with the rest of that call
            return {"recv": "recvfrom", "send": "sendto"}.get(name, name)
    return None


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 12
    total = kernel = 0
    leaves = collections.Counter()
    syscalls = collections.Counter()
    by_caller = collections.defaultdict(collections.Counter)
    with open(path) as f:
        for line in f:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            n = int(n)
            frames = stack.split(";")
            total += n
            leaves[frames[-1]] += n
            call = syscall_of(frames)
            in_kernel = call is not None or any(x.startswith("entry_SYSCALL") or x.endswith("_[k]") for x in frames)
            if in_kernel:
                kernel += n
                syscalls[call or "(kernel, outside a system call: interrupts, scheduling)"] += n
            callers = [x for x in frames[:-1] if not x.startswith("__raw_callee")][-3:]
            by_caller[frames[-1]][" <- ".join(reversed(callers))] += n
    if not total:
        print("%s: no samples" % path)
        return 1
    pct = lambda n: 100.0 * n / total
    print("%s: %d samples; kernel %.1f%%, user space %.1f%%" % (path, total, pct(kernel), pct(total - kernel)))
    print("kernel time by system call:")
    for name, n in syscalls.most_common(top):
        print("  %5.1f%%  %s" % (pct(n), name))
    print("leaf functions:")
    for name, n in leaves.most_common(top):
        print("  %5.1f%%  %s" % (pct(n), name))
    hot = next((name for name, _ in leaves.most_common() if name in ("pvm_irq_enable", "native_irq_enable")), None)
    if hot:
        print("callers of %s:" % hot)
        for chain, n in by_caller[hot].most_common(top // 2):
            print("  %5.1f%%  %s" % (pct(n), chain))
    return 0


if __name__ == "__main__":
    sys.exit(main())
