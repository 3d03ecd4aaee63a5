"""Prints trainbench's GPU throughput rows next to the PyTorch peer measured in the same call.

Usage: gpu_compare.py THROUGHPUT.jsonl TORCH_ANCHOR.jsonl
"""
import json, sys


def lines(path):
    try:
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip()]
    except OSError:
        return []


ours = {}
for rec in lines(sys.argv[1]):
    t = rec.get("throughput", {})
    if t.get("status") != "ok":
        continue
    graph = "graph" if t.get("cuda_graph") else "nograph"
    inp = "x".join(map(str, t["input"]))
    ours[(t["model"], inp, t["batch_size"], t["precision"], t["impl"], graph)] = t

torch = {}
gpu_name = ""
for rec in lines(sys.argv[2]):
    if rec.get("part") == "env":
        gpu_name = rec.get("gpu", "")
    if rec.get("part") != "gpu" or "img_s" not in rec:
        continue
    prec = "bf16" if rec["amp_bf16"] else "fp32"
    kind = "compiled" if rec.get("compiled") else "eager"
    torch[(rec["model"], rec["input"], rec["bs"], prec, kind)] = rec

name = next((t.get("device", "") for t in ours.values()), "")
print(f"\nGPU: {name or gpu_name}   (trainbench and PyTorch {'' if not gpu_name else 'on ' + gpu_name} in the same call)")
hdr = f"{'model':<13}{'input':<9}{'batch':>6} {'prec':<5}{'cudnn img/s':>12}{'cuda img/s':>12}{'cuda/cudnn':>11}{'torch eager':>12}{'torch comp':>11}{'cudnn/eager':>12}{'cudnn/comp':>11}{'MiB ours':>9}{'MiB torch':>10}"
print(hdr)
rows = sorted({k[:4] for k in ours})


def num(r, key):
    return f"{r[key]:.0f}" if r else "-"


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


for (model, inp, bs, prec) in rows:
    c = ours.get((model, inp, bs, prec, "cudnn", "graph"))
    u = ours.get((model, inp, bs, prec, "cuda", "graph"))
    te = torch.get((model, inp, bs, prec, "eager"))
    tc = torch.get((model, inp, bs, prec, "compiled"))
    ci = c["images_per_second"] if c else None
    ui = u["images_per_second"] if u else None
    mem = max((r["peak_device_bytes"] for r in (c, u) if r), default=0) / 2**20
    print(f"{model:<13}{inp:<9}{bs:>6} {prec:<5}{num(c, 'images_per_second'):>12}"
          f"{num(u, 'images_per_second'):>12}{ratio(ui, ci):>11}{num(te, 'img_s'):>12}"
          f"{num(tc, 'img_s'):>11}{ratio(ci, te and te['img_s']):>12}"
          f"{ratio(ci, tc and tc['img_s']):>11}{mem:>9.0f}{num(te, 'peak_mib'):>10}")
for k, v in sorted((k, v) for k, v in ours.items() if k[5] == "nograph"):
    g = ours.get(k[:5] + ("graph",))
    print(f"no-graph {k[0]} b{k[2]} {k[3]} {k[4]}: {v['images_per_second']:.0f} img/s"
          + (f" (graph {g['images_per_second']:.0f})" if g else ""))
