"""Devices, threads, precision and the environment record of the PyTorch peer, written so
the same code runs on PyTorch 1.13 (Debian) and 2.x."""
import contextlib
import datetime
import os
import platform
import socket
import tempfile

import numpy as np
import torch


def pick_device(choice):
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("pytorch peer: --device cuda, but this PyTorch sees no GPU "
                         f"(torch {torch.__version__}, built for CUDA {torch.version.cuda})")
    return torch.device(choice)


def configure_threads(threads):
    """threads 0 = all cores, as trainbench's --threads."""
    n = threads if threads and threads > 0 else (os.cpu_count() or 1)
    torch.set_num_threads(n)


def autocast_factory(device, precision):
    """A callable giving the forward pass's context: bf16 autocast, or nothing for fp32."""
    if precision != "bf16":
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({cpu_model()})"


def memory_bytes():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def environment(device, plan):
    """trainbench's environment record, plus what the peer ran on."""
    u = platform.uname()
    env = {
        "time_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hostname": socket.gethostname(),
        "os": f"{u.system} {u.release} {u.machine}",
        "cpu": {"model": cpu_model(), "logical_cores": os.cpu_count(),
                "online_cores": os.cpu_count()},
        "memory_bytes": memory_bytes(),
        "trainbench": plan.get("created_by", {}),
        "python": platform.python_version(),
        "libraries": {"torch": torch.__version__, "numpy": np.__version__},
        "pytorch": {"version": torch.__version__, "device": device.type,
                    "device_name": device_name(device), "threads": torch.get_num_threads(),
                    "mkldnn": bool(torch.backends.mkldnn.is_available())},
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env["gpu"] = {"name": props.name, "memory_bytes": props.total_memory,
                      "multiprocessors": props.multi_processor_count,
                      "capability": f"{props.major}.{props.minor}"}
        try:  # refuses when LD_LIBRARY_PATH offers another cuDNN than PyTorch was built with
            cudnn = torch.backends.cudnn.version()
        except RuntimeError as e:
            cudnn = f"unknown ({str(e).splitlines()[0][:120]})"
        env["pytorch"].update(cuda=torch.version.cuda, cudnn=cudnn,
                              cudnn_benchmark=torch.backends.cudnn.benchmark,
                              tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
                              tf32_cudnn=torch.backends.cudnn.allow_tf32)
    return env


def append_line(path, line):
    """Appends one line atomically (old contents + line to a temp file, then rename), as
    trainbench's append_line_atomic does: a reader never sees a torn line."""
    old = b""
    if os.path.exists(path):
        with open(path, "rb") as f:
            old = f.read()
        if old and not old.endswith(b"\n"):
            old += b"\n"
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp", dir=folder)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    with os.fdopen(fd, "wb") as f:
        f.write(old + line.encode("utf-8") + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
