//go:build tools

// Package tools only exists so that `go mod tidy` keeps kube-apiserver's
// dependencies in go.mod/go.sum; the binary is built with
// `go build k8s.io/kubernetes/cmd/kube-apiserver` from this module.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
