"""Asocial operator: deploys and keeps the Asocial chat stack for each AsocialInstance.

Its modules form layers that import only inward; the order, and that only ``cluster``,
``leader`` and ``cli`` call the Kubernetes client, are the import-linter contracts in
``pyproject.toml`` (``[tool.importlinter]``, checked by ``make layers``). ``spec``,
``manifests``, ``status`` and ``naming`` are pure data transformations with no I/O.
"""
