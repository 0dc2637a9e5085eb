"""Expectations shared by the builder tests and the live-cluster tests."""

# (kind, name) of every child of an instance named "chat" with `spec: {}`, in apply order.
MINIMAL_CHILDREN = [
    ("Secret", "chat-redis-auth"),
    ("ConfigMap", "chat-config"),
    ("ConfigMap", "chat-redis-scripts"),
    ("Service", "chat-redis-headless"),
    ("Service", "chat-redis"),
    ("StatefulSet", "chat-redis"),
    ("NetworkPolicy", "chat-redis"),
    ("ServiceAccount", "chat-chat"),
    ("Service", "chat-backend"),
    ("Deployment", "chat-backend"),
    ("HorizontalPodAutoscaler", "chat-backend"),
    ("PodDisruptionBudget", "chat-backend"),
    ("Ingress", "chat"),
]
