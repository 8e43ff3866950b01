"""The machine a benchmark ran on, for the line every tool prints beside its numbers.

Imported by the scripts in this folder (run as `python tools/<name>.py`, so this folder is on
`sys.path`); it imports no TensorFlow, so a tool may still pin TensorFlow's threads after it.
"""
import os


def cpu_model():
    """'<model name from /proc/cpuinfo>, <N> CPUs' (the CPUs this process may use)."""
    name = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name}, {len(os.sched_getaffinity(0))} CPUs"
