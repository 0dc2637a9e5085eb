//go:build tools

// Package tools pins the runc commands this wrapper module builds (github.com/opencontainers/runc v1.4.4).
package tools

import (
	_ "github.com/opencontainers/runc"
)
