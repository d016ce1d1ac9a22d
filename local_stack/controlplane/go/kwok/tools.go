//go:build tools

// Package tools pins the kwok controller the local stack builds (local_stack/controlplane/build.py).
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
