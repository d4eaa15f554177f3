//go:build tools

// Package tools pins helm's CLI package so `go mod tidy` keeps its whole dependency graph.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
