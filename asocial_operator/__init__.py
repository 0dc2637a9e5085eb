"""Asocial operator: deploys and keeps the Asocial chat stack for each AsocialInstance.

Layers point inward and import-linter enforces it (see pyproject.toml):

    cli → handlers → reconciler | workqueue → cluster | store | metrics
        → status | manifests → spec → naming

Only ``cluster`` talks to the Kubernetes API. ``spec``, ``manifests``,
``status`` and ``naming`` are pure data transformations with no I/O.
"""
