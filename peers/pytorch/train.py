#!/usr/bin/env python3
"""The PyTorch peer: trains one trainbench run plan in PyTorch and records it in trainbench's
results schema ("trainbench.run", config.impl "pytorch").

The plan (written by `trainbench train ... --export-plan PLAN`) fixes the data files, split,
normalisation, every epoch's batch order and augmentation draws, the learning rate of every
step and the initial weights; this script only carries them out. What differs from
trainbench is the arithmetic (PyTorch's kernels) and dropout's random masks (PyTorch's own
generator). See docs/pytorch-peer.md.

  python3 peers/pytorch/train.py --plan PLAN [--device cpu|cuda] [--threads N]
      [--precision fp32|bf16] [--compile] [--channels-last] [--results FILE] [--record FILE]
      [--save-weights FILE]
Works with PyTorch 1.13 (Debian's python3-torch) and 2.x.
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402
import peer_env  # noqa: E402
import tbdata  # noqa: E402
import tbformat  # noqa: E402


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--plan", required=True, help="run plan JSON written by trainbench")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: cuda when available, else cpu")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads (default: the plan's --threads; 0 = all cores)")
    p.add_argument("--precision", default=None, choices=["fp32", "bf16"],
                   help="fp32, or bf16 autocast (default: the plan's --precision)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (PyTorch 2)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    p.add_argument("--cudnn-benchmark", action="store_true",
                   help="let cuDNN time its algorithms and keep the fastest (off by default: "
                   "docs/pytorch-peer.md says why)")
    p.add_argument("--results", help="append the run as one JSON line to FILE")
    p.add_argument("--record", help="write the run's JSON record to FILE (overwritten)")
    p.add_argument("--save-weights", help="write the trained weights in trainbench's format")
    p.add_argument("--data-dir", help="read the data files from this folder instead of the "
                   "plan's (a plan written on another machine); the CRC check still applies")
    p.add_argument("--quiet", action="store_true", help="no per-epoch log lines")
    return p.parse_args(argv)


class Data:
    """The normalised pool on the device, and batches cut from it as the plan says."""

    def __init__(self, plan, device, data_dir=None):
        images, labels = tbdata.load_pool(plan["dataset"], data_dir)
        scale, bias = tbdata.normalization_constants(plan["normalization"])
        x = torch.from_numpy(images).to(device)
        c = x.shape[1]
        s = torch.from_numpy(scale).to(device).view(1, c, 1, 1)
        b = torch.from_numpy(bias).to(device).view(1, c, 1, 1)
        # pixel * scale + bias, two float32 roundings, as trainbench's gather_batch does.
        self.x = x.float().mul_(s).add_(b)
        self.y = torch.from_numpy(labels.astype(np.int64)).to(device)
        aug = plan["augmentation"]
        self.pad = aug["crop_padding"] if aug["enabled"] else 0
        self.device = device
        h, w = self.x.shape[2], self.x.shape[3]
        self.rows = torch.arange(h, device=device)
        self.cols = torch.arange(w, device=device)

    def batch(self, items, draws=None):
        """Images and labels of pool indices `items`; draws [n,3] = (row offset, column
        offset, flip) of trainbench's crop (zero padding after normalisation) and flip."""
        x = self.x.index_select(0, items)
        if draws is None:
            return x, self.y.index_select(0, items)
        p, h, w = self.pad, x.shape[2], x.shape[3]
        padded = F.pad(x, (p, p, p, p))
        dy, dx, flip = draws[:, 0:1], draws[:, 1:2], draws[:, 2:3].bool()
        rows = self.rows.view(1, h) + dy                     # [n,H] rows of the padded image
        cols = torch.where(flip, (w - 1 - self.cols).view(1, w), self.cols.view(1, w)) + dx
        n = torch.arange(x.shape[0], device=x.device).view(-1, 1, 1)
        out = padded.permute(0, 2, 3, 1)[n, rows.view(-1, h, 1), cols.view(-1, 1, w)]
        return out.permute(0, 3, 1, 2).contiguous(), self.y.index_select(0, items)


def make_optimizer(plan, params):
    o, lr0 = plan["optimizer"], plan["schedule"]["lr"][0]
    if o["kind"] == "sgd":
        return torch.optim.SGD(params, lr=lr0, momentum=o["momentum"], nesterov=o["nesterov"],
                               weight_decay=o["weight_decay"])
    cls = torch.optim.AdamW if o["kind"] == "adamw" else torch.optim.Adam
    return cls(params, lr=lr0, betas=(o["beta1"], o["beta2"]), eps=o["eps"],
               weight_decay=o["weight_decay"])


