"""Builders tested as data: exact golden output per spec, plus the contracts every child keeps.

Regenerate the golden files after an intended change with
``ASOCIAL_UPDATE_GOLDEN=1 pytest tests/operator/test_manifests.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from asocial_operator import manifests, naming
from asocial_operator import spec as specs
from asocial_operator.manifests import backend, config, edge, monitoring, redis
from tests.operator.expected import MINIMAL_CHILDREN

GOLDEN = Path(__file__).parent / "golden"
PASSWORD = "s3cr3t-test-password"

CASES: dict[str, dict[str, Any]] = {
    "minimal": {},
    "production": {
        "backend": {"image": "chat:1.2.3", "allowedOrigins": ["https://chat.example.com"]},
        "redis": {"replicas": 3, "persistence": {"enabled": True, "storageClassName": "ssd"}},
        "auth": {
            "mode": "firebase",
            "required": True,
            "firebase": {
                "projectId": "asocial-prod",
                "serviceAccountSecretRef": {"name": "firebase-sa"},
            },
        },
        "ingress": {
            "host": "chat.example.com",
            "tls": {"enabled": True, "clusterIssuer": "letsencrypt-prod"},
        },
        "monitoring": {"serviceMonitor": True},
        # Moving from the Ingress to the platform team's Gateway: both at once.
        "gateway": {
            "parentRefs": [{"name": "edge", "namespace": "infra"}],
            "hostnames": ["chat.example.com"],
        },
    },
    "external": {
        "redis": {
            "mode": "external",
            "sentinel": {"hosts": ["s1:26379", "s2:26379"], "masterName": "chat"},
            "passwordSecretRef": {"name": "redis-ext", "key": "pw"},
        },
        "auth": {"mode": "jwt", "jwt": {"jwksUrl": "https://id.example.com/jwks", "audience": "c"}},
        "autoscaling": {"enabled": False},
        "backend": {"replicas": 2},
        "ingress": {"enabled": False},
        "frontend": {"image": "web:1"},
    },
}


def context(raw: dict[str, Any], *, password: str | None = PASSWORD) -> manifests.Context:
    s = specs.parse(raw)
    return manifests.Context(
        namespace="team", name="chat", uid="uid-1", spec=s, redis_password=password
    )


def build(raw: dict[str, Any]) -> list[dict[str, Any]]:
    ctx = context(raw, password=PASSWORD if specs.parse(raw).redis.managed else None)
    return manifests.build_all(ctx, service_monitor_crd=True, route_crd=True)


def by_kind(children: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for child in children:
        if child["kind"] == kind and child["metadata"]["name"] == name:
            return child
    raise AssertionError(f"no {kind} {name}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    built = build(CASES[case])
    path = GOLDEN / f"{case}.json"
    if os.environ.get("ASOCIAL_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(built, indent=2, sort_keys=True) + "\n")
    assert built == json.loads(path.read_text())


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_child_is_labelled_and_owned(case: str) -> None:
    for child in build(CASES[case]):
        meta = child["metadata"]
        assert meta["namespace"] == "team"
        labels = meta["labels"]
        assert labels[naming.LABEL_INSTANCE] == "chat"
        assert labels[naming.LABEL_MANAGED_BY] == "asocial-operator"
        assert labels[naming.LABEL_PART_OF] == "asocial"
        assert labels[naming.LABEL_NAME] == "asocial"
        assert labels[naming.LABEL_COMPONENT]
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "asocial.io/v1alpha1",
                "kind": "AsocialInstance",
                "name": "chat",
                "uid": "uid-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


@pytest.mark.parametrize("case", sorted(CASES))
def test_password_only_in_the_secret(case: str) -> None:
    for child in build(CASES[case]):
        if child["kind"] != "Secret":
            assert PASSWORD not in json.dumps(child)


@pytest.mark.parametrize("case", sorted(CASES))
def test_pods_are_restricted(case: str) -> None:
    for child in build(CASES[case]):
        if child["kind"] not in ("Deployment", "StatefulSet"):
            continue
        pod = child["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert container["resources"]["requests"]
            assert container["resources"]["limits"]


def test_minimal_children() -> None:
    kinds = [(c["kind"], c["metadata"]["name"]) for c in build({})]
    assert kinds == MINIMAL_CHILDREN


def test_config_map_exact() -> None:
    assert config.config_data(context({})) == {
        "ASOCIAL_REDIS_URL": "redis://chat-redis.team.svc:6379/0",
        "ASOCIAL_AUTH_MODE": "anonymous",
        "ASOCIAL_AUTH_REQUIRED": "false",
        "ASOCIAL_RATE_LIMIT_PER_MINUTE": "100",
        "ASOCIAL_CLIENT_RATE_LIMIT_PER_MINUTE": "100",
        "ASOCIAL_MAX_MESSAGE_SIZE": "4096",
        "ASOCIAL_MESSAGE_FADE_SECONDS": "5",
        "ASOCIAL_LOG_LEVEL": "INFO",
        "ASOCIAL_LOG_FORMAT": "json",
        "ASOCIAL_SHUTDOWN_GRACE_SECONDS": "25",
        # the default spec has an Ingress, whose controller pods are these proxies
        "ASOCIAL_TRUSTED_PROXIES": "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7",
    }
    without_ingress = config.config_data(context({"ingress": {"enabled": False}}))
    assert "ASOCIAL_TRUSTED_PROXIES" not in without_ingress
    behind_a_gateway = config.config_data(
        context({"ingress": {"enabled": False}, "gateway": {"parentRefs": [{"name": "edge"}]}})
    )
    assert behind_a_gateway["ASOCIAL_TRUSTED_PROXIES"].startswith("10.0.0.0/8,")


@pytest.mark.parametrize(
    ("raw", "url"),
    [
        (
            {"redis": {"replicas": 3}},
            "redis+sentinel://chat-redis-sentinel.team.svc:26379/mymaster/0",
        ),
        ({"redis": {"mode": "external", "url": "rediss://r:6380/1"}}, "rediss://r:6380/1"),
        (CASES["external"], "redis+sentinel://s1:26379,s2:26379/chat/0"),
    ],
)
def test_redis_url(raw: dict[str, Any], url: str) -> None:
    assert config.redis_url(context(raw)) == url


def test_secret_is_the_password() -> None:
    secret = config.build_secret(context({}))
    assert secret is not None
    assert secret["data"] == {"redis-password": "czNjcjN0LXRlc3QtcGFzc3dvcmQ="}
    assert config.build_secret(context(CASES["external"], password=None)) is None


def test_hpa_exact() -> None:
    hpa = backend.build_hpa(context({}))
    assert hpa is not None
    assert hpa["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "chat-backend"},
        "minReplicas": 3,
        "maxReplicas": 10,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 70},
                },
            },
            {
                "type": "Resource",
                "resource": {
                    "name": "memory",
                    "target": {"type": "Utilization", "averageUtilization": 80},
                },
            },
        ],
        "behavior": {
            "scaleDown": {
                "stabilizationWindowSeconds": 300,
                "policies": [{"type": "Percent", "value": 50, "periodSeconds": 60}],
            },
            "scaleUp": {
                "stabilizationWindowSeconds": 0,
                "policies": [{"type": "Percent", "value": 100, "periodSeconds": 30}],
            },
        },
    }
    assert backend.build_hpa(context({"autoscaling": {"enabled": False}})) is None


def test_deployment_replicas_only_without_hpa() -> None:
    with_hpa = backend.build_deployment(context({}), checksum="x")
    assert "replicas" not in with_hpa["spec"]
    without = backend.build_deployment(
        context({"autoscaling": {"enabled": False}, "backend": {"replicas": 4}}), checksum="x"
    )
    assert without["spec"]["replicas"] == 4


def test_deployment_shape() -> None:
    dep = backend.build_deployment(context({}), checksum="abc")
    spec = dep["spec"]
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    pod = spec["template"]["spec"]
    assert spec["template"]["metadata"]["annotations"][naming.CHECKSUM_ANNOTATION] == "abc"
    assert pod["terminationGracePeriodSeconds"] == 30
    assert len(pod["topologySpreadConstraints"]) == 2
    (chat,) = pod["containers"]
    assert chat["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert chat["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert chat["lifecycle"]["preStop"] == {"exec": {"command": ["sleep", "5"]}}
    assert chat["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "1", "memory": "256Mi"},
    }
    assert chat["env"] == [
        {
            "name": "ASOCIAL_REDIS_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "chat-redis-auth", "key": "redis-password"}},
        }
    ]


def test_checksum_follows_config_only() -> None:
    base = manifests.backend_checksum(context({}))
    assert manifests.backend_checksum(context({"backend": {"image": "other:2"}})) == base
    assert manifests.backend_checksum(context({"autoscaling": {"enabled": False}})) == base
    assert manifests.backend_checksum(context({"backend": {"logLevel": "DEBUG"}})) != base
    assert manifests.backend_checksum(context({}, password="rotated")) != base


def test_ingress_keeps_operational_endpoints_private() -> None:
    ing = edge.build_ingress(context(CASES["production"]))
    assert ing is not None
    routes = ing["spec"]["rules"][0]["http"]["paths"]
    for private in ("/metrics", "/ready", "/health"):
        for route in routes:
            matches = (
                private == route["path"]
                if route["pathType"] == "Exact"
                else private == route["path"] or private.startswith(route["path"].rstrip("/") + "/")
            )
            assert not matches, f"{private} is routed publicly by {route}"


@pytest.mark.parametrize(
    ("class_name", "tls", "expected"),
    [
        (
            "nginx",
            False,
            {
                "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
                "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
                "nginx.ingress.kubernetes.io/proxy-http-version": "1.1",
                "nginx.ingress.kubernetes.io/limit-rpm": "100",
            },
        ),
        ("traefik", False, {}),
        (
            "traefik",
            True,
            {
                "traefik.ingress.kubernetes.io/router.entrypoints": "websecure",
                "traefik.ingress.kubernetes.io/router.tls": "true",
                "cert-manager.io/cluster-issuer": "ca",
            },
        ),
        ("haproxy", False, {}),
        ("haproxy", True, {"cert-manager.io/cluster-issuer": "ca"}),
    ],
)
def test_ingress_annotations_are_the_classs_own(
    class_name: str, tls: bool, expected: dict[str, str]
) -> None:
    ingress: dict[str, object] = {"className": class_name, "host": "chat.example.com"}
    if tls:
        ingress["tls"] = {"enabled": True, "clusterIssuer": "ca"}
    ing = edge.build_ingress(context({"ingress": ingress}))
    assert ing is not None
    assert ing["metadata"].get("annotations", {}) == expected
    assert ing["spec"]["ingressClassName"] == class_name


def test_a_namespaced_issuer_gets_its_own_annotation() -> None:
    tls = {"enabled": True, "issuer": "team-ca"}
    ingress = {"className": "other", "host": "chat.example.com", "tls": tls}
    ing = edge.build_ingress(context({"ingress": ingress}))
    assert ing is not None
    assert ing["metadata"]["annotations"] == {"cert-manager.io/issuer": "team-ca"}
    assert ing["spec"]["tls"] == [{"hosts": ["chat.example.com"], "secretName": "chat-tls"}]


def test_ingress_exact() -> None:
    ing = edge.build_ingress(context(CASES["production"]))
    assert ing is not None
    assert ing["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/proxy-read-timeout": "3600",
        "nginx.ingress.kubernetes.io/proxy-send-timeout": "3600",
        "nginx.ingress.kubernetes.io/proxy-http-version": "1.1",
        "nginx.ingress.kubernetes.io/limit-rpm": "100",
        "nginx.ingress.kubernetes.io/ssl-redirect": "true",
        "cert-manager.io/cluster-issuer": "letsencrypt-prod",
    }
    assert ing["spec"] == {
        "ingressClassName": "nginx",
        "rules": [
            {
                "host": "chat.example.com",
                "http": {
                    "paths": [
                        {
                            "path": "/api",
                            "pathType": "Prefix",
                            "backend": {
                                "service": {"name": "chat-backend", "port": {"number": 8080}}
                            },
                        },
                        {
                            "path": "/",
                            "pathType": "Exact",
                            "backend": {
                                "service": {"name": "chat-backend", "port": {"number": 8080}}
                            },
                        },
                        {
                            "path": "/static",
                            "pathType": "Prefix",
                            "backend": {
                                "service": {"name": "chat-backend", "port": {"number": 8080}}
                            },
                        },
                    ]
                },
            }
        ],
        "tls": [{"hosts": ["chat.example.com"], "secretName": "chat-tls"}],
    }


def test_ingress_routes_root_to_frontend() -> None:
    ing = edge.build_ingress(context({"frontend": {"image": "web:1"}}))
    assert ing is not None
    paths = ing["spec"]["rules"][0]["http"]["paths"]
    assert [p["backend"]["service"]["name"] for p in paths] == ["chat-backend", "chat-frontend"]


def test_network_policy_exact() -> None:
    np = redis.build_network_policy(context({}))
    assert np is not None
    assert np["spec"] == {
        "podSelector": {"matchLabels": naming.selector("chat", "redis")},
        "policyTypes": ["Ingress"],
        "ingress": [
            {
                "from": [{"podSelector": {"matchLabels": naming.selector("chat", "backend")}}],
                "ports": [{"protocol": "TCP", "port": 6379}],
            }
        ],
    }


def test_sentinel_redis() -> None:
    ctx = context(CASES["production"])
    sts = redis.build_statefulset(ctx, checksum="c")
    assert sts is not None
    assert sts["spec"]["replicas"] == 3
    containers = sts["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["redis", "sentinel"]
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "5Gi"}},
        "storageClassName": "ssd",
    }
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    env = {e["name"]: e.get("value") for e in containers[1]["env"]}
    assert env["QUORUM"] == "2"
    services = [s["metadata"]["name"] for s in redis.build_services(ctx)]
    assert services == ["chat-redis-headless", "chat-redis-sentinel"]
    assert redis.build_pdb(ctx) is not None


def test_service_monitor_needs_crd() -> None:
    ctx = context({"monitoring": {"serviceMonitor": True}})
    assert edge.build_service_monitor(ctx, crd_installed=False) is None
    assert edge.build_service_monitor(ctx, crd_installed=True) is not None
    assert edge.build_service_monitor(context({}), crd_installed=True) is None


def test_external_mode_has_no_redis_children() -> None:
    kinds = {(c["kind"], c["metadata"]["name"]) for c in build(CASES["external"])}
    assert not any(name.startswith("chat-redis") for _, name in kinds)
    dep = by_kind(build(CASES["external"]), "Deployment", "chat-backend")
    env = dep["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env[0]["valueFrom"]["secretKeyRef"] == {"name": "redis-ext", "key": "pw"}


def test_firebase_credentials_are_mounted_not_copied() -> None:
    children = build(CASES["production"])
    dep = by_kind(children, "Deployment", "chat-backend")
    pod = dep["spec"]["template"]["spec"]
    assert {"name": "firebase", "secret": {"secretName": "firebase-sa", "defaultMode": 0o440}} in (
        pod["volumes"]
    )
    cm = by_kind(children, "ConfigMap", "chat-config")
    assert cm["data"]["ASOCIAL_FIREBASE_CREDENTIALS_FILE"] == (
        "/var/run/secrets/asocial/firebase/service-account.json"
    )


def test_every_pod_template_takes_the_scheduling_and_pull_secrets() -> None:
    raw: dict[str, Any] = {
        "redis": {"replicas": 3},
        "frontend": {"image": "web:1"},
        "scheduling": {
            "nodeSelector": {"pool": "chat"},
            "tolerations": [{"key": "pool", "operator": "Exists", "effect": "NoSchedule"}],
        },
        "imagePullSecrets": [{"name": "regcred"}],
    }
    templates = [
        c["spec"]["template"]["spec"]
        for c in build(raw)
        if c["kind"] in ("Deployment", "StatefulSet")
    ]
    assert len(templates) == 3  # backend, frontend, Redis
    for pod in templates:
        assert pod["nodeSelector"] == {"pool": "chat"}
        assert pod["tolerations"] == [{"key": "pool", "operator": "Exists", "effect": "NoSchedule"}]
        assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    plain = [c for c in build({}) if c["kind"] in ("Deployment", "StatefulSet")]
    for child in plain:
        pod = child["spec"]["template"]["spec"]
        assert not {"nodeSelector", "tolerations", "imagePullSecrets"} & pod.keys()


def test_hpa_scale_down_window_follows_the_spec() -> None:
    hpa = by_kind(
        build({"autoscaling": {"scaleDownStabilizationSeconds": 20}}),
        "HorizontalPodAutoscaler",
        "chat-backend",
    )
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 20
    default = by_kind(build({}), "HorizontalPodAutoscaler", "chat-backend")
    assert default["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300


def test_a_zero_memory_target_scales_on_cpu_alone() -> None:
    hpa = by_kind(
        build({"autoscaling": {"targetMemoryUtilizationPercentage": 0}}),
        "HorizontalPodAutoscaler",
        "chat-backend",
    )
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    default = by_kind(build({}), "HorizontalPodAutoscaler", "chat-backend")
    assert [m["resource"]["name"] for m in default["spec"]["metrics"]] == ["cpu", "memory"]


@pytest.mark.parametrize(
    ("auth", "appendonly"),
    [
        ({}, "no"),
        ({"mode": "jwt", "jwt": {"secretRef": {"name": "s", "key": "k"}}}, "yes"),
        ({"mode": "firebase", "firebase": {"projectId": "p"}}, "yes"),
    ],
)
def test_instances_that_keep_accounts_log_every_redis_write(
    auth: dict[str, Any], appendonly: str, tmp_path: Path
) -> None:
    """The start script, run by sh with a stand-in redis-server that prints its arguments."""
    ctx = context({"auth": auth})
    sts = redis.build_statefulset(ctx, checksum="c")
    assert sts is not None
    env = {
        e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["APPENDONLY"] == appendonly
    scripts = redis.build_scripts(ctx)
    assert scripts is not None
    (tmp_path / "redis-start.sh").write_text(scripts["data"]["redis-start.sh"])
    fake = tmp_path / "bin" / "redis-server"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o755)
    started = subprocess.run(
        ["sh", str(tmp_path / "redis-start.sh")],
        env={
            "PATH": f"{fake.parent}:/usr/bin:/bin",
            "APPENDONLY": env["APPENDONLY"],
            "HEADLESS_SERVICE": "h",
            "REDIS_PASSWORD": "pw",
        },
        capture_output=True,
        text=True,
        check=True,
    )
    args = started.stdout.split()
    assert ("--appendonly" in args) == (appendonly == "yes")
    if appendonly == "yes":
        assert args[args.index("--appendonly") + 1] == "yes"
        assert args[args.index("--appendfsync") + 1] == "everysec"


GATEWAY = {
    "parentRefs": [
        {"name": "edge", "namespace": "infra", "sectionName": "https"},
        {"name": "internal"},
    ],
    "hostnames": ["chat.example.com"],
}


def test_route_exact() -> None:
    route = edge.build_route(context({"gateway": GATEWAY}), crd_installed=True)
    backend = {"name": "chat-backend", "port": 8080}
    assert route == {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": "chat",
            "namespace": "team",
            "labels": {
                "app.kubernetes.io/name": "asocial",
                "app.kubernetes.io/instance": "chat",
                "app.kubernetes.io/component": "route",
                "app.kubernetes.io/managed-by": "asocial-operator",
                "app.kubernetes.io/part-of": "asocial",
            },
            "ownerReferences": [
                {
                    "apiVersion": "asocial.io/v1alpha1",
                    "kind": "AsocialInstance",
                    "name": "chat",
                    "uid": "uid-1",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "parentRefs": [
                {
                    "group": "gateway.networking.k8s.io",
                    "kind": "Gateway",
                    "name": "edge",
                    "namespace": "infra",
                    "sectionName": "https",
                },
                {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "internal"},
            ],
            "hostnames": ["chat.example.com"],
            "rules": [
                {
                    "matches": [
                        {"path": {"type": "PathPrefix", "value": "/api"}},
                        {"path": {"type": "Exact", "value": "/"}},
                        {"path": {"type": "PathPrefix", "value": "/static"}},
                    ],
                    "backendRefs": [backend],
                }
            ],
        },
    }


@pytest.mark.parametrize("frontend", [False, True])
def test_route_never_routes_private_paths(frontend: bool) -> None:
    raw: dict[str, Any] = {"gateway": GATEWAY}
    if frontend:
        raw["frontend"] = {"image": "example/frontend:1"}
    route = edge.build_route(context(raw), crd_installed=True)
    assert route is not None
    for private in ("/metrics", "/ready", "/health"):
        for rule in route["spec"]["rules"]:
            for match in rule["matches"]:
                path = match["path"]
                if path["type"] == "Exact":
                    assert path["value"] != private
                elif rule["backendRefs"][0]["name"] == "chat-backend":
                    assert not private.startswith(path["value"]), (private, path)


def test_route_only_when_asked_and_the_gateway_api_is_there() -> None:
    assert edge.build_route(context({}), crd_installed=True) is None
    assert edge.build_route(context({"gateway": GATEWAY}), crd_installed=False) is None
    kinds = [c["kind"] for c in manifests.build_all(context({"gateway": GATEWAY}))]
    assert "HTTPRoute" not in kinds  # the HTTPRoute CRD is absent
    both = build({"gateway": GATEWAY})
    assert {"Ingress", "HTTPRoute"} <= {c["kind"] for c in both}, "both, to move without downtime"


def test_prometheus_rule_needs_its_crd_and_reads_only_this_instances_series() -> None:
    ctx = context({"monitoring": {"prometheusRule": True}})
    assert monitoring.build_prometheus_rule(ctx, crd_installed=False) is None
    assert monitoring.build_prometheus_rule(context({}), crd_installed=True) is None
    rule = monitoring.build_prometheus_rule(ctx, crd_installed=True)
    assert rule is not None
    assert rule["metadata"]["name"] == "chat-alerts"
    assert rule["metadata"]["labels"][naming.LABEL_MANAGED_BY] == naming.FIELD_MANAGER
    (group,) = rule["spec"]["groups"]
    for alert in group["rules"]:
        expr = alert["expr"]
        # every series it reads is this instance's: its backend job, or its name
        reads_chat = 'namespace="team",job="chat-backend"' in expr
        reads_instance = 'instance_namespace="team",instance_name="chat"' in expr
        assert reads_chat or reads_instance, expr
    built = {c["kind"] for c in manifests.build_all(ctx, prometheus_rule_crd=True)}
    assert "PrometheusRule" in built


def test_dashboard_config_map_is_labelled_for_grafanas_sidecar() -> None:
    assert monitoring.build_dashboard(context({})) is None
    cm = monitoring.build_dashboard(context({"monitoring": {"dashboard": True}}))
    assert cm is not None
    assert cm["metadata"]["name"] == "chat-dashboard"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    model = json.loads(cm["data"]["asocial-dashboard.json"])
    assert model["uid"] == "asocial-chat"
    assert model["panels"]


@pytest.mark.parametrize("key", ["serviceMonitor", "prometheusRule", "dashboard"])
def test_monitoring_switches_must_be_booleans(key: str) -> None:
    with pytest.raises(specs.SpecError, match=rf"spec\.monitoring\.{key} must be a bool"):
        specs.parse({"monitoring": {key: "yes"}})


def test_the_scrape_interval_is_a_prometheus_duration() -> None:
    ctx = context({"monitoring": {"serviceMonitor": True, "scrapeInterval": "5s"}})
    monitor = edge.build_service_monitor(ctx, crd_installed=True)
    assert monitor is not None
    assert monitor["spec"]["endpoints"][0]["interval"] == "5s"
    with pytest.raises(specs.SpecError, match="scrapeInterval must be a Prometheus duration"):
        specs.parse({"monitoring": {"scrapeInterval": "5 seconds"}})
