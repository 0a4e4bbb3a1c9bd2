//go:build !unix

package migrate

// inUse cannot tell on this platform; the caller's warning stands.
func inUse(path string) (bool, error) { return false, nil }
