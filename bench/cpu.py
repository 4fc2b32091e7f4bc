#!/usr/bin/env python3
"""CPU of tansu, warden and the harness, per second, from /proc (Linux).

    python3 bench/cpu.py > cpu.log &  warden-harness 1000000 0;  kill %1

Each line: seconds since start, then each process's cores used in that second
(user + system time, all its threads), for the processes named below.
"""
import os
import time

NAMES = ("tansu", "warden", "warden-harness")
HZ = os.sysconf("SC_CLK_TCK")


def snapshot():
    used = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # gone since listed
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name in NAMES:
            fields = stat[stat.rindex(")") + 2 :].split()
            used[name] = used.get(name, 0) + (int(fields[11]) + int(fields[12])) / HZ
    return used


def main():
    start, before = time.time(), snapshot()
    while True:
        time.sleep(1)
        now = snapshot()
        cores = {n: now.get(n, 0) - before.get(n, 0) for n in NAMES}
        print(f"{time.time() - start:6.1f}", " ".join(f"{n}={c:.2f}" for n, c in cores.items() if c > 0.01), flush=True)
        before = now


if __name__ == "__main__":
    main()
