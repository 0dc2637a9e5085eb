"""The project's own images, built from its Dockerfiles here, on Debian-built bases.

``Dockerfile.server`` and ``Dockerfile.operator`` default to the public Python image;
no registry is reachable here, so ``buildah bud`` builds them on
``devcluster.local/python:3.11`` (runtime) and ``devcluster.local/python-build:3.11``
(the installing stage), both from :mod:`images`. buildah keeps its own store under the
build cache (``<cache>/buildah``) and runs ``RUN`` steps with chroot isolation, so no
container runtime or daemon is involved. The host's CA bundle and a pip configuration
naming it are mounted into ``RUN`` steps only (never into a layer), so pip works behind
a TLS-inspecting proxy exactly as on the host.

Each image is cached as a Docker archive keyed by everything that goes into it (the
Dockerfile, the locked requirements, the sources, the bases) and rebuilt only when that
changes; it is then imported into the running node's containerd as
``devcluster.local/asocial-{chat,operator}:<version>``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import config, ctr, images, log

REPO = Path(__file__).resolve().parents[2]
REGISTRY = "devcluster.local"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# What a build reads besides its Dockerfile and requirements file.
SOURCES = ("pyproject.toml", "README.md", "chatserver", "asocial_operator")


def version() -> str:
    with (REPO / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


@dataclass(frozen=True)
class AppImage:
    name: str
    """Repository without the registry, e.g. ``asocial-chat``."""
    dockerfile: str
    requirements: str

    @property
    def ref(self) -> str:
        return f"{REGISTRY}/{self.name}:{version()}"

    def key(self) -> str:
        digest = hashlib.sha256()
        for base in (BASE, BUILD_BASE):
            digest.update(base.key().encode())
        for path in (self.dockerfile, self.requirements, *SOURCES):
            for file in _files(REPO / path):
                digest.update(str(file.relative_to(REPO)).encode() + b"\0")
                digest.update(file.read_bytes())
        return digest.hexdigest()[:16]


APP_IMAGES = (
    AppImage("asocial-chat", "Dockerfile.server", "deploy/images/requirements-server.txt"),
    AppImage("asocial-operator", "Dockerfile.operator", "deploy/images/requirements-operator.txt"),
)
BASE = next(i for i in images.IMAGES if i.name == "devcluster.local/python")
BUILD_BASE = next(i for i in images.IMAGES if i.name == "devcluster.local/python-build")


def _files(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for file in sorted(path.rglob("*")):
        if file.is_file() and "__pycache__" not in file.parts:
            yield file


_log = log.scoped("images")


def store() -> Path:
    return config.cache_root() / "buildah"


def _buildah(*args: str, capture: bool = False) -> str:
    if shutil.which("buildah") is None:
        raise SystemExit(
            "devcluster images: `buildah` is missing: apt-get install -y buildah "
            "(`make images` and `make test` install it)"
        )
    cmd = [
        "buildah",
        "--root",
        str(store() / "root"),
        "--runroot",
        str(store() / "run"),
        "--storage-driver",
        "overlay",
        *args,
    ]
    result = subprocess.run(cmd, check=False, capture_output=capture, text=True)
    if result.returncode != 0:
        output = "\n".join(filter(None, (result.stdout.strip(), result.stderr.strip())))
        detail = f":\n{output[-4000:]}" if capture else ""
        raise SystemExit(f"devcluster images: `{' '.join(cmd)}` failed{detail}")
    return result.stdout if capture else ""


def _has(ref: str) -> bool:
    cmd = ["buildah", "--root", str(store() / "root"), "--runroot", str(store() / "run")]
    cmd += ["--storage-driver", "overlay", "inspect", "--type", "image", ref]
    return subprocess.run(cmd, check=False, capture_output=True).returncode == 0


def _load_base(base: images.Image) -> None:
    """Put the Debian-built base into buildah's store under its usual name."""
    keyed = f"{base.name}:{base.tag}-{base.key()}"
    if _has(keyed):
        return
    archive = images.build(base)
    image_id = _buildah("pull", "--quiet", f"oci-archive:{archive}:{base.tag}", capture=True)
    _buildah("tag", image_id.strip(), keyed, base.ref)
    _buildah("rmi", f"localhost/{base.tag}", capture=True)  # the name the pull gave it


def archive(image: AppImage) -> Path:
    return images.cache_dir() / f"{image.name}-{version()}-{image.key()}.tar"


def _pip_conf(into: Path) -> Path:
    lines = ["[global]", f"cert = {HOST_CA_BUNDLE}"]
    if index := os.environ.get("PIP_INDEX_URL"):
        lines.append(f"index-url = {index}")
    conf = into / "pip.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def build(image: AppImage) -> Path:
    """The image's Docker archive, built now unless the cached one is current."""
    out = archive(image)
    if out.exists():
        return out
    for base in (BASE, BUILD_BASE):
        _load_base(base)
    started = time.monotonic()
    _log(f"building {image.ref} from {image.dockerfile} ...")
    images.cache_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=images.cache_dir()) as tmp:
        mounts: list[str] = []
        if HOST_CA_BUNDLE.exists():
            mounts += ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
            mounts += ["--volume", f"{_pip_conf(Path(tmp))}:/etc/pip.conf:ro"]
        _buildah(  # captured: it prints the image ID
            "bud",
            "--quiet",
            "--isolation",
            "chroot",
            "--layers",
            "--pull=never",
            "--format",
            "docker",
            *mounts,
            "--build-arg",
            f"PYTHON_IMAGE={BASE.ref}",
            "--build-arg",
            f"BUILD_IMAGE={BUILD_BASE.ref}",
            "--file",
            str(REPO / image.dockerfile),
            "--tag",
            image.ref,
            str(REPO),
            capture=True,
        )
        partial = Path(tmp) / "image.tar"
        _buildah("push", "--quiet", image.ref, f"docker-archive:{partial}:{image.ref}")
        partial.replace(out)
    for old in images.cache_dir().glob(f"{image.name}-*"):
        if old.stem != out.stem:
            old.unlink()
    _log(
        f"built {image.ref} in {time.monotonic() - started:.0f}s "
        f"({out.stat().st_size / 2**20:.0f} MiB uncompressed)"
    )
    return out


def build_all() -> list[Path]:
    return [build(image) for image in APP_IMAGES]


def archives() -> list[ctr.Archive]:
    """The current build of each image (built now where needed), for ``ctr.import_all``."""
    return [ctr.Archive(image.ref, build(image)) for image in APP_IMAGES]
