#!/usr/bin/env python3
"""Golden values from PyTorch for trainbench's golden tests (docs/golden-tests.md).

  python3 peers/pytorch/golden.py --input GOLDEN_INPUT --output GOLDEN

GOLDEN_INPUT comes from `trainbench golden-export`: a model's initial weights, one batch, and
the optimizer settings. This script computes, in PyTorch on the CPU, the logits, the loss,
every parameter gradient, and two sequences of optimizer steps on that batch (SGD with
momentum, and Adam), and writes them in trainbench's container (kind "golden"). Batch norm
trains on batch statistics; dropout applies exactly trainbench's masks (tbrandom.py), so the
golden run is the same computation as trainbench's training step. The reference arithmetic is
float64: the golden is PyTorch's answer with rounding error far below fp32's. The same run in
float32 is compared with it too, and its errors are stored in the header as the yardstick for
trainbench's own fp32 errors, together with runs from slightly perturbed weights: the spread
that ReLU and max-pool decisions near their boundaries give any correct float32
implementation over ten steps.
"""
import argparse
import os
import platform
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402
import tbformat  # noqa: E402
import tbrandom  # noqa: E402


class StepClock:
    """The training step the dropout masks are drawn for."""
    step = 0


class TrainbenchDropout(nn.Module):
    """Inverted dropout with trainbench's mask for (seed, step, graph node)."""

    def __init__(self, p, node, seed, clock):
        super().__init__()
        self.p, self.node, self.seed, self.clock = p, node, seed, clock

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = tbrandom.dropout_keep_mask(self.seed, self.clock.step, self.node, self.p, x.numel())
        scale = float(np.float32(1) / (np.float32(1) - np.float32(self.p)))
        mask = torch.from_numpy(keep).to(x.dtype).view_as(x)
        return x * mask * scale


def build(header, tensors, dtype, clock):
    nodes = {d["name"]: d["node"] for d in header["dropout_layers"]}

    def dropout(name, p):
        if name not in nodes:
            raise SystemExit(f"golden.py: trainbench's graph has no dropout layer '{name}'")
        return TrainbenchDropout(p, nodes[name], header["seed"], clock)

    c, h, w = header["input"]
    model = models.build(header["model"], c, h, w, header["classes"], dropout)
    models.load_weights(model, {k: tensors[k] for k in header["param_names"] +
                                header["buffer_names"]}, "golden input")
    model.to(dtype).train()
    names = models.weight_names(model)
    want = header["param_names"] + header["buffer_names"]
    if names != want:
        raise SystemExit(f"golden.py: PyTorch's tensor order differs from trainbench's "
                         f"(first difference near {next(a for a, b in zip(names, want) if a != b)})")
    return model


def samples(values, count):
    flat = np.asarray(values, np.float64).reshape(-1)
    idx = (np.arange(count, dtype=np.int64) * flat.size) // count
    return flat[idx]


def stats(values):
    flat = np.asarray(values, np.float64).reshape(-1)
    return [flat.sum(), np.sqrt((flat * flat).sum()), np.abs(flat).max() if flat.size else 0.0]


def table(arrays, count):
    """[len(arrays), count] samples and [len(arrays), 3] statistics."""
    s = np.array([samples(a, count) for a in arrays], np.float64).reshape(len(arrays), count)
    t = np.array([stats(a) for a in arrays], np.float64).reshape(len(arrays), 3)
    return s, t


def optimizer(kind, header, params):
    extra = {"foreach": False}  # the single-tensor path, which trainbench mirrors op by op
    if kind == "sgd":
        o = header["sgd"]
        make = lambda **kw: torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"],  # noqa
                                            weight_decay=o["weight_decay"], **kw)
    else:
        o = header["adam"]
        make = lambda **kw: torch.optim.Adam(params, lr=o["lr"], betas=(o["beta1"], o["beta2"]),  # noqa
                                             eps=o["eps"], **kw)
    try:
        return make(**extra)
    except TypeError:  # a PyTorch without the foreach switch
        return make()


def compute(header, tensors, dtype):
    """Every golden value, computed in `dtype`, as a dict name -> float64 array."""
    x = torch.from_numpy(tensors["batch.images"]).to(dtype)
    y = torch.from_numpy(tensors["batch.labels"].astype(np.int64))
    count, steps = header["samples"], header["steps"]
    pnames, bnames = header["param_names"], header["buffer_names"]
    out = {}

    # One training-mode forward and backward at step 0.
    model = build(header, tensors, dtype, StepClock())
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    params = dict(model.named_parameters())
    out["forward.logits"] = logits.detach().double().numpy()
    out["forward.loss"] = np.array([loss.item()], np.float64)
    out["grad.samples"], out["grad.stats"] = table(
        [params[k].grad.double().numpy() for k in pnames], count)

    # Two sequences of optimizer steps on the same batch, each from the initial weights.
    for kind in ("sgd", "adam"):
        clock = StepClock()
        model = build(header, tensors, dtype, clock)
        opt = optimizer(kind, header, model.parameters())
        losses = []
        for step in range(steps):
            clock.step = step
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            losses.append(loss.item())
            loss.backward()
            opt.step()
        # What the steps changed: final minus initial value, so that the comparison is
        # relative to the size of the updates, not of the weights.
        state = model.state_dict()
        delta = lambda k: state[k].double().numpy() - tensors[k].astype(np.float64)  # noqa
        out[f"{kind}.losses"] = np.array(losses, np.float64)
        out[f"{kind}.param_delta_samples"], out[f"{kind}.param_delta_stats"] = table(
            [delta(k) for k in pnames], count)
        out[f"{kind}.buffer_delta_samples"], out[f"{kind}.buffer_delta_stats"] = table(
            [delta(k) for k in bnames], count)
    return out


