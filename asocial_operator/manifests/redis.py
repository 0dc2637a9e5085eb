"""Managed Redis: start scripts, StatefulSet, Services, PDB and NetworkPolicy.

Pure data; no I/O. One replica is a standalone server; 3 or 5 replicas run
replication with a Sentinel sidecar in every pod, and the chat server finds
the master through the Sentinel Service. The password comes from the
instance's Secret through environment variables, never from arguments.
"""

from __future__ import annotations

from asocial_operator import naming
from asocial_operator import spec as specs
from asocial_operator.manifests import common

REDIS_UID = 999  # the redis user of the official images

REDIS_START = """\
#!/bin/sh
# Start redis-server; with Sentinel, follow the master the sentinels know,
# else pod 0 starts as master and the others replicate from it.
set -eu
ME="$(hostname).${HEADLESS_SERVICE}"
set -- redis-server --port 6379 --dir /data --protected-mode no \\
  --requirepass "$REDIS_PASSWORD" --masterauth "$REDIS_PASSWORD"
# Accounts and rooms live here too: log every write (fsync each second).
if [ "${APPENDONLY:-no}" = yes ]; then set -- "$@" --appendonly yes --appendfsync everysec; fi
if [ "${SENTINEL_SERVICE:-}" != "" ]; then
  . /scripts/sentinel-lib.sh
  MASTER="$(master)"
  if [ "$MASTER" = "$ME" ]; then
    # The sentinels still name this pod, which has just restarted: have them promote
    # a replica instead of coming back as master with what this pod kept (nothing, on
    # an emptyDir), which the replicas would then copy. Alone (every pod restarting
    # at once), it starts as master after 20 s.
    hand_over 20
    MASTER="$(master)"
  fi
  [ -n "$MASTER" ] || MASTER="${STATEFULSET}-0.${HEADLESS_SERVICE}"
  set -- "$@" --replica-announce-ip "$ME"
  if [ "$MASTER" != "$ME" ]; then set -- "$@" --replicaof "$MASTER" 6379; fi
fi
exec "$@"
"""

SENTINEL_LIB = """\
# Shared by the Redis scripts: ask the sentinels, and hand mastership over.
# master: the master the sentinels name, or nothing if none answers. The Service
# reaches only ready pods; each peer is asked too (the headless names resolve before
# pods are ready), so a pod restarting while the Service has no endpoint does not
# mistake itself for the first pod of a new installation.
master() {
  for host in "$SENTINEL_SERVICE" $SENTINEL_PEERS; do
    [ "$host" = "$ME" ] && continue
    m="$(env -u REDISCLI_AUTH timeout 2 redis-cli -h "$host" -p 26379 \\
      sentinel get-master-addr-by-name "$MASTER_SET" 2>/dev/null | head -n1 || true)"
    if [ -n "$m" ]; then echo "$m"; return 0; fi
  done
}
# hand_over SECONDS: while the sentinels name this pod as master, ask one of them to
# fail over to a replica (again only every 10 s: a second request to a sentinel that
# has not yet heard of the first would promote a second replica); give up after SECONDS.
hand_over() {
  i=0
  while [ "$(master)" = "$ME" ] && [ "$i" -lt "$1" ]; do
    if [ $((i % 10)) -eq 0 ]; then
      env -u REDISCLI_AUTH timeout 2 redis-cli -h "$SENTINEL_SERVICE" -p 26379 \\
        sentinel failover "$MASTER_SET" >/dev/null 2>&1 || true
    fi
    sleep 1
    i=$((i + 1))
  done
}
"""

REDIS_PRESTOP = """\
#!/bin/sh
# Before a master pod stops (rolling update, drain, delete): hand mastership to a
# replica first, so writers see a failover of a second or two rather than the
# sentinels' 5 s wait for a master that is gone.
set -u
ME="$(hostname).${HEADLESS_SERVICE}"
. /scripts/sentinel-lib.sh
hand_over 15
"""

SENTINEL_START = """\
#!/bin/sh
# Write a fresh sentinel.conf (sentinel rewrites it at run time) and start.
set -eu
ME="$(hostname).${HEADLESS_SERVICE}"
. /scripts/sentinel-lib.sh
MASTER="$(master)"
[ -n "$MASTER" ] || MASTER="${STATEFULSET}-0.${HEADLESS_SERVICE}"
umask 077
cat > /sentinel/sentinel.conf <<CONF
port 26379
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip ${ME}
sentinel monitor ${MASTER_SET} ${MASTER} 6379 ${QUORUM}
sentinel auth-pass ${MASTER_SET} ${REDIS_PASSWORD}
sentinel down-after-milliseconds ${MASTER_SET} 5000
sentinel failover-timeout ${MASTER_SET} 60000
sentinel parallel-syncs ${MASTER_SET} 1
CONF
exec redis-sentinel /sentinel/sentinel.conf
"""


