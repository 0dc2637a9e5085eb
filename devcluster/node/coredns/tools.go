//go:build tools

// Package tools pins the coredns commands this wrapper module builds (github.com/coredns/coredns v1.13.1).
package tools

import (
	_ "github.com/coredns/coredns"
)
