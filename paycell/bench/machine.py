"""A description of the machine a benchmark ran on, for the record next to its figures.

Everything here is best effort: a field that cannot be read is ``None``, never an error.
"""

from __future__ import annotations

import os
import platform
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def cpu_model() -> str | None:
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model"):
            return value.strip() or None
    return platform.processor() or None


def memory_bytes() -> int | None:
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            try:
                return int(parts[1]) * 1024
            except (IndexError, ValueError):
                return None
    return None


def _mount_of(path: Path) -> tuple[str, str, str] | None:
    """(device, mount point, filesystem type) of the mount holding ``path``."""
    best: tuple[str, str, str] | None = None
    target = str(path.resolve())
    for line in (_read("/proc/mounts") or "").splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        device, mount, fstype = parts[0], parts[1].replace("\\040", " "), parts[2]
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and (best is None or len(mount) > len(best[1])):
            best = (device, mount, fstype)
    return best


def _block_device_info(device: str) -> dict[str, Any]:
    """Model and rotational flag of a /dev block device (its parent disk for a partition)."""
    name = Path(device).name
    if not device.startswith("/dev/") or not name:
        return {}
    sys_dev = Path("/sys/class/block") / name
    if not sys_dev.exists():
        return {}
    disk = sys_dev.resolve()
    if (disk / "partition").exists():
        disk = disk.parent
    info: dict[str, Any] = {"block_device": disk.name}
    rotational = _read(disk / "queue" / "rotational")
    if rotational is not None and rotational.strip() in ("0", "1"):
        info["rotational"] = rotational.strip() == "1"
    model = _read(disk / "device" / "model")
    if model and model.strip():
        info["model"] = model.strip()
    return info


def disk(path: str | Path | None = None) -> dict[str, Any]:
    """The file system that holds ``path`` (the temp dir by default), where the databases live."""
    where = Path(path or tempfile.gettempdir())
    out: dict[str, Any] = {"path": str(where)}
    mount = _mount_of(where)
    if mount is not None:
        out["device"], out["mount_point"], out["fstype"] = mount
        out |= _block_device_info(mount[0])
    try:
        usage = shutil.disk_usage(where)
        out["size_bytes"] = usage.total
        out["free_bytes"] = usage.free
    except OSError:
        pass
    return out


def describe(
    *, postgres_version: str | None = None, temp_dir: str | Path | None = None,
) -> dict[str, Any]:
    """CPU, memory, kernel, Python, SQLite and PostgreSQL versions, and the data disk."""
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": memory_bytes(),
        "kernel": f"{platform.system()} {platform.release()}".strip(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_version,
        "disk": disk(temp_dir),
        "load_average_at_start": load,
    }


def summary(machine: dict[str, Any]) -> list[tuple[str, str]]:
    """Human-readable (label, value) pairs for tables and docs."""
    mem = machine.get("memory_bytes")
    d = machine.get("disk") or {}
    disk_parts = [str(x) for x in (d.get("fstype"), d.get("device"), d.get("model")) if x]
    if "rotational" in d:
        # Virtual disks (virtio) often claim to be rotational: report the flag, not a guess.
        disk_parts.append(f"rotational={int(d['rotational'])}")
    if d.get("size_bytes"):
        disk_parts.append(f"{d['size_bytes'] / 2**30:.0f} GiB")
    load = machine.get("load_average_at_start")
    return [
        ("CPU", f"{machine.get('cpu_model') or '?'} × {machine.get('cpu_count') or '?'}"),
        ("memory", f"{mem / 2**30:.1f} GiB" if mem else "?"),
        ("kernel", str(machine.get("kernel") or "?")),
        ("Python", str(machine.get("python") or "?")),
        ("SQLite", str(machine.get("sqlite") or "?")),
        ("PostgreSQL", str(machine.get("postgresql") or "not run")),
        ("data disk", f"{d.get('path', '?')}: " + (", ".join(disk_parts) or "?")),
        ("load average at start", " ".join(str(x) for x in load) if load else "?"),
    ]
