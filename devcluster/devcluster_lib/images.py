"""Container images built on this machine, for a node that can reach no registry.

Root filesystems come from Debian packages (``mmdebstrap``) or from a binary built here
(the pause image); ``umoci`` turns each into an OCI image, which is imported into the
node's containerd (namespace ``k8s.io``, where the kubelet looks). Each image is cached
under the build cache, keyed by a hash of everything that goes into it, and rebuilt only
when that changes.

| image                            | contents                                     |
|----------------------------------|----------------------------------------------|
| ``devcluster.local/pause:1``     | the ``pause`` binary (the pod sandbox)       |
| ``devcluster.local/traefik:v3.6.12`` | the ``traefik`` binary (the edge proxy)  |
| ``devcluster.local/prometheus``, | the binaries built here, where the Prometheus |
| ``…/prometheus-operator``,       | Operator's pods expect them (``/bin/…``)     |
| ``…/prometheus-config-reloader`` |                                              |
| ``devcluster.local/redis:7``     | Debian's redis-server, -sentinel, -tools; ``sh`` |
| ``devcluster.local/python:3.11`` | Debian's python3 (3.11), ``sh``              |
| ``devcluster.local/python-build:3.11`` | the same plus ``venv`` and pip's wheel: the  |
|                                  | stage of ``Dockerfile.*`` that installs; not |
|                                  | imported into the node                       |
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import config, ctr, log

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class Image:
    name: str
    """Repository, e.g. ``devcluster.local/redis``."""
    tag: str
    packages: tuple[str, ...] = ()
    """Debian packages of the root filesystem (``mmdebstrap --variant=minbase``)."""
    binary: str | None = None
    """A node binary that is the whole image (at ``binary_path``), instead of packages."""
    binary_path: str = ""
    """Where the binary goes (default ``/<binary>``): where the program that starts the
    container expects it."""
    entrypoint: tuple[str, ...] = ()
    """For images whose users pass only ``args`` (the Prometheus Operator's pods)."""
    cmd: tuple[str, ...] = ()
    user: str = ""
    node: bool = True
    """Imported into the node's containerd (else only a base for image builds)."""
    env: tuple[str, ...] = field(
        default=("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)
    )

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.tag}"

    def key(self) -> str:
        """Content key: the recipe, plus the binary's bytes for a binary image."""
        recipe = json.dumps(
            [
                *(self.ref, SUITE, self.packages, self.binary, self.binary_path),
                *(self.entrypoint, self.cmd, self.user, self.env),
            ]
        ).encode()
        digest = hashlib.sha256(recipe)
        if self.binary:
            digest.update((config.binary_dir(self.binary) / self.binary).read_bytes())
        return digest.hexdigest()[:16]


IMAGES = (
    Image("devcluster.local/pause", "1", binary="pause", cmd=("/pause",), user="65535"),
    # A static binary alone: it needs no shell, no CA bundle (it trusts the cluster's CA
    # from its ServiceAccount) and no user database.
    Image(
        "devcluster.local/traefik",
        config.TRAEFIK_VERSION,
        binary="traefik",
        cmd=("/traefik",),
        user="65532",
    ),
    # Day two: Prometheus and the Prometheus Operator, where the operator's pods look.
    Image(
        "devcluster.local/prometheus",
        config.PROMETHEUS_VERSION,
        binary="prometheus",
        binary_path="/bin/prometheus",
        entrypoint=("/bin/prometheus",),
        user="65534",
    ),
    Image(
        "devcluster.local/prometheus-operator",
        config.PROMETHEUS_OPERATOR_VERSION,
        binary="prometheus-operator",
        binary_path="/bin/operator",
        entrypoint=("/bin/operator",),
        user="65534",
    ),
    Image(
        "devcluster.local/prometheus-config-reloader",
        config.PROMETHEUS_OPERATOR_VERSION,
        binary="prometheus-config-reloader",
        binary_path="/bin/prometheus-config-reloader",
        entrypoint=("/bin/prometheus-config-reloader",),
        user="65534",
    ),
    Image(
        "devcluster.local/redis",
        "7",
        packages=("redis-server", "redis-tools", "redis-sentinel"),
        cmd=("redis-server", "--protected-mode", "no"),
    ),
    Image("devcluster.local/python", "3.11", packages=("python3", "ca-certificates")),
    Image(
        "devcluster.local/python-build",
        "3.11",
        packages=("python3", "python3-venv", "ca-certificates"),
        node=False,
    ),
)


_log = log.scoped("images")


def cache_dir() -> Path:
    return config.cache_root() / "images"


def archive(image: Image) -> Path:
    return cache_dir() / f"{image.name.rsplit('/', 1)[1]}-{image.tag}-{image.key()}.tar"


def _require(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        raise SystemExit(
            f"devcluster images: `{tool}` is missing: apt-get install -y {package} "
            "(`make test` installs it)"
        )


def _rootfs(image: Image, into: Path) -> None:
    if image.binary:
        target = into / (image.binary_path or image.binary).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(config.binary_dir(image.binary) / image.binary, target)
        return
    _require("mmdebstrap", "mmdebstrap")
    tar = into.parent / "rootfs.tar"
    cmd = [
        "mmdebstrap",
        "--variant=minbase",
        "--quiet",
        "--include=" + ",".join(image.packages),
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--customize-hook=rm -rf $1/var/cache/apt/* $1/var/lib/apt/lists/*",
        SUITE,
        str(tar),
        MIRROR,
    ]
    subprocess.run(cmd, check=True)
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tar) as t:
        t.extractall(into, filter="fully_trusted")
    tar.unlink()


def build(image: Image) -> Path:
    """The image's OCI archive, built now unless the cached one is current."""
    out = archive(image)
    if out.exists():
        return out
    _require("umoci", "umoci")
    started = time.monotonic()
    _log(f"building {image.ref} ...")
    cache_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        work = Path(tmp)
        layout, bundle = work / "oci", work / "bundle"
        ref = f"{layout}:{image.tag}"
        subprocess.run(["umoci", "init", "--layout", str(layout)], check=True)
        subprocess.run(["umoci", "new", "--image", ref], check=True)
        subprocess.run(["umoci", "unpack", "--image", ref, str(bundle)], check=True)
        rootfs = bundle / "rootfs"
        shutil.rmtree(rootfs)
        _rootfs(image, rootfs)
        subprocess.run(["umoci", "repack", "--image", ref, str(bundle)], check=True)
        configure = ["umoci", "config", "--image", ref, "--clear=config.env"]
        configure += [f"--config.env={e}" for e in image.env]
        for arg in image.entrypoint:
            configure.append(f"--config.entrypoint={arg}")
        for arg in image.cmd:
            configure.append(f"--config.cmd={arg}")
        if image.user:
            configure.append(f"--config.user={image.user}")
        subprocess.run(configure, check=True)
        subprocess.run(["umoci", "gc", "--layout", str(layout)], check=True)
        partial = out.with_suffix(".partial")
        with tarfile.open(partial, "w") as t:
            for entry in sorted(layout.iterdir()):
                t.add(entry, arcname=entry.name)
        partial.replace(out)
    for old in cache_dir().glob(f"{image.name.rsplit('/', 1)[1]}-{image.tag}-*"):
        if old.stem != out.stem:  # older builds, and the import markers beside them
            old.unlink()
    _log(f"built {image.ref} in {time.monotonic() - started:.0f}s ({out.stat().st_size >> 20} MiB)")
    return out


def build_all() -> list[Path]:
    return [build(image) for image in IMAGES]


def node_archives() -> list[ctr.Archive]:
    """The images the node runs (built now where missing), for ``ctr.import_all``."""
    return [
        ctr.Archive(image.ref, build(image), ("--base-name", image.name, "--no-unpack"))
        for image in IMAGES
        if image.node
    ]
