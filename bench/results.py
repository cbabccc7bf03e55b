"""What the benches share when they report: the machine they ran on, in words, the command that
runs them again, and replacing their own section of docs/BENCHMARKS.md (from its heading to the
next `## `), leaving the rest as it is."""

from __future__ import annotations

import platform
from pathlib import Path


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.node()} ({torch.get_num_threads()} threads, {cpu}, {gpu}), "
            f"torch {torch.__version__}")


def command_line(module: str, *args: str) -> str:
    """The command that runs bench `module` again with `args`, from the checkout's root."""
    return " ".join([".venv/bin/python", "-m", module, *args])


def replace_section(path: Path, heading: str, section: str) -> None:
    """Put `section` where the section starting with `heading` is, or at the end."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    start = text.find(heading)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + ("\n" + text[end + 1:] if end >= 0 else "")
    path.write_text(text, encoding="utf-8")
