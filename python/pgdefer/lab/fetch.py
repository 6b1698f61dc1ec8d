"""Debian packages into the lab cache: a kernel (``linux-image-*``) and ``busybox-static``.

Everything goes through the ordinary Debian tools: ``apt-cache depends`` resolves a metapackage
(``linux-image-amd64`` -> ``linux-image-6.1.0-57-amd64``; never a pinned name, Debian replaces them with each
point release), ``apt-cache show`` gives the candidate version, ``apt-get download`` fetches the ``.deb`` and
``dpkg-deb -x`` unpacks it under ``CACHE/debs/<package>_<version>/``. The cache is ``$PGDEFER_CACHE`` or
``~/.cache/pgdefer``; nothing in it is ever committed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import LabError

#: The metapackage that names Debian's current default kernel.
DEFAULT_KERNEL_PACKAGE = "linux-image-amd64"
BUSYBOX_PACKAGE = "busybox-static"


def cache_dir() -> Path:
    """``$PGDEFER_CACHE`` or ``~/.cache/pgdefer`` (created on first use)."""
    root = os.environ.get("PGDEFER_CACHE")
    p = Path(root) if root else Path.home() / ".cache" / "pgdefer"
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LabError(f"cannot create the lab cache {p}: {e.strerror or e} (set PGDEFER_CACHE)") from None
    return p


def _tool(name: str, why: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise LabError(f"{name} not found: it is needed to {why} (a Debian/Ubuntu host has it; or pass a file "
                       "path instead of a package name)")
    return path


def _run(argv, what: str, cwd=None, timeout=900) -> str:
    try:
        r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LabError(f"{what}: `{' '.join(argv)}` did not finish in {timeout} s") from None
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or r.stdout.strip().splitlines() or ["(no output)"])[-1]
        raise LabError(f"{what}: `{' '.join(argv)}` failed: {last}")
    return r.stdout


_PKG_NAME = re.compile(r"^[a-z0-9][a-z0-9+.\-]+$")


def resolve_package(name: str, depth: int = 4) -> str:
    """Follow a kernel metapackage to the real image package: ``linux-image-amd64`` ->
    ``linux-image-6.1.0-57-amd64``. A package that depends on no other ``linux-image-*`` is the image."""
    if not _PKG_NAME.match(name):
        raise LabError(f"{name!r} is neither an existing kernel file nor a Debian package name")
    apt_cache = _tool("apt-cache", "resolve Debian package names")
    cur = name
    for _ in range(depth):
        try:
            out = subprocess.run([apt_cache, "depends", cur], capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            raise LabError(f"apt-cache depends {cur} did not finish") from None
        if out.returncode != 0 or not out.stdout.strip():
            raise LabError(f"Debian package {cur!r} is unknown to apt (run `apt-get update`, or check the name)")
        deps = re.findall(r"^\s*\|?Depends: (linux-image-\S+)", out.stdout, re.M)
        deps = [d for d in deps if not d.startswith("<")]
        if not deps:
            return cur
        cur = deps[0]
    return cur


def candidate_version(package: str) -> str:
    """The version ``apt-get download`` would fetch (``apt-cache show --no-all-versions``)."""
    out = _run([_tool("apt-cache", "resolve Debian package names"), "show", "--no-all-versions", package],
               f"looking up {package}")
    m = re.search(r"^Version: (\S+)", out, re.M)
    if not m:
        raise LabError(f"apt-cache show {package}: no Version field (is it a virtual package?)")
    return m.group(1)


def unpacked_package(package: str, progress=None) -> Path:
    """The directory where ``package`` (its candidate version) is unpacked; downloads and unpacks it
    (``apt-get download`` + ``dpkg-deb -x``) the first time."""
    version = candidate_version(package)
    dest = cache_dir() / "debs" / f"{package}_{version.replace(':', '%3a')}"
    if (dest / ".complete").exists():
        return dest
    apt_get = _tool("apt-get", "download Debian packages")
    dpkg_deb = _tool("dpkg-deb", "unpack Debian packages")
    if progress:
        progress(f"downloading {package} {version} (apt-get download)")
    with tempfile.TemporaryDirectory(dir=cache_dir(), prefix="download-") as tmp:
        _run([apt_get, "download", "-q", f"{package}={version}"], f"downloading {package}", cwd=tmp)
        debs = sorted(Path(tmp).glob("*.deb"))
        if not debs:
            raise LabError(f"apt-get download {package} left no .deb file")
        if dest.exists():
            shutil.rmtree(dest)
        staging = Path(tmp) / "x"
        if progress:
            progress(f"unpacking {debs[0].name} (dpkg-deb -x)")
        _run([dpkg_deb, "-x", str(debs[0]), str(staging)], f"unpacking {debs[0].name}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), str(dest))
    (dest / ".complete").write_text(version + "\n")
    return dest


def kernel_from_package(name: str = DEFAULT_KERNEL_PACKAGE, progress=None) -> tuple:
    """(vmlinuz path, resolved package name, version) of a Debian kernel package, fetched into the cache."""
    pkg = resolve_package(name)
    root = unpacked_package(pkg, progress)
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise LabError(f"Debian package {pkg} holds no boot/vmlinuz-* (not a kernel image package)")
    return kernels[0], pkg, (root / ".complete").read_text().strip()


def busybox_from_package(progress=None) -> Path:
    """Debian's statically linked busybox (``busybox-static``), fetched into the cache."""
    root = unpacked_package(BUSYBOX_PACKAGE, progress)
    for rel in ("bin/busybox", "usr/bin/busybox"):
        if (root / rel).is_file():
            return root / rel
    raise LabError(f"{BUSYBOX_PACKAGE} unpacked in {root} holds no bin/busybox")


def kernel_config(vmlinuz: Path) -> Path | None:
    """The ``config-*`` beside a packaged ``vmlinuz-*`` (Debian ships both in ``boot/``), or None."""
    p = Path(vmlinuz)
    if p.name.startswith("vmlinuz-"):
        cfg = p.with_name("config-" + p.name[len("vmlinuz-"):])
        if cfg.is_file():
            return cfg
    return None
