package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Target keeps backups in a bucket of any S3-compatible object store, through minio-go.
type S3Target struct {
	client *minio.Client
	bucket string
	prefix string // "" or ending in "/"
	name   string
}

// NewS3Target connects to the configured bucket. The credentials are read from the environment
// variables the configuration names; an endpoint given as http://host is reached without TLS.
func NewS3Target(c TargetConfig, getenv func(string) string) (*S3Target, error) {
	access, secret := getenv(c.AccessKeyEnv), getenv(c.SecretKeyEnv)
	if access == "" || secret == "" {
		return nil, fmt.Errorf("backup target s3://%s: set the environment variables %s and %s (the access key and secret key)", c.Bucket, c.AccessKeyEnv, c.SecretKeyEnv)
	}
	endpoint, secure := c.Endpoint, true
	if u, err := url.Parse(c.Endpoint); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		endpoint, secure = u.Host, u.Scheme == "https"
	}
	client, err := minio.New(endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(access, secret, ""),
		Secure:       secure,
		Region:       c.Region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		return nil, fmt.Errorf("backup target s3://%s at %s: %w", c.Bucket, c.Endpoint, err)
	}
	prefix := strings.Trim(c.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &S3Target{client: client, bucket: c.Bucket, prefix: prefix, name: "s3://" + c.Bucket + "/" + prefix + " at " + c.Endpoint}, nil
}

func (s *S3Target) String() string { return s.name }

func (s *S3Target) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	_, err := s.client.PutObject(ctx, s.bucket, s.prefix+name, r, size, minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return fmt.Errorf("put %s on %s: %w", name, s, err)
	}
	return nil
}

func (s *S3Target) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	obj, err := s.client.GetObject(ctx, s.bucket, s.prefix+name, minio.GetObjectOptions{})
	if err == nil {
		// GetObject is lazy: Stat makes the request, so a missing object is reported here.
		if _, err = obj.Stat(); err != nil {
			obj.Close()
		}
	}
	if err != nil {
		if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
			err = errors.Join(ErrNotExist, err)
		}
		return nil, fmt.Errorf("get %s from %s: %w", name, s, err)
	}
	return obj, nil
}

func (s *S3Target) List(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("list %s: %w", s, obj.Err)
		}
		out = append(out, strings.TrimPrefix(obj.Key, s.prefix))
	}
	slices.Sort(out)
	return out, nil
}

func (s *S3Target) Delete(ctx context.Context, name string) error {
	if err := s.client.RemoveObject(ctx, s.bucket, s.prefix+name, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("delete %s from %s: %w", name, s, err)
	}
	return nil
}
