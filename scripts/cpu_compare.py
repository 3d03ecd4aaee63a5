"""Prints trainbench's CPU training throughput next to PyTorch's, both measured in the same run
on the same machine, with the ratio and the percent of the measured FMA peak. Rows of `cpu`
run with TB_CPU_WINOGRAD=all (Winograd F(4x4, 3x3) in the forward too, less accurate than the
default) get a column of their own, "cpu+wf". Percent of peak counts direct-convolution FLOPs
(Winograd does fewer multiplies), so it can pass 100%.

Usage: cpu_compare.py THROUGHPUT.jsonl TORCH_ANCHOR.jsonl
  THROUGHPUT.jsonl: `trainbench throughput --results` records (kind "throughput")
  TORCH_ANCHOR.jsonl: the `cpu` part of ../shared/peers/torch_anchor.py
"""
import json
import sys


def lines(path):
    try:
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip()]
    except OSError:
        return []


ours = {}
cpu_model = ""
for rec in lines(sys.argv[1]):
    t = rec.get("throughput", {})
    cpu_model = rec.get("environment", {}).get("cpu", {}).get("model", cpu_model)
    if t.get("status") != "ok":
        continue
    threads = t["threads"] if t["threads"] > 0 else rec["environment"]["cpu"]["logical_cores"]
    impl = t["impl"]
    if impl == "cpu" and t.get("cpu_winograd", "").startswith("F(4x4) forward"):
        impl = "cpu+wf"
    ours[(t["model"], threads, impl)] = t

torch = {}
for rec in lines(sys.argv[2]):
    if rec.get("part") == "cpu":
        torch[(rec["model"], rec["threads"])] = rec

print(f"CPU training throughput, batch 64 (images/s, median; same run, {cpu_model})")
impls = ["cpu"] + (["cpu+wf"] if any(k[2] == "cpu+wf" for k in ours) else []) + ["onednn"]
print(f"{'model':<13} {'thr':>3} {'pytorch':>9} " + " ".join(f"{i:>9}" for i in impls) + " " +
      " ".join(f"{i + '/pt':>10}" for i in impls) + " " +
      " ".join(f"{i + ' %peak':>13}" for i in impls))
for (model, threads), pt in sorted(torch.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    row = [f"{model:<13} {threads:>3} {pt['img_s']:>9.1f}"]
    rates, peaks = [], []
    for impl in impls:
        t = ours.get((model, threads, impl))
        row.append(f"{t['images_per_second']:>9.1f}" if t else f"{'-':>9}")
        rates.append(f"{t['images_per_second'] / pt['img_s']:.2f}x" if t else "-")
        peak = t.get("cpu_peak_gflops") if t else None
        peaks.append(f"{100 * t['achieved_gflops'] / peak:.0f}%" if t and peak else "-")
    print(" ".join(row) + " " + " ".join(f"{r:>10}" for r in rates) + " " +
          " ".join(f"{p:>13}" for p in peaks))
