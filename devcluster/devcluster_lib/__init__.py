"""The devcluster: a Kubernetes control plane, kwok's fake nodes and one real node as
local processes (see ``devcluster/README.md``).

Standard library only. Its modules form layers that import only inward (``cli`` →
``cluster`` → ``node`` | ``appimages`` → ``steps`` | ``images`` | ``manifests`` → …):
the import-linter contract "devcluster layers point inward" in ``pyproject.toml``.
"""