def _sentinel(ctx: common.Context) -> bool:
    return ctx.spec.redis.managed_sentinel


def build_scripts(ctx: common.Context) -> common.Manifest | None:
    if not ctx.spec.redis.managed:
        return None
    data = {"redis-start.sh": REDIS_START}
    if _sentinel(ctx):
        data["sentinel-start.sh"] = SENTINEL_START
        data["sentinel-lib.sh"] = SENTINEL_LIB
        data["redis-prestop.sh"] = REDIS_PRESTOP
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": common.metadata(ctx, ctx.names.redis_scripts, naming.REDIS),
        "data": data,
    }


def _env(ctx: common.Context) -> list[common.Manifest]:
    names = ctx.names
    password = {"secretKeyRef": {"name": names.secret, "key": common.PASSWORD_KEY}}
    env: list[common.Manifest] = [
        {"name": "REDIS_PASSWORD", "valueFrom": password},
        # redis-cli reads this, so probes never put the password on a command line.
        {"name": "REDISCLI_AUTH", "valueFrom": password},
        {"name": "STATEFULSET", "value": names.redis},
        {"name": "HEADLESS_SERVICE", "value": f"{names.redis_headless}.{ctx.namespace}.svc"},
        {"name": "APPENDONLY", "value": "yes" if ctx.spec.keeps_accounts else "no"},
    ]
    if _sentinel(ctx):
        env += [
            {"name": "SENTINEL_SERVICE", "value": f"{names.redis_sentinel}.{ctx.namespace}.svc"},
            {"name": "QUORUM", "value": str(ctx.spec.redis.replicas // 2 + 1)},
            {"name": "MASTER_SET", "value": specs.DEFAULT_MASTER_NAME},
            {
                "name": "SENTINEL_PEERS",
                "value": " ".join(
                    f"{names.redis}-{i}.{names.redis_headless}.{ctx.namespace}.svc"
                    for i in range(ctx.spec.redis.replicas)
                ),
            },
        ]
    return env


def _probe(command: str, *, initial: int, period: int) -> common.Manifest:
    return {
        "exec": {"command": ["sh", "-c", command]},
        "initialDelaySeconds": initial,
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }


def _containers(ctx: common.Context) -> list[common.Manifest]:
    r = ctx.spec.redis
    ping = "redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG"
    containers: list[common.Manifest] = [
        {
            "name": "redis",
            "image": r.image,
            "command": ["sh", "/scripts/redis-start.sh"],
            "ports": [{"name": "redis", "containerPort": common.REDIS_PORT, "protocol": "TCP"}],
            "env": _env(ctx),
            "resources": r.resources.as_dict(),
            "livenessProbe": _probe(ping, initial=10, period=10),
            "readinessProbe": _probe(ping, initial=5, period=5),
            "securityContext": common.restricted_container_security(),
            "volumeMounts": [
                {"name": "data", "mountPath": "/data"},
                {"name": "scripts", "mountPath": "/scripts", "readOnly": True},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
        }
    ]
    if _sentinel(ctx):
        containers[0]["lifecycle"] = {
            "preStop": {"exec": {"command": ["sh", "/scripts/redis-prestop.sh"]}}
        }
        sping = "env -u REDISCLI_AUTH redis-cli -p 26379 ping | grep -q PONG"
        containers.append(
            {
                "name": "sentinel",
                "image": r.image,
                "command": ["sh", "/scripts/sentinel-start.sh"],
                "ports": [
                    {"name": "sentinel", "containerPort": common.SENTINEL_PORT, "protocol": "TCP"}
                ],
                "env": _env(ctx),
                "resources": {
                    "requests": {"cpu": "50m", "memory": "32Mi"},
                    "limits": {"cpu": "200m", "memory": "64Mi"},
                },
                "livenessProbe": _probe(sping, initial=10, period=10),
                "readinessProbe": _probe(sping, initial=5, period=5),
                "securityContext": common.restricted_container_security(),
                "volumeMounts": [
                    {"name": "sentinel-conf", "mountPath": "/sentinel"},
                    {"name": "scripts", "mountPath": "/scripts", "readOnly": True},
                ],
            }
        )
    return containers


def build_statefulset(ctx: common.Context, *, checksum: str) -> common.Manifest | None:
    r, names = ctx.spec.redis, ctx.names
    if not r.managed:
        return None
    volumes: list[common.Manifest] = [
        {"name": "scripts", "configMap": {"name": names.redis_scripts, "defaultMode": 0o555}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}},
    ]
    if _sentinel(ctx):
        volumes.append({"name": "sentinel-conf", "emptyDir": {"sizeLimit": "1Mi"}})
    if not r.persistence.enabled:
        volumes.append({"name": "data", "emptyDir": {}})
    spec: common.Manifest = {
        "serviceName": names.redis_headless,
        "replicas": r.replicas,
        "podManagementPolicy": "Parallel",
        "selector": {"matchLabels": naming.selector(ctx.name, naming.REDIS)},
        "updateStrategy": {"type": "RollingUpdate"},
        "template": {
            "metadata": {
                "labels": naming.labels(ctx.name, naming.REDIS),
                "annotations": {naming.CHECKSUM_ANNOTATION: checksum},
            },
            "spec": {
                "automountServiceAccountToken": False,
                "terminationGracePeriodSeconds": common.TERMINATION_GRACE_SECONDS,
                "securityContext": common.restricted_pod_security(REDIS_UID),
                "topologySpreadConstraints": common.topology_spread(
                    naming.selector(ctx.name, naming.REDIS)
                ),
                **common.pod_placement(ctx),
                "containers": _containers(ctx),
                "volumes": volumes,
            },
        },
    }
    if r.persistence.enabled:
        claim_spec: common.Manifest = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": r.persistence.size}},
        }
        if r.persistence.storage_class_name:
            claim_spec["storageClassName"] = r.persistence.storage_class_name
        spec["volumeClaimTemplates"] = [
            {
                "metadata": {"name": "data", "labels": naming.labels(ctx.name, naming.REDIS)},
                "spec": claim_spec,
            }
        ]
        when_deleted = "Delete" if r.persistence.delete_claims_with_instance else "Retain"
        spec["persistentVolumeClaimRetentionPolicy"] = {
            "whenDeleted": when_deleted,
            "whenScaled": "Retain",
        }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": common.metadata(ctx, names.redis, naming.REDIS),
        "spec": spec,
    }


