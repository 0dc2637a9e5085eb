"""The chat stack's alert rules and Grafana dashboard, as data (no I/O).

``python -m asocial_operator.monitoring DIR`` writes the files shipped in
``deploy/monitoring/`` from them (``make monitoring``).
"""
