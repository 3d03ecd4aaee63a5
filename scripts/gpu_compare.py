"""Prints trainbench's GPU throughput rows next to the PyTorch peer measured in the same call,
then issue 4's two speed targets against that peer and against fixed PyTorch figures.

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

# Issue 4's targets on this call's rows, then against fixed PyTorch figures: the issue's H200
# reference (eager resnet18 b64 13.1k, compiled b512 72.8k img/s) and the fastest PyTorch any
# H100 call has measured here (session 21's call A: 12,184 and 66,881; docs/gpu-notes.md v23).
# The b64 target names no backend, so the faster of ours counts; the b512 one names cudnn.
REFERENCES = [("PyTorch on an H200 (issue)", 13100, 72800),
              ("fastest H100 PyTorch seen", 12184, 66881)]


def best_b64():
    got = [(ours.get(("resnet18", "3x32x32", 64, "bf16", impl, "graph")), impl)
           for impl in ("cudnn", "cuda")]
    got = [(r["images_per_second"], impl) for r, impl in got if r]
    return max(got) if got else (None, None)


b64, b64_impl = best_b64()
c512 = ours.get(("resnet18", "3x32x32", 512, "bf16", "cudnn", "graph"))
e64 = torch.get(("resnet18", "3x32x32", 64, "bf16", "eager"))
t512 = torch.get(("resnet18", "3x32x32", 512, "bf16", "compiled"))
if b64 or c512:
    print("\nTargets (resnet18 bf16): b64 ours >= 3x eager, b512 cudnn >= 1.3x compiled")

    def line(label, eager, compiled):
        parts = []
        if b64 and eager:
            parts.append(f"b64 {b64_impl} {b64:.0f} / {eager:.0f} = {b64 / eager:.2f}x"
                         f" ({'met' if b64 >= 3 * eager else 'missed'})")
        if c512 and compiled:
            ci = c512["images_per_second"]
            parts.append(f"b512 cudnn {ci:.0f} / {compiled:.0f} = {ci / compiled:.2f}x"
                         f" ({'met' if ci >= 1.3 * compiled else 'missed'})")
        if parts:
            print(f"  {label + ':':<28}" + "; ".join(parts))

    line("this call's PyTorch", e64 and e64["img_s"], t512 and t512["img_s"])
    for label, eager, compiled in REFERENCES:
        line(label, eager, compiled)
