"""This machine's matrix-multiply peak in fp32 and bf16 (the yardstick for training MFU), and
the CPU features that decide whether bf16 autocast helps or hurts.

    .venv/bin/python -m bench.matmul [--size 2048] [--write docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import re
import time
from pathlib import Path

import torch


def peak_gflops(dtype: torch.dtype, size: int, seconds: float = 2.0) -> float:
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    a @ b  # warm-up: kernels chosen, caches filled
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or runs < 2:
        a @ b
        runs += 1
    return 2 * size**3 * runs / (time.perf_counter() - start) / 1e9


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni")
    return sorted({f for f in re.findall(r"\b[a-z0-9_]+\b", text) if f in wanted})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.matmul",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    fp32 = peak_gflops(torch.float32, args.size)
    bf16 = peak_gflops(torch.bfloat16, min(args.size, 512), seconds=1.0)
    line = (f"torch {torch.__version__}, {torch.get_num_threads()} threads, capability "
            f"{torch.backends.cpu.get_cpu_capability()}, flags {' '.join(cpu_flags()) or '-'}: "
            f"fp32 {fp32:.1f} GFLOP/s, bf16 {bf16:.1f} GFLOP/s (bf16/fp32 = {bf16 / fp32:.3f})")
    print(line)
    if args.write:
        with args.write.open("a", encoding="utf-8") as handle:
            handle.write(f"- {datetime.date.today()}, {platform.node()}: {line}\n")


if __name__ == "__main__":
    main()
