package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// Target is a place backups are kept: a directory or an S3 bucket. Names are slash-separated paths
// relative to the target's root.
type Target interface {
	// String names the target in logs and reports, without credentials.
	String() string
	// Put stores size bytes from r under name, replacing nothing half-written: the object appears
	// complete or not at all.
	Put(ctx context.Context, name string, r io.Reader, size int64) error
	// Get opens a stored object. ErrNotExist (wrapped) if there is none.
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	// List returns the names under prefix, recursively, sorted.
	List(ctx context.Context, prefix string) ([]string, error)
	// Delete removes an object; deleting one that is not there is not an error.
	Delete(ctx context.Context, name string) error
}

// ErrNotExist is returned (wrapped) by Target.Get for a missing object.
var ErrNotExist = os.ErrNotExist

// OpenTarget opens a configured target. getenv reads the credentials an s3 target names.
func OpenTarget(c TargetConfig, getenv func(string) string) (Target, error) {
	switch c.Type {
	case "dir":
		return NewDirTarget(c.Path)
	case "s3":
		return NewS3Target(c, getenv)
	}
	return nil, fmt.Errorf("unknown target type %q", c.Type)
}

// OpenTargets opens every configured target.
func OpenTargets(cs []TargetConfig, getenv func(string) string) ([]Target, error) {
	var out []Target
	var errs []error
	for _, c := range cs {
		t, err := OpenTarget(c, getenv)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, t)
	}
	return out, errors.Join(errs...)
}