def set_step_hyperparameters(opt, plan, step):
    sched = plan["schedule"]
    for group in opt.param_groups:
        group["lr"] = sched["lr"][step]
        if "momentum" in sched:  # one-cycle: momentum (SGD) or beta1 (Adam) per step
            m = sched["momentum"][step]
            if "betas" in group:
                group["betas"] = (m, group["betas"][1])
            else:
                group["momentum"] = m


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def evaluate(model, data, items, batch, device, autocast, label_smoothing, classes,
             channels_last):
    """Mean loss, accuracy and confusion matrix (rows: true class) over pool indices."""
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    confusion = torch.zeros(classes * classes, dtype=torch.int64, device=device)
    with torch.no_grad():
        for begin in range(0, len(items), batch):
            x, y = data.batch(items[begin:begin + batch])
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast():
                logits = model(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum",
                                        label_smoothing=label_smoothing).double()
            pred = logits.argmax(1)
            confusion += torch.bincount(y * classes + pred, minlength=classes * classes)
    model.train()
    n = len(items)
    conf = confusion.cpu().tolist()
    correct = sum(conf[i * classes + i] for i in range(classes))
    return {"loss": loss_sum.item() / n if n else 0.0, "accuracy": correct / n if n else 0.0,
            "count": n, "confusion": conf}


