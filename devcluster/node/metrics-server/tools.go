//go:build tools

// Package tools pins the metrics-server commands this wrapper module builds (sigs.k8s.io/metrics-server v0.8.0).
package tools

import (
	_ "sigs.k8s.io/metrics-server/cmd/metrics-server"
)