def _service(
    ctx: common.Context, name: str, ports: list[tuple[str, int]], *, headless: bool = False
) -> common.Manifest:
    spec: common.Manifest = {
        "type": "ClusterIP",
        "selector": naming.selector(ctx.name, naming.REDIS),
        "ports": [{"name": n, "port": p, "targetPort": n, "protocol": "TCP"} for n, p in ports],
    }
    if headless:
        # Stable per-pod DNS for replication, published before pods are ready
        # so replicas can find the master while starting.
        spec["clusterIP"] = "None"
        spec["publishNotReadyAddresses"] = True
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": common.metadata(ctx, name, naming.REDIS),
        "spec": spec,
    }


def build_services(ctx: common.Context) -> list[common.Manifest]:
    if not ctx.spec.redis.managed:
        return []
    names = ctx.names
    redis_port = ("redis", common.REDIS_PORT)
    sentinel_port = ("sentinel", common.SENTINEL_PORT)
    if _sentinel(ctx):
        return [
            _service(ctx, names.redis_headless, [redis_port, sentinel_port], headless=True),
            _service(ctx, names.redis_sentinel, [sentinel_port]),
        ]
    return [
        _service(ctx, names.redis_headless, [redis_port], headless=True),
        _service(ctx, names.redis, [redis_port]),
    ]


def build_pdb(ctx: common.Context) -> common.Manifest | None:
    if not (ctx.spec.redis.managed and _sentinel(ctx)):
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": common.metadata(ctx, ctx.names.redis, naming.REDIS),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": naming.selector(ctx.name, naming.REDIS)},
        },
    }


def build_network_policy(ctx: common.Context) -> common.Manifest | None:
    """Redis accepts connections only from this instance's backend (and its own pods)."""
    if not ctx.spec.redis.managed:
        return None
    ports: list[common.Manifest] = [{"protocol": "TCP", "port": common.REDIS_PORT}]
    if _sentinel(ctx):
        ports.append({"protocol": "TCP", "port": common.SENTINEL_PORT})
    peers: list[common.Manifest] = [
        {"podSelector": {"matchLabels": naming.selector(ctx.name, naming.BACKEND)}}
    ]
    if _sentinel(ctx):
        peers.append({"podSelector": {"matchLabels": naming.selector(ctx.name, naming.REDIS)}})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": common.metadata(ctx, ctx.names.redis, naming.REDIS),
        "spec": {
            "podSelector": {"matchLabels": naming.selector(ctx.name, naming.REDIS)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": peers, "ports": ports}],
        },
    }
