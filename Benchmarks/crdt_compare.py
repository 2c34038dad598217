#!/usr/bin/env python3
"""Side-by-side table of the CRDT workloads (shared/bench/WORKLOADS.md) from RESULT lines.

usage: python3 crdt_compare.py [FILE ...]     (no FILE, or '-': read standard input)

Reads every line 'RESULT {json}' (other lines are ignored) printed by `peat-bench crdt <workload>`
and by the peer scripts in shared/bench/peers (bench_loro.py, bench_pycrdt.py), one line per run.
Per workload and library it prints the median and min of the total time and the encoded bytes,
and for peat-crdt the ratio of its median time to the fastest other library's median and of its
bytes to the smallest other library's bytes (below 1.0: peat-crdt is faster / smaller).
"""
import json
import statistics
import sys

OURS = "peat-crdt"
WORKLOADS = ["map_churn", "concurrent_merge", "text_trace", "small_docs"]
PEER_ORDER = ["loro", "pycrdt", "yjs", "automerge-py"]


def total_time(rec):
    """The workload's headline time in seconds (text_trace has no total_s: replay + encode + load)."""
    if rec["workload"] == "text_trace":
        return rec["ops_s"] + rec["encode_s"] + rec["parse_s"]
    return rec["total_s"]


def read(paths):
    records = []
    streams = [sys.stdin] if not paths or paths == ["-"] else [open(p) for p in paths]
    for stream in streams:
        for line in stream:
            line = line.strip()
            if line.startswith("RESULT "):
                rec = json.loads(line[len("RESULT "):])
                if "lib" in rec and rec.get("workload") in WORKLOADS:
                    records.append(rec)
    return records


def fmt_t(x):
    return "-" if x is None else (f"{x * 1000:,.0f} ms" if x < 10 else f"{x:,.1f} s")


def fmt_b(x):
    return "-" if x is None else f"{x:,.0f}"


def summarise(records):
    out = {}
    for rec in records:
        out.setdefault((rec["workload"], rec["lib"]), []).append(rec)
    summary = {}
    for key, rs in out.items():
        times = [total_time(r) for r in rs]
        sizes = [r["bytes"] for r in rs if isinstance(r.get("bytes"), (int, float))]
        per_doc = [r["bytes_per_doc"] for r in rs if isinstance(r.get("bytes_per_doc"), (int, float))]
        summary[key] = {
            "n": len(rs),
            "median": statistics.median(times), "min": min(times),
            "bytes": statistics.median(sizes) if sizes else None,
            "bytes_vary": len(set(sizes)) > 1,
            "bytes_per_doc": statistics.median(per_doc) if per_doc else None,
            "unverified": sum(1 for r in rs if not r.get("verified")),
            "version": rs[0].get("version", rs[0]["lib"]),
        }
    return summary


def main():
    records = read(sys.argv[1:])
    if not records:
        sys.exit("crdt_compare: no RESULT lines for the CRDT workloads")
    summary = summarise(records)
    libs = sorted({lib for _, lib in summary}, key=lambda l: (l != OURS, PEER_ORDER.index(l) if l in PEER_ORDER else 99, l))
    peers = [l for l in libs if l != OURS]

    header = ["workload"]
    for lib in libs:
        header += [f"{lib} time median / min", f"{lib} bytes"]
    if OURS in libs and peers:
        header += [f"{OURS} ÷ fastest peer (time)", f"{OURS} ÷ smallest peer (bytes)"]
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    for wl in WORKLOADS:
        if not any((wl, lib) in summary for lib in libs):
            continue
        row = [wl]
        for lib in libs:
            s = summary.get((wl, lib))
            if s is None:
                row += ["-", "-"]
                continue
            flag = f" ⚠ {s['unverified']} unverified" if s["unverified"] else ""
            row.append(f"{fmt_t(s['median'])} / {fmt_t(s['min'])} (n={s['n']}){flag}")
            b = fmt_b(s["bytes"]) + (" (varies)" if s["bytes_vary"] else "")
            if s["bytes_per_doc"] is not None:
                b += f" ({s['bytes_per_doc']:,.1f} B/doc)"
            row.append(b)
        if OURS in libs and peers:
            ours = summary.get((wl, OURS))
            others = [(summary[(wl, p)], p) for p in peers if (wl, p) in summary]
            if ours and others:
                fastest, fname = min(others, key=lambda o: o[0]["median"])
                row.append(f"{ours['median'] / fastest['median']:.2f} (vs {fname})")
                sized = [(s, p) for s, p in others if s["bytes"]]
                if ours["bytes"] and sized:
                    smallest, sname = min(sized, key=lambda o: o[0]["bytes"])
                    row.append(f"{ours['bytes'] / smallest['bytes']:.2f} (vs {sname})")
                else:
                    row.append("-")
            else:
                row += ["-", "-"]
        print("| " + " | ".join(row) + " |")
    print()
    print("time: text_trace = ops_s + encode_s + parse_s, the others total_s; median / min over runs "
          "(each run a fresh process).")
    print("versions: " + "; ".join(sorted({s["version"] for s in summary.values()})))
    bad = sum(s["unverified"] for s in summary.values())
    if bad:
        print(f"WARNING: {bad} run(s) failed their correctness check (verified=false)")
        sys.exit(1)


if __name__ == "__main__":
    main()
