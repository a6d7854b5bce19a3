#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench_real_report.py - bench-real.sh's report: medians, ratios, markdown, JSON, PNG.

Input: the raw runs bench-real.sh wrote (TSV: repeat, side, case, ok|FAIL,
req/s, p50 us, p99 us, connections the monitor created during the run,
kernel fallbacks during the run, why it failed) and its key=value meta file.
Per case and side: the median over the successful runs. Ratios are "better
than 1 when ipcd is better": ipcd/kernel for req/s, kernel/ipcd for latency.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CASES = {
    "nginx-c1": ("nginx", "wrk -t1 -c1, GET 64 B file"),
    "nginx-c32": ("nginx", "wrk -t2 -c32, GET 64 B file"),
    "redis-set-P1": ("redis", "redis-benchmark SET, 50 clients, -P 1"),
    "redis-get-P1": ("redis", "redis-benchmark GET, 50 clients, -P 1"),
    "redis-set-P16": ("redis", "redis-benchmark SET, 50 clients, -P 16"),
    "redis-get-P16": ("redis", "redis-benchmark GET, 50 clients, -P 16"),
    "memc-get-c1": ("memcached", "ipcd-bench-memc get, 1 conn"),
    "memc-set-c1": ("memcached", "ipcd-bench-memc set, 1 conn"),
    "memc-get-c32": ("memcached", "ipcd-bench-memc get, 32 conns, 2 threads"),
    "memc-set-c32": ("memcached", "ipcd-bench-memc set, 32 conns, 2 threads"),
}
SIDES = ("kernel", "ipcd")
METRICS = ("rps", "p50_us", "p99_us")


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def read_raw(path):
    runs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            c = line.rstrip("\n").split("\t")
            c += [""] * (10 - len(c))
            runs.append({
                "repeat": int(c[0]), "side": c[1], "case": c[2], "ok": c[3] == "ok",
                "rps": num(c[4]), "p50_us": num(c[5]), "p99_us": num(c[6]),
                "accelerated": int(c[7]) if c[7].lstrip("-").isdigit() else None,
                "fallbacks": int(c[8]) if c[8].lstrip("-").isdigit() else None,
                "error": c[9] or None,
            })
    return runs


def read_meta(path):
    meta = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            if k:
                meta[k] = v
    return meta


def summarise(runs):
    order = [c for c in CASES if any(r["case"] == c for r in runs)]
    out = []
    for case in order:
        e = {"case": case, "program": CASES[case][0], "client": CASES[case][1]}
        for side in SIDES:
            rs = [r for r in runs if r["case"] == case and r["side"] == side]
            if not rs:
                continue
            ok = [r for r in rs if r["ok"]]
            s = {"runs": len(rs), "ok": len(ok),
                 "median": {m: (statistics.median(r[m] for r in ok) if ok else None)
                            for m in METRICS},
                 "per_run": [{k: r[k] for k in ("repeat", "ok", "rps", "p50_us", "p99_us",
                                                 "accelerated", "fallbacks", "error")}
                             for r in rs],
                 "errors": sorted({r["error"].removeprefix("not retried: ")
                                   for r in rs if r["error"]})}
            if side == "ipcd":
                acc = [r["accelerated"] for r in rs if r["accelerated"] is not None]
                fb = [r["fallbacks"] for r in rs if r["fallbacks"] is not None]
                s["accelerated_median"] = statistics.median(acc) if acc else None
                s["fallbacks_median"] = statistics.median(fb) if fb else None
            e[side] = s
        k = e.get("kernel", {}).get("median", {})
        i = e.get("ipcd", {}).get("median", {})
        ratio = {}
        for m in METRICS:
            a, b = k.get(m), i.get(m)
            if m == "rps":
                ratio[m] = b / a if a and b else None
            else:
                ratio[m] = a / b if a and b else None
        e["ratio"] = ratio
        out.append(e)
    return out


def fmt(v, digits=0):
    if v is None:
        return "FAIL"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def cell(e, side, m):
    s = e.get(side)
    if not s:
        return "-"
    v = s["median"][m]
    text = fmt(v, 0 if m == "rps" else 1)
    if v is not None and s["ok"] < s["runs"]:
        text += f" ({s['ok']}/{s['runs']})"
    return text


