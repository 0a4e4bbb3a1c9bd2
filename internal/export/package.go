package export

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"time"
)

// ManifestVersion names the manifest's format.
const ManifestVersion = "chatvault-export/1"

// Manifest describes a package: what was asked, by whom, when, and each file with its rows and
// SHA-256, so a recipient can check that nothing was altered or left out.
type Manifest struct {
	Version     string     `json:"version"`
	CreatedAt   time.Time  `json:"created_at"`
	OrgID       string     `json:"org_id"`
	RequestedBy string     `json:"requested_by"` // user id
	Username    string     `json:"username,omitempty"`
	Request     Request    `json:"request"`
	Snapshot    Snapshot   `json:"snapshot"`
	Rows        int64      `json:"rows"`
	Files       []FileInfo `json:"files"`
}

// Snapshot says what the export read.
type Snapshot struct {
	Conversations int `json:"conversations"`
}

// Package writes an export as a zip: its files, each hashed as it is written, then
// manifest.json. It is a Files.
type Package struct {
	zw    *zip.Writer
	files []FileInfo
	cur   *counter
}

// NewPackage returns a package written to w.
func NewPackage(w io.Writer) *Package { return &Package{zw: zip.NewWriter(w)} }

// counter passes writes on to w, counting and hashing them.
type counter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// Create starts the next file of the package.
func (p *Package) Create(name string) (io.Writer, error) {
	p.finishFile()
	w, err := p.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate})
	if err != nil {
		return nil, err
	}
	p.cur = &counter{w: w, h: sha256.New()}
	p.files = append(p.files, FileInfo{Name: name})
	return p.cur, nil
}

func (p *Package) finishFile() {
	if p.cur == nil {
		return
	}
	f := &p.files[len(p.files)-1]
	f.Bytes, f.SHA256 = p.cur.n, hex.EncodeToString(p.cur.h.Sum(nil))
	p.cur = nil
}

// Finish writes manifest.json, with every file's size and hash and the rows counted by the
// writer, and closes the zip. m.Files and m.Rows are filled here.
func (p *Package) Finish(m *Manifest, written []FileInfo) error {
	p.finishFile()
	rows := map[string]int64{}
	for _, f := range written {
		rows[f.Name] = f.Rows
	}
	m.Version, m.Files, m.Rows = ManifestVersion, p.files, 0
	for i := range m.Files {
		m.Files[i].Rows = rows[m.Files[i].Name]
		m.Rows += m.Files[i].Rows
	}
	w, err := p.zw.CreateHeader(&zip.FileHeader{Name: "manifest.json", Method: zip.Deflate})
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := p.zw.Close(); err != nil {
		return fmt.Errorf("close package: %w", err)
	}
	return nil
}
