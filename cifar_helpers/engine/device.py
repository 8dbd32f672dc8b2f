"""Choosing the device, with a clear fallback to the CPU, and determinism."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

from cifar_helpers.core.errors import WorkbookError

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")
# Up to four epochs of the full training set: minutes, not hours, even on a CPU.
SMALL_RUN_IMAGES = 200_000


class DeviceError(WorkbookError, RuntimeError):
    """The requested device is not there; the message says what to do."""


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def select_device(name: str | None = "auto") -> torch.device:
    """`auto` picks cuda, then mps, then cpu. An explicit device must exist."""
    if name is not None and not isinstance(name, str):  # papermill's `-p DEVICE 1` gives the number 1
        raise DeviceError(f"DEVICE must be one of {', '.join(DEVICE_CHOICES)} (or cuda:N) as text, got {name!r}"
                          + (f"; for GPU {name}, write cuda:{name}" if type(name) is int else ""))
    choice = (name or "auto").strip().lower()
    kind = choice.split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise DeviceError(f"DEVICE must be one of {', '.join(DEVICE_CHOICES)} (or cuda:N), got {name!r}")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise DeviceError(
            f"DEVICE={name!r}, but PyTorch sees no CUDA GPU (torch.cuda.is_available() is False). "
            "Use DEVICE='auto' to fall back to the CPU, or check the NVIDIA driver "
            "(and `docker run --gpus all` inside Docker)."
        )
    if kind == "mps" and not _mps_available():
        raise DeviceError(f"DEVICE={name!r}, but this PyTorch has no Apple MPS device. Use DEVICE='auto'.")
    return torch.device(choice)


def prefers_channels_last(device: torch.device) -> bool:
    """Train in channels_last (NHWC) memory? Yes on CUDA, and on the CPU, where the convolutions ran
    17-28% faster per step (benchmarks/cpu_memory_format.py, benchmarks/RESULTS.md)."""
    return device.type in ("cuda", "cpu")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    threads = torch.get_num_threads()
    return f"CPU ({threads} thread{'' if threads == 1 else 's'})"


def processor_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's model ("AMD EPYC", "Intel(R) Xeon(R) ..."), as Linux names it, else as Python can tell.

    A seeded CPU run repeats its numbers exactly only on the same kind of processor (its kernels differ
    between instruction sets), so a run's record names the one that trained each span of its epochs."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


def cuda_fp32_math(device: torch.device) -> dict[str, str] | None:
    """What CUDA's "fp32" convolutions and matrix products really compute in: PyTorch lets cuDNN's
    convolutions use TF32 (a 10-bit mantissa) by default, so a results file says which it was."""
    if device.type != "cuda":
        return None
    return {"convolutions": "tf32" if torch.backends.cudnn.allow_tf32 else "fp32",
            "matmul": "tf32" if torch.backends.cuda.matmul.allow_tf32 else "fp32"}


def describe_device(device: torch.device, long_run: bool = False) -> str:
    """One line for the notebook: which device trains, and, for a long run on the CPU, what that means."""
    if device.type != "cpu":
        return f"Training on {device.type}: {device_name(device)}"
    line = f"Training on the CPU: {device_name(device)}."
    if long_run:
        line += ("\nNo GPU was found or chosen, and this run is long: expect hours on a CPU."
                 "\nSUBSET or fewer EPOCHS give a quick look (README, 'The two commands').")
    return line


def configure_determinism(deterministic: bool) -> None:
    """Deterministic CUDA kernels (slower) or the fastest ones.

    On the CPU the engine is deterministic either way. cuBLAS needs
    CUBLAS_WORKSPACE_CONFIG before its first handle is made, so it is set here
    when missing.
    """
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    torch.use_deterministic_algorithms(deterministic)