def rcell(v):
    return "-" if v is None else f"{v:.2f}x"


def markdown(meta, cases):
    lines = []
    lines.append("## bench-real: real programs, kernel TCP vs IPC-Direct, same run")
    lines.append("")
    lines.append(f"{meta.get('started', '?')}, {meta.get('host', '?')}, "
                 f"{meta.get('cpu', '?')}, {meta.get('nproc', '?')} CPUs, Linux "
                 f"{meta.get('kernel', '?')}, commit {meta.get('commit', '?')}, "
                 f"build {meta.get('build', '?')}")
    lines.append(f"nginx {meta.get('nginx', '?')}, wrk {meta.get('wrk', '?')}, redis "
                 f"{meta.get('redis', '?')}, memcached {meta.get('memcached', '?')}; "
                 f"{meta.get('repeats', '?')} repeats, sides alternating; runs of "
                 f"{meta.get('duration_s', '?')} s (redis-benchmark: "
                 f"{meta.get('redis_requests_P1', '?')} requests at -P 1, "
                 f"{meta.get('redis_requests_P16', '?')} at -P 16); "
                 f"{meta.get('elapsed_s', '?')} s in all")
    lines.append(f"load average (1 min): {meta.get('loadavg_start', '?')} before, "
                 f"{meta.get('loadavg_end', '?')} after")
    lines.append("")
    lines.append("Medians over the repeats. x: ipcd/kernel for req/s, kernel/ipcd for "
                 "latency (above 1: ipcd better). (k/n): only k of n runs succeeded. "
                 "accelerated: connections the monitor created per ipcd run (median), "
                 "kernel fallbacks in brackets.")
    lines.append("")
    lines.append("| case | client | kernel req/s | ipcd req/s | x | kernel p50 us | ipcd p50 us "
                 "| x | kernel p99 us | ipcd p99 us | x | accelerated |")
    lines.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
                 "| ---: |")
    for e in cases:
        ip = e.get("ipcd")
        acc = "-"
        if ip and ip.get("accelerated_median") is not None:
            acc = f"{ip['accelerated_median']:g} ({ip['fallbacks_median']:g})"
        lines.append(f"| {e['case']} | {e['client']} | {cell(e, 'kernel', 'rps')} | "
                     f"{cell(e, 'ipcd', 'rps')} | {rcell(e['ratio']['rps'])} | "
                     f"{cell(e, 'kernel', 'p50_us')} | {cell(e, 'ipcd', 'p50_us')} | "
                     f"{rcell(e['ratio']['p50_us'])} | {cell(e, 'kernel', 'p99_us')} | "
                     f"{cell(e, 'ipcd', 'p99_us')} | {rcell(e['ratio']['p99_us'])} | {acc} |")
    tot = meta.get("monitor_totals", "").split()
    if len(tot) == 2:
        lines.append("")
        lines.append(f"The monitor created {tot[0]} connections in all (kernel fallbacks "
                     f"reported: {tot[1]}).")
    fails = []
    for e in cases:
        for side in SIDES:
            s = e.get(side)
            if s and s["ok"] < s["runs"]:
                for err in s["errors"]:
                    fails.append(f"- {side} {e['case']} ({s['runs'] - s['ok']}/{s['runs']} "
                                 f"runs failed): {err}")
    if fails:
        lines.append("")
        lines.append("Failures:")
        lines.append("")
        lines.extend(fails)
    return "\n".join(lines)


