"""Names, labels and API coordinates of the custom resource and its children.

Pure constants and string functions; no I/O. Every child name and label
comes from here so that builders, the reconciler and tests agree.
"""

from __future__ import annotations

import dataclasses

GROUP = "asocial.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "AsocialInstance"
PLURAL = "asocialinstances"
CRD_NAME = f"{PLURAL}.{GROUP}"

FIELD_MANAGER = "asocial-operator"
# Sets only the first replica count of an autoscaled Deployment, so the main
# manager never owns spec.replicas and never fights the HPA over it.
BOOTSTRAP_FIELD_MANAGER = "asocial-operator-bootstrap"
APP_NAME = "asocial"
PART_OF = "asocial"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_PART_OF = "app.kubernetes.io/part-of"

CHECKSUM_ANNOTATION = "asocial.io/config-checksum"

# Component values of app.kubernetes.io/component.
BACKEND = "backend"
FRONTEND = "frontend"
REDIS = "redis"
CONFIG = "config"
INGRESS = "ingress"
ROUTE = "route"
MONITORING = "monitoring"


def labels(instance: str, component: str) -> dict[str, str]:
    """The full label set every child of ``instance`` carries."""
    return {
        LABEL_NAME: APP_NAME,
        LABEL_INSTANCE: instance,
        LABEL_COMPONENT: component,
        LABEL_MANAGED_BY: FIELD_MANAGER,
        LABEL_PART_OF: PART_OF,
    }


def selector(instance: str, component: str) -> dict[str, str]:
    """The stable subset of labels used in (immutable) pod selectors."""
    return {LABEL_NAME: APP_NAME, LABEL_INSTANCE: instance, LABEL_COMPONENT: component}


@dataclasses.dataclass(frozen=True)
class Names:
    """Child object names of one instance; all are DNS-1035 labels when the instance is."""

    instance: str

    @property
    def config(self) -> str:
        return f"{self.instance}-config"

    @property
    def secret(self) -> str:
        return f"{self.instance}-redis-auth"

    @property
    def service_account(self) -> str:
        return f"{self.instance}-chat"

    @property
    def backend(self) -> str:
        return f"{self.instance}-backend"

    @property
    def frontend(self) -> str:
        return f"{self.instance}-frontend"

    @property
    def redis(self) -> str:
        return f"{self.instance}-redis"

    @property
    def redis_headless(self) -> str:
        return f"{self.instance}-redis-headless"

    @property
    def redis_sentinel(self) -> str:
        return f"{self.instance}-redis-sentinel"

    @property
    def redis_scripts(self) -> str:
        return f"{self.instance}-redis-scripts"

    @property
    def ingress(self) -> str:
        return self.instance

    @property
    def route(self) -> str:
        return self.instance

    @property
    def alerts(self) -> str:
        return f"{self.instance}-alerts"

    @property
    def dashboard(self) -> str:
        return f"{self.instance}-dashboard"

    @property
    def tls_secret(self) -> str:
        return f"{self.instance}-tls"
