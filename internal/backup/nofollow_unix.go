//go:build unix

package backup

import "syscall"

// noFollow makes an open fail on a symbolic link instead of writing where it points.
const noFollow = syscall.O_NOFOLLOW