def main(argv):
    args = parse_args(argv)
    with open(args.plan) as f:
        plan = json.load(f)
    if plan.get("schema") != "trainbench.plan" or plan.get("plan_version") != 1:
        sys.exit(f"train.py: {args.plan} is not a version-1 trainbench run plan")
    config = dict(plan["config"])
    threads = config.get("threads", 0) if args.threads is None else args.threads
    precision = args.precision or config.get("precision", "fp32")
    if precision not in ("fp32", "bf16"):
        sys.exit(f"train.py: precision {precision} is not supported by the peer (fp32, bf16)")
    device = peer_env.pick_device(args.device)
    peer_env.configure_threads(threads)
    if args.compile and not hasattr(torch, "compile"):
        sys.exit(f"train.py: --compile needs PyTorch 2 (this is {torch.__version__})")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = args.cudnn_benchmark

    t_session = time.perf_counter()
    data = Data(plan, device, args.data_dir)
    split = {k: torch.from_numpy(tbdata.decode_array(v, f"split.{k}").astype(np.int64)).to(device)
             for k, v in plan["split"].items()}
    ds, m = plan["dataset"], plan["model"]
    model = models.build(m["name"], *m["input"], classes=m["classes"])
    weights_path = os.path.join(os.path.dirname(os.path.abspath(args.plan)),
                                plan["initial_weights"])
    _, init = tbformat.read(weights_path)
    models.load_weights(model, init, weights_path)
    model.to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(plan, model.parameters())
    step_model = torch.compile(model) if args.compile else model
    autocast = peer_env.autocast_factory(device, precision)
    ls = plan["loss"]["label_smoothing"]
    max_grad_norm = plan["optimizer"].get("max_grad_norm", 0.0)  # older plans: no clipping
    batch = plan["steps"]["batch_size"]
    classes = ds["classes"]
    log = (lambda s: None) if args.quiet else (lambda s: print(s, flush=True))
    log(f"pytorch peer: {m['name']} on {ds['name']} (train {len(split['train'])} / validation "
        f"{len(split['validation'])} / test {len(split['test'])}), torch {torch.__version__} "
        f"on {peer_env.device_name(device)}, {torch.get_num_threads()} thread(s), {precision}"
        f"{', compiled' if args.compile else ''}")

    status, error, epochs_out = "completed", None, []
    steps_done = images_done = 0
    model.train()
    for ep in plan["epochs"]:
        items = torch.from_numpy(tbdata.decode_array(ep["items"], "epoch items").astype(np.int64))
        items = items.to(device)
        draws = None
        if "augmentation" in ep:
            draws = torch.from_numpy(tbdata.decode_array(ep["augmentation"], "augmentation")
                                     .astype(np.int64)).to(device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen, data_s = 0, 0.0
        sync(device)
        t_epoch = time.perf_counter()
        for s in range(ep["steps"]):
            t0 = time.perf_counter()
            lo, hi = s * batch, min((s + 1) * batch, len(items))
            x, y = data.batch(items[lo:hi], None if draws is None else draws[lo:hi])
            if args.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            data_s += time.perf_counter() - t0
            set_step_hyperparameters(opt, plan, ep["first_step"] + s)
            with autocast():
                logits = step_model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=ls)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            opt.step()
            n = hi - lo
            loss_sum += loss.detach().double() * n
            correct += (logits.detach().argmax(1) == y).sum()
            seen += n
        sync(device)
        train_s = time.perf_counter() - t_epoch
        steps_done += ep["steps"]
        images_done += seen
        train_loss = loss_sum.item() / max(seen, 1)
        if not np.isfinite(train_loss):
            status = "failed"
            error = f"the loss became {train_loss} in epoch {ep['epoch'] + 1}; training stopped"
        t_eval = time.perf_counter()
        val = evaluate(step_model, data, split["validation"], plan["evaluation"]["batch_size"],
                       device, autocast, ls, classes, args.channels_last)
        sync(device)
        em = {"epoch": ep["epoch"] + 1, "steps": ep["steps"], "images": seen,
              "lr": plan["schedule"]["lr"][ep["first_step"] + ep["steps"] - 1],
              "train_loss": train_loss, "train_accuracy": correct.item() / max(seen, 1),
              "validation_loss": val["loss"], "validation_accuracy": val["accuracy"],
              "data_seconds": data_s, "compute_seconds": train_s - data_s,
              "eval_seconds": time.perf_counter() - t_eval,
              "images_per_second": seen / max(train_s, 1e-9),
              "elapsed_seconds": time.perf_counter() - t_session}
        epochs_out.append(em)
        log(f"epoch {em['epoch']}/{config['epochs']}  loss {train_loss:.4f}  train "
            f"{100 * em['train_accuracy']:.2f}%  validation {val['loss']:.4f} / "
            f"{100 * val['accuracy']:.2f}%  {em['images_per_second']:.0f} img/s  lr "
            f"{em['lr']:.3g}  {em['elapsed_seconds']:.1f} s")
        if status == "failed":
            break

    final = {"steps": steps_done, "images": images_done,
             "train_seconds": sum(e["data_seconds"] + e["compute_seconds"] for e in epochs_out)}
    if epochs_out:
        last = epochs_out[-1]
        final.update(train_loss=last["train_loss"], train_accuracy=last["train_accuracy"],
                     validation_loss=last["validation_loss"],
                     validation_accuracy=last["validation_accuracy"])
    if status == "completed" and len(split["test"]):
        test = evaluate(step_model, data, split["test"], plan["evaluation"]["batch_size"], device,
                        autocast, ls, classes, args.channels_last)
        final.update(test_loss=test["loss"], test_accuracy=test["accuracy"],
                     test_images=test["count"], confusion_matrix=test["confusion"])
        log(f"test: loss {test['loss']:.4f}  accuracy {100 * test['accuracy']:.2f}% "
            f"({test['count']} images)")
    final["total_seconds"] = time.perf_counter() - t_session
    final["images_per_second"] = images_done / final["train_seconds"] if final["train_seconds"] else 0.0

    config.update(impl="pytorch", threads=threads, precision=precision)
    config["pytorch"] = {"device": device.type, "compile": bool(args.compile),
                         "channels_last": bool(args.channels_last)}
    model_rec = {k: m[k] for k in ("name", "input", "parameters", "forward_flops_per_image",
                                   "training_flops_per_image")}
    if device.type == "cuda":
        model_rec["peak_memory_bytes"] = torch.cuda.max_memory_allocated()
    # The peer's own process, measured as trainbench measures its own (docs/results-schema.md):
    # trainbench's monitor sees only its own process, not this child.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.perf_counter() - t_session
    cores = len(os.sched_getaffinity(0))
    busy = (usage.ru_utime + usage.ru_stime) / wall if wall > 0 else 0.0
    system = {"wall_seconds": wall, "cpu_user_seconds": usage.ru_utime,
              "cpu_system_seconds": usage.ru_stime, "cores": cores, "cpu_cores_busy": busy,
              "cpu_utilisation": busy / cores, "peak_rss_bytes": usage.ru_maxrss * 1024,
              "peak_rss_scope": "process", "measured_by": "pytorch peer (getrusage)"}
    record = {"schema": "trainbench.run", "schema_version": 1, "kind": "train", "status": status,
              "config": config, "environment": peer_env.environment(device, plan),
              "data": {"source": ds["source"], "train": len(split["train"]),
                       "validation": len(split["validation"]), "test": len(split["test"]),
                       "augmentation": plan["augmentation"]["enabled"],
                       "normalization": plan["normalization"]},
              "model": model_rec, "class_names": ds["class_names"], "epochs": epochs_out,
              "final": final, "system": system}
    if error:
        record["error"] = error
    line = json.dumps(record)
    if args.record:
        with open(args.record, "w") as f:
            f.write(line + "\n")
    if args.results:
        peer_env.append_line(args.results, line)
        log(f"result appended to {args.results}")
    if args.save_weights:
        producer = {"name": "pytorch-peer", "torch": torch.__version__,
                    "device": device.type, "plan": os.path.abspath(args.plan)}
        header = tbformat.weights_header(m["name"], m["input"], m["classes"],
                                         plan["normalization"], ds["class_names"], producer)
        tbformat.write(args.save_weights, header, models.weights_of(model))
        log(f"weights written to {args.save_weights}")
    return 0 if status == "completed" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
