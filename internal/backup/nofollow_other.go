//go:build !unix

package backup

// noFollow: elsewhere the private temporary directory is what keeps links out.
const noFollow = 0
