package export

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Files creates an export's files one after another: a file is complete when the next one is
// created, or when the Files is closed.
type Files interface {
	Create(name string) (io.Writer, error)
}

// FileInfo is one file of an export, as the manifest lists it.
type FileInfo struct {
	Name   string `json:"name"`
	Rows   int64  `json:"rows"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Lister is a writer that says which files it wrote and how many rows each holds.
type Lister interface {
	Files() []FileInfo
}

// SingleFile is a Files that writes the one file it is asked for to w, whatever its name: an
// export of one CSV, JSONL or XLSX file written straight to its destination.
type SingleFile struct {
	W       io.Writer
	created bool
}

// Create returns the writer the first time and an error after.
func (s *SingleFile) Create(name string) (io.Writer, error) {
	if s.created {
		return nil, errSingleFile
	}
	s.created = true
	return s.W, nil
}

var errSingleFile = &os.PathError{Op: "create", Path: "export", Err: os.ErrExist}

// NewWriter returns the writer for req's format over files, except XLSX, which
// internal/export/xlsx.NewWriter adds. name is the file's name for the single-file formats
// (without extension).
func NewWriter(files Files, req *Request, name string) (Writer, error) {
	loc := req.Location()
	base := strings.TrimSuffix(name, "."+string(req.Format))
	switch req.Format {
	case CSV:
		return NewCSV(files, base+".csv", req.Lang, loc)
	case JSONL:
		return NewJSONL(files, base+".jsonl", loc)
	case HTML:
		return NewHTML(files, req.Lang, loc), nil
	}
	return nil, fmt.Errorf("format %q: %w", req.Format, errUnknownFormat)
}

var errUnknownFormat = errors.New("unknown format")