def relative_error(a, b):
    """max |a - b| / max |b| (absolute when b is all zero), as tests/golden_compare.h."""
    a, b = np.asarray(a).reshape(-1), np.asarray(b).reshape(-1)
    if a.size == 0:
        return 0.0
    scale = np.abs(b).max()
    diff = np.abs(a - b).max()
    return float(diff / scale if scale > 0 else diff)


def tensor_errors(a, b, prefix):
    """The error of each tensor of a table (its samples, and the L2 norm of all its values)."""
    sa, sb = a[prefix + "samples"], b[prefix + "samples"]
    ta, tb = a[prefix + "stats"], b[prefix + "stats"]
    errs = []
    for t in range(len(sa)):
        norm = tb[t, 1]
        norm_err = abs(ta[t, 1] - norm) / norm if norm > 0 else abs(ta[t, 1])
        errs.append(max(relative_error(sa[t], sb[t]), norm_err))
    return errs


def errors(g32, g64):
    """How far a float32 run lands from the float64 golden, with the C++ test's metric: one
    number for the logits, the loss and each sequence's losses; one per tensor for gradients,
    weight changes and running-statistics changes."""
    e = {"logits": relative_error(g32["forward.logits"], g64["forward.logits"]),
         "loss": relative_error(g32["forward.loss"], g64["forward.loss"]),
         "gradients": tensor_errors(g32, g64, "grad.")}
    for kind in ("sgd", "adam"):
        e[kind] = {"losses": max(abs(a - b) / abs(b) for a, b in
                                 zip(g32[kind + ".losses"], g64[kind + ".losses"])),
                   "weights": tensor_errors(g32, g64, kind + ".param_delta_"),
                   "buffers": tensor_errors(g32, g64, kind + ".buffer_delta_")}
    return e


def worst_of(a, b):
    if isinstance(a, dict):
        return {k: worst_of(a[k], b[k]) for k in a}
    if isinstance(a, list):
        return [max(x, y) for x, y in zip(a, b)]
    return max(a, b)


# Ten optimizer steps pass through ReLU and max-pool decisions. An input within rounding of a
# decision boundary flips the subgradient there, so two correct float32 implementations may
# differ by the effect of such flips after a few steps. Runs from weights perturbed by this
# much (16 float32 roundings, about what a few steps accumulate) measure that spread.
PERTURBATION = 2.0 ** -20


def perturbed(tensors, names, rng):
    out = dict(tensors)
    for k in names:
        v = tensors[k].astype(np.float64)
        out[k] = (v * (1 + rng.uniform(-PERTURBATION, PERTURBATION, v.shape))).astype(np.float32)
    return out


def fp32_yardstick(header, tensors, g64, runs):
    """How far a correct float32 implementation may land from the float64 golden: for the
    forward pass and gradients, PyTorch's float32 run; for the optimizer sequences, the worst
    of that run and `runs` runs from perturbed weights (see PERTURBATION)."""
    base = errors(compute(header, tensors, torch.float32), g64)
    spread = base
    rng = np.random.default_rng(0)
    for _ in range(runs):
        t = perturbed(tensors, header["param_names"], rng)
        spread = worst_of(spread, errors(compute(header, t, torch.float32), g64))
    return dict(base, sgd=spread["sgd"], adam=spread["adam"])


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", required=True, help="golden input from trainbench golden-export")
    ap.add_argument("--output", required=True, help="golden file to write")
    ap.add_argument("--runs", type=int, default=4,
                    help="perturbed float32 runs behind the tolerance yardstick")
    args = ap.parse_args(argv)
    header, tensors = tbformat.read(args.input)
    if header.get("kind") != "golden-input" or header.get("golden_version") != 1:
        sys.exit(f"golden.py: {args.input} is not a version-1 golden input")
    torch.manual_seed(0)
    torch.set_num_threads(1)
    count = header["samples"]
    pnames, bnames = header["param_names"], header["buffer_names"]
    g64 = compute(header, tensors, torch.float64)

    golden = dict(header)
    golden["kind"] = "golden"
    golden["reference"] = {"framework": "pytorch", "torch": torch.__version__,
                           "numpy": np.__version__, "python": platform.python_version(),
                           "dtype": "float64", "device": "cpu",
                           "dropout": "trainbench's masks (tbrandom.py)",
                           "batch_norm": "training mode (batch statistics)",
                           "pytorch_fp32_errors": fp32_yardstick(header, tensors, g64, args.runs),
                           "pytorch_fp32_errors_from": (
                               f"forward and gradients: PyTorch float32; sgd and adam: worst of "
                               f"that and {args.runs} float32 runs from weights perturbed by "
                               f"{PERTURBATION:g} relative")}
    out = [("batch.images", tensors["batch.images"]), ("batch.labels", tensors["batch.labels"]),
           ("init.param_stats", table([tensors[k] for k in pnames], count)[1]),
           ("init.buffer_stats", table([tensors[k] for k in bnames], count)[1])]
    out += list(g64.items())
    tbformat.write(args.output, golden, out)
    e = golden["reference"]["pytorch_fp32_errors"]
    print(f"golden.py: {header['model']} {header['input']} batch {header['batch']}: loss "
          f"{g64['forward.loss'][0]:.6f}, {len(pnames)} parameter tensors, {header['steps']} SGD "
          f"and Adam steps -> {args.output} ({os.path.getsize(args.output)} bytes); PyTorch fp32 "
          f"vs float64 (worst tensor): gradients {max(e['gradients']):.1e}, SGD weights "
          f"{max(e['sgd']['weights']):.1e}, Adam weights {max(e['adam']['weights']):.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