def plot(path, cases):
    if not path:
        return 0
    if subprocess.run(["sh", "-c", "command -v gnuplot"], capture_output=True).returncode:
        print("plot: skipped (gnuplot not installed: scripts/setup.sh bench)", file=sys.stderr)
        return 0

    def g(v):
        return "NaN" if v is None else f"{v:.4g}"

    ratios = [v for e in cases for v in e["ratio"].values() if v]
    any_ratio = bool(ratios)
    p50s = [e[s]["median"]["p50_us"] for e in cases for s in SIDES
            if e.get(s) and e[s]["median"]["p50_us"]]
    rmin = min(ratios + [1.0]) / 1.5
    pmin = min(p50s + [10.0]) / 2
    with tempfile.TemporaryDirectory(prefix="ipcd-bench-real-plot-") as d:
        dat = os.path.join(d, "real.dat")
        with open(dat, "w", encoding="utf-8") as f:
            for e in cases:
                k = e.get("kernel", {}).get("median", {})
                i = e.get("ipcd", {}).get("median", {})
                r = e["ratio"]
                f.write(f"\"{e['case']}\" {g(r['rps'])} {g(r['p50_us'])} {g(r['p99_us'])} "
                        f"{g(k.get('p50_us'))} {g(i.get('p50_us'))}\n")
        labels = []
        for n, e in enumerate(cases):
            for side, dx in (("kernel", -0.22), ("ipcd", 0.22)):
                if e.get(side) and e[side]["median"]["p50_us"] is None:
                    labels.append(f"set label {len(labels) + 1} '{side} FAIL' at {n + dx:.2f},"
                                  "graph 0.5 center rotate by 90 front textcolor rgb '#b00000'")
        gp = os.path.join(d, "real.gp")
        with open(gp, "w", encoding="utf-8") as f:
            f.write(f"set terminal pngcairo size 1200,{800 if any_ratio else 420} font ',10'\n"
                    f"set output '{path}'\nset datafile missing 'NaN'\n"
                    "set style data histograms\nset style histogram clustered gap 1\n"
                    "set style fill solid 0.85 border -1\nset boxwidth 0.9\n"
                    "set xtics rotate by -30 left\nset grid ytics\nset key outside right top vertical\n")
            if any_ratio:
                f.write("set multiplot layout 2,1 title 'real programs: IPC-Direct vs kernel "
                        "TCP (medians, same run)'\n"
                        "set title 'ratio (above 1: ipcd better; log scale)'\n"
                        f"set logscale y 2\nset yrange [{rmin:.3g}:*]\n"
                        "set arrow 1 from graph 0,first 1 to graph 1,first 1 nohead dt 2 "
                        "front\n" + "\n".join(labels) + "\n"
                        f"plot '{dat}' using 2:xtic(1) title 'req/s ipcd/kernel', "
                        "'' using 3 title 'p50 kernel/ipcd', '' using 4 title 'p99 kernel/ipcd'\n"
                        "unset arrow 1\n")
            else:
                f.write("set title 'real programs: p50 latency, kernel TCP vs IPC-Direct "
                        "(no ipcd ratio: see the table)'\n")
            f.write("set title 'p50 latency, us (log scale)'\nset logscale y 10\n"
                    f"set yrange [{pmin:.3g}:*]\n" + "\n".join(labels) + "\n"
                    f"plot '{dat}' using 5:xtic(1) title 'kernel', '' using 6 title 'ipcd'\n")
            if any_ratio:
                f.write("unset multiplot\n")
        r = subprocess.run(["gnuplot", gp], capture_output=True, text=True)
        if r.returncode:
            print(f"plot: gnuplot failed: {r.stderr.strip()[:300]}", file=sys.stderr)
            return 1
    print(f"plot: {path}", file=sys.stderr)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--plot")
    a = ap.parse_args()
    runs = read_raw(a.raw)
    meta = read_meta(a.meta)
    cases = summarise(runs)
    print(markdown(meta, cases))
    jmeta = {}
    for k, v in meta.items():
        if k == "monitor_totals":
            t = v.split()
            jmeta[k] = ({"connections_created": int(t[0]), "fallbacks": int(t[1])}
                        if len(t) == 2 else None)
        elif k in ("elapsed_s", "nproc", "repeats", "duration_s", "redis_requests_P1",
                   "redis_requests_P16"):
            jmeta[k] = int(v) if v.isdigit() else None
        elif k in ("loadavg_start", "loadavg_end"):
            jmeta[k] = num(v)
        else:
            jmeta[k] = v
    doc = {"meta": jmeta, "cases": cases}
    with open(a.json, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"json: {a.json}", file=sys.stderr)
    return plot(a.plot, cases)


if __name__ == "__main__":
    sys.exit(main())
