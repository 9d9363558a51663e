#!/usr/bin/env python3
"""Report of scenario 6 (scale) of scripts/bench.sh, from the rows scripts/bench-scale.sh
measured: prints a Markdown table and the goals (docs/BENCHMARKS.md), writes the data
file gnuplot draws and the JSON object bench.sh adds under "scale" to --json.

    bench-scale-report.py ROWS.tsv MINUTES STARTS OUT.dat OUT.json

Each row: containers, mode (none = no capturer), followed, seconds to follow them all,
window seconds, dockerd CPU s, containerd CPU s, capturer CPU s, capturer VmRSS KiB,
threads, FDs, records in the window, median start-to-first-record ms (or null), starts seen.
"""
import json
import math
import sys

FIELDS = ["n", "mode", "followed", "follow_s", "window_s", "dockerd_cpu_s", "containerd_cpu_s",
          "cpu_s", "rss_kib", "threads", "fds", "records", "first_record_ms", "seen"]
RSS_GOAL_KIB = 48       # per followed container, both modes
RSS_GOAL_1000_MIB = 55  # 1000 containers
FILES_CPU_GOAL_PCT = 0.2  # of one core, files mode, 1000 containers


def num(text):
    return None if text == "null" else float(text)


def main():
    rows_path, minutes, starts, dat_path, json_path = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
    rows = {}
    for line in open(rows_path):
        parts = line.rstrip("\n").split("\t")
        row = dict(zip(FIELDS, parts))
        for k in FIELDS:
            if k != "mode":
                row[k] = num(row[k])
        per_min = 60.0 / row["window_s"]
        for k in ("cpu_s", "dockerd_cpu_s", "containerd_cpu_s", "records"):
            row[k + "_per_min"] = row[k] * per_min
        rows[(int(row["n"]), row["mode"])] = row
    sizes = sorted({n for n, _ in rows})
    small = sizes[0]

    for mode in ("api", "files"):
        base = rows[(small, mode)]["rss_kib"]
        for n in sizes:
            r = rows[(n, mode)]
            r["rss_per_container_kib"] = r["rss_kib"] / n
            r["rss_marginal_kib"] = (r["rss_kib"] - base) / (n - small) if n > small else None

    def fmt(v, spec):
        return "-" if v is None else format(v, spec)

    print("| containers | mode | followed (s to follow all) | RSS MiB | KiB per container: marginal / RSS/N "
          "| threads | FDs | capturer CPU s/min (% of a core) | dockerd CPU s/min | containerd CPU s/min "
          f"| records/min | first record ms (median of {starts}) |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        for mode in ("none", "api", "files"):
            r = rows[(n, mode)]
            if mode == "none":
                print(f"| {n} | no capturer | | | | | | | {r['dockerd_cpu_s_per_min']:.2f} "
                      f"| {r['containerd_cpu_s_per_min']:.2f} | | |")
                continue
            print(f"| {n} | {mode} | {r['followed']:.0f} ({r['follow_s']:.1f}) | {r['rss_kib'] / 1024:.1f} "
                  f"| {fmt(r['rss_marginal_kib'], '.1f')} / {r['rss_per_container_kib']:.1f} "
                  f"| {r['threads']:.0f} | {r['fds']:.0f} "
                  f"| {r['cpu_s_per_min']:.2f} ({r['cpu_s_per_min'] / 60 * 100:.2f}%) "
                  f"| {r['dockerd_cpu_s_per_min']:.2f} | {r['containerd_cpu_s_per_min']:.2f} "
                  f"| {r['records_per_min']:.0f} | {fmt(r['first_record_ms'], '.1f')} |")

    big = sizes[-1]
    for mode in ("api", "files"):
        r = rows[(big, mode)]
        line = (f"{mode}: {fmt(r['rss_marginal_kib'], '.1f')} KiB RSS per container from {small} to {big} "
                f"(goal <= {RSS_GOAL_KIB}), {r['rss_kib'] / 1024:.1f} MiB at {big}")
        if big == 1000:
            line += f" (goal < {RSS_GOAL_1000_MIB} MiB)"
        lo, hi = rows[(small, mode)]["cpu_s_per_min"], r["cpu_s_per_min"]
        if lo > 0 and hi > 0 and big > small:
            slope = math.log(hi / lo) / math.log(big / small)
            line += f"; CPU/min grows as containers^{slope:.2f} (goal <= 1: linear or better)"
        else:
            line += "; CPU/min growth: too little CPU at the ends to tell"
        if mode == "files":
            line += (f"; idle at {big}: {r['cpu_s_per_min'] / 60 * 100:.3f}% of a core"
                     f" (goal < {FILES_CPU_GOAL_PCT}% at 1000)")
        print(line)

    with open(dat_path, "w") as dat:
        dat.write("# containers api_rss_kib files_rss_kib api_cpu_s_per_min files_cpu_s_per_min "
                  "dockerd_api dockerd_files dockerd_none (CPU s per minute)\n")
        for n in sizes:
            a, f, z = rows[(n, "api")], rows[(n, "files")], rows[(n, "none")]
            dat.write(f"{n} {a['rss_kib']:.0f} {f['rss_kib']:.0f} {a['cpu_s_per_min']:.3f} "
                      f"{f['cpu_s_per_min']:.3f} {a['dockerd_cpu_s_per_min']:.3f} "
                      f"{f['dockerd_cpu_s_per_min']:.3f} {z['dockerd_cpu_s_per_min']:.3f}\n")

    out = {"sizes": sizes, "minutes": minutes, "starts": starts,
           "none": {"dockerd_cpu_s_per_min": [rows[(n, "none")]["dockerd_cpu_s_per_min"] for n in sizes],
                    "containerd_cpu_s_per_min": [rows[(n, "none")]["containerd_cpu_s_per_min"] for n in sizes]}}
    keys = ["followed", "follow_s", "rss_kib", "rss_marginal_kib", "rss_per_container_kib", "threads", "fds",
            "cpu_s_per_min", "dockerd_cpu_s_per_min", "containerd_cpu_s_per_min", "records_per_min",
            "first_record_ms", "seen"]
    for mode in ("api", "files"):
        out[mode] = {k: [rows[(n, mode)][k] for n in sizes] for k in keys}
    with open(json_path, "w") as j:
        json.dump(out, j)


if __name__ == "__main__":
    main()
