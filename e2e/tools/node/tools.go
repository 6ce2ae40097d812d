//go:build tools

// Package tools names the node programs this module builds (a container runtime for the
// real kubelet node), so `go mod tidy` keeps every module they need. It is a module of its
// own because containerd's dependencies must not move the control plane's versions.
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
