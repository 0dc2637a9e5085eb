//go:build tools

// Package tools pins the Prometheus Operator's commands this wrapper module builds. The
// operator's own go.mod replaces its nested API and client modules with local paths, so
// it cannot be built with `go install`; the wrapper requires the three modules as served.
package tools

import (
	_ "github.com/prometheus-operator/prometheus-operator/cmd/operator"
	_ "github.com/prometheus-operator/prometheus-operator/cmd/prometheus-config-reloader"
)
