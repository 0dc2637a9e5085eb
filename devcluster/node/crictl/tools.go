//go:build tools

// Package tools pins the crictl commands this wrapper module builds (sigs.k8s.io/cri-tools v1.37.0).
package tools

import (
	_ "sigs.k8s.io/cri-tools/cmd/crictl"
)
