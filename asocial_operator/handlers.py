"""kopf handlers: decorators only, each a few lines that feed the store and the queue.

Every watch event (the instance's or a child's) puts the object in the
store and queues its instance for a level-triggered reconcile. Watching
children is what repairs drift: a deleted or hand-edited child produces an
event and the next pass re-applies it. No kopf state is persisted on the
instance (no finalizer, no annotations): deletion is left to the garbage
collector through owner references, and an idle cluster sees no writes.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from asocial_operator import cluster, metrics, naming, reconciler, store, workqueue

MANAGED = {naming.LABEL_MANAGED_BY: naming.FIELD_MANAGER}
MANAGED_SELECTOR = f"{naming.LABEL_MANAGED_BY}={naming.FIELD_MANAGER}"


@kopf.on.login()
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """kopf's watches authenticate exactly like our API client (same kubeconfig)."""
    config = cluster.load_configuration(memo.get("kubeconfig"))
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        token=cluster.bearer_token(config),
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
    )


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Dead or silently stalled watch streams are reconnected at least this often.
    settings.watching.server_timeout = int(memo.get("watch_timeout", 240))
    settings.watching.client_timeout = int(memo.get("watch_timeout", 240)) + 30
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    settings.posting.level = logging.WARNING
    # Let the API server filter children: we never hold others' Secrets (kopf >= 1.45).
    for resource in cluster.WATCHED:
        settings.watching.label_selectors[(resource.api_version, resource.plural)] = (
            MANAGED_SELECTOR
        )
    api = cluster.Cluster(
        cluster.load_api_client(memo.get("kubeconfig")), on_write=metrics.API_WRITES.inc
    )
    memo.store = store.Store()
    memo.reconciler = reconciler.Reconciler(api, memo.store)
    memo.queue = workqueue.WorkQueue(
        lambda key: memo.reconciler.reconcile(key).retry, workers=int(memo.get("workers", 8))
    )
    memo.queue.start()


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    if "queue" in memo:
        await memo.queue.stop()


@kopf.on.event(naming.GROUP, naming.VERSION, naming.PLURAL)
async def instance_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    key = store.instance_key(body)
    if event["type"] == "DELETED":
        memo.store.remove_instance(key)
        metrics.observe_instance(key, None)
        return
    memo.store.put_instance(body)
    memo.queue.add(key)


async def child_event(
    event: kopf.RawEvent, body: kopf.Body, resource: kopf.Resource, memo: kopf.Memo, **_: Any
) -> None:
    if event["type"] == "DELETED":
        memo.store.remove_child(resource.kind, body.metadata.namespace, body.metadata.name)
        owner = store.owner_instance(body)
    else:
        # Objects from the initial LIST carry no kind; the watched resource knows it.
        owner = memo.store.put_child({**body, "kind": resource.kind})
    if owner is not None:
        memo.queue.add(owner)


for _resource in cluster.WATCHED:
    kopf.on.event(_resource.api_version, _resource.plural, labels=MANAGED, id=_resource.plural)(
        child_event
    )
