// Package api holds the HTTP contract, api/openapi.yaml, embedded so the server can serve the
// document it keeps to (GET /api/v1/openapi.yaml) and clients fetch the version they talk to.
package api

import _ "embed"

// OpenAPI is api/openapi.yaml as built into this binary.
//
//go:embed openapi.yaml
var OpenAPI []byte
