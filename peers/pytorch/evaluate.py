#!/usr/bin/env python3
"""Evaluates a weights file (trainbench's format; written by `trainbench train --checkpoint`
+ `trainbench export-weights`, or by train.py --save-weights) in PyTorch on one split of a
run plan's data, and prints (or writes) the loss, accuracy and confusion matrix as JSON.

  python3 peers/pytorch/evaluate.py --plan PLAN --weights W [--subset test] [--json-out F]
`trainbench evaluate --impl pytorch` writes the plan and runs this.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402
import peer_env  # noqa: E402
import tbdata  # noqa: E402
import tbformat  # noqa: E402


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plan", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--subset", default="test", choices=["test", "validation", "train"])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--data-dir", help="read the data files from this folder instead of the "
                    "plan's; the CRC check still applies")
    ap.add_argument("--json-out", help="write the result here instead of printing it")
    args = ap.parse_args(argv)
    with open(args.plan) as f:
        plan = json.load(f)
    header, tensors = tbformat.read(args.weights)
    if header.get("kind") not in ("weights", "training"):
        sys.exit(f"evaluate.py: {args.weights} holds '{header.get('kind')}', not model weights")
    device = peer_env.pick_device(args.device)
    peer_env.configure_threads(args.threads)

    m = header["model"]
    c, h, w = m["input"]
    ds = plan["dataset"]
    if [c, h, w, m["classes"]] != [ds["channels"], ds["height"], ds["width"], ds["classes"]]:
        sys.exit(f"evaluate.py: {args.weights} holds a model for {c}x{h}x{w} images and "
                 f"{m['classes']} classes, the data has {ds['channels']}x{ds['height']}x"
                 f"{ds['width']} and {ds['classes']}")
    model = models.build(m["name"], c, h, w, m["classes"])
    models.load_weights(model, {k: v for k, v in tensors.items()
                                if not k.startswith("optimizer.")}, args.weights)
    model.to(device).eval()

    norm_from = "weights file" if "normalization" in header else "training split"
    norm = header.get("normalization") or plan["normalization"]
    images, labels = tbdata.load_pool(ds, args.data_dir)
    items = tbdata.decode_array(plan["split"][args.subset], f"split.{args.subset}").astype(np.int64)
    if len(items) == 0:
        sys.exit(f"evaluate.py: the {args.subset} split is empty")
    scale, bias = tbdata.normalization_constants(norm)
    s = torch.from_numpy(scale).view(1, c, 1, 1).to(device)
    b = torch.from_numpy(bias).view(1, c, 1, 1).to(device)
    k = m["classes"]
    loss_sum, confusion = 0.0, np.zeros(k * k, np.int64)
    with torch.no_grad():
        for begin in range(0, len(items), args.batch_size):
            idx = items[begin:begin + args.batch_size]
            x = torch.from_numpy(images[idx]).to(device).float().mul_(s).add_(b)
            y = torch.from_numpy(labels[idx].astype(np.int64)).to(device)
            logits = model(x)
            loss_sum += F.cross_entropy(logits.double(), y, reduction="sum").item()
            pred = logits.argmax(1)
            confusion += torch.bincount(y * k + pred, minlength=k * k).cpu().numpy()
    n = len(items)
    result = {"model": m["name"], "subset": args.subset, "impl": "pytorch", "count": n,
              "loss": loss_sum / n, "accuracy": float(np.trace(confusion.reshape(k, k))) / n,
              "classes": k, "confusion_matrix": confusion.tolist(),
              "normalization_from": norm_from, "torch": torch.__version__}
    text = json.dumps(result)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(text + "\n")
        print(f"pytorch: {args.subset} loss {result['loss']:.4f}  accuracy "
              f"{100 * result['accuracy']:.2f}% ({n} images)")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
