//go:build tools

// Package tools pins the Kubernetes control plane programs the local stack builds (local_stack/controlplane/build.py).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
