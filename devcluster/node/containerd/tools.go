//go:build tools

// Package tools pins the containerd commands this wrapper module builds (github.com/containerd/containerd/v2 v2.3.7).
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
