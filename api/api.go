// Package api holds the OpenAPI description of the public API
// (openapi.yaml), which the coordinator serves at /openapi.yaml and a test
// checks real answers against.
package api

import _ "embed"

//go:embed openapi.yaml
var spec []byte

// Spec returns the OpenAPI description of the public API.
func Spec() []byte { return spec }
