package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"filippo.io/age"
	"github.com/chatvault/chatvault/internal/account"
)

// exportCLI runs the chatvault binary's export command over dataDir.
func exportCLI(t *testing.T, bin, dataDir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"export", "--data", dataDir, "--progress", "lines"}, args...)...)
	cmd.Env = withoutChatvaultEnv(os.Environ())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The export command on the real binary: it refuses while a server holds the data directory;
// once the server is stopped it writes a zip package whose manifest lists each file with its
// rows and SHA-256, a single CSV for Excel, and an age-encrypted JSONL that decrypts with the
// recipient's identity; bad input is refused naming the flag.
func TestExportCommand(t *testing.T) {
	bin := chatvaultBinary(t)
	dataDir := t.TempDir()
	srv := startServer(t, bin, dataDir)
	token, convID := setup(t, srv, dataDir)
	texts := []string{"你好，世界 🌏", "=HYPERLINK(\"http://x\")", "a, \"quoted\"\nline"}
	for i, text := range texts {
		if status, _, body, err := srv.send(token, convID, fmt.Sprintf("c%d", i), text); err != nil || status != 201 {
			t.Fatalf("send = %d, %v, %s", status, err, body)
		}
	}
	out, err := exportCLI(t, bin, dataDir, "--as", "admin", "--format", "csv", "--out", filepath.Join(t.TempDir(), "x.csv"))
	if err == nil || !strings.Contains(out, "POST /api/v1/exports") {
		t.Fatalf("export while serving = %v, %s; want a refusal that points to the API", err, out)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-srv.exited

	outDir := t.TempDir()
	pkgPath := filepath.Join(outDir, "export.zip")
	out, err = exportCLI(t, bin, dataDir, "--as", "admin", "--format", "csv", "--lang", "zh-CN", "--tz", "Asia/Shanghai",
		"--from", "2000-01-01", "--out", pkgPath)
	if err != nil {
		t.Fatalf("export = %v\n%s", err, out)
	}
	zr, err := zip.OpenReader(pkgPath)
	if err != nil {
		t.Fatalf("open package: %v", err)
	}
	defer zr.Close()
	contents := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		contents[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	var m struct {
		Version     string `json:"version"`
		RequestedBy string `json:"requested_by"`
		Username    string `json:"username"`
		Rows        int64  `json:"rows"`
		Request     struct {
			Format   string `json:"format"`
			TimeZone string `json:"time_zone"`
			From     string `json:"from"`
		} `json:"request"`
		Files []struct {
			Name   string `json:"name"`
			Rows   int64  `json:"rows"`
			Bytes  int64  `json:"bytes"`
			SHA256 string `json:"sha256"`
		} `json:"files"`
	}
	if err := json.Unmarshal(contents["manifest.json"], &m); err != nil {
		t.Fatalf("manifest.json: %v\n%s", err, contents["manifest.json"])
	}
	if m.Version != "chatvault-export/1" || m.Username != "admin" || m.Rows != 3 || m.Request.Format != "csv" ||
		m.Request.TimeZone != "Asia/Shanghai" || !strings.HasPrefix(m.Request.From, "1999-12-31T16:00:00") || len(m.Files) != 1 {
		t.Fatalf("manifest = %+v; want version chatvault-export/1, admin, 3 rows, the request, one file", m)
	}
	f := m.Files[0]
	data := contents[f.Name]
	sum := sha256.Sum256(data)
	if f.Name != "messages.csv" || f.Rows != 3 || f.Bytes != int64(len(data)) || f.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("manifest file %+v; the package holds %s with %d bytes, SHA-256 %x", f, f.Name, len(data), sum)
	}
	if !bytes.HasPrefix(data, []byte("\ufeff会话ID,")) || !bytes.Contains(data, []byte(`'=HYPERLINK(""http://x"")`)) {
		t.Errorf("messages.csv = %q; want a BOM, Chinese headings and the formula neutralised", data)
	}

	// One JSONL file, encrypted to an age recipient, with times in the org's zone (no --tz).
	if err := run(context.Background(), []string{"admin", "set-time-zone", "--org", account.DefaultOrgSlug, "--time-zone", "Asia/Shanghai", "--data", dataDir}, io.Discard, io.Discard); err != nil {
		t.Fatalf("set-time-zone: %v", err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	encPath := filepath.Join(outDir, "export.jsonl.age")
	if out, err := exportCLI(t, bin, dataDir, "--as", "admin", "--format", "jsonl", "--recipient", id.Recipient().String(), "--out", encPath); err != nil {
		t.Fatalf("export --recipient = %v\n%s", err, out)
	}
	ef, err := os.Open(encPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	plain, err := age.Decrypt(ef, id)
	if err != nil {
		t.Fatalf("age.Decrypt() = %v", err)
	}
	var got []string
	sc := bufio.NewScanner(plain)
	for sc.Scan() {
		var line struct {
			Type, Text string
			SentAt     string `json:"sent_at"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("JSONL line %q: %v", sc.Text(), err)
		}
		if line.Type == "message" {
			got = append(got, line.Text)
			if !strings.HasSuffix(line.SentAt, "+08:00") {
				t.Errorf("sent_at %q is not in the org's zone, Asia/Shanghai", line.SentAt)
			}
		}
	}
	if strings.Join(got, "|") != strings.Join(texts, "|") {
		t.Errorf("decrypted JSONL texts = %q; want %q", got, texts)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--format", "pdf", "--out", filepath.Join(outDir, "a.pdf")}, "--format"},
		{[]string{"--format", "csv", "--tz", "Mars/Base", "--out", filepath.Join(outDir, "a.csv")}, "--tz"},
		{[]string{"--format", "csv", "--from", "yesterday", "--out", filepath.Join(outDir, "a.csv")}, "--from"},
		{[]string{"--format", "csv", "--sender", "nobody", "--out", filepath.Join(outDir, "a.csv")}, "--sender"},
		{[]string{"--format", "csv", "--conversation", "01234567-89ab-7def-8123-456789abcdef", "--out", filepath.Join(outDir, "a.csv")}, "--conversation"},
		{[]string{"--format", "csv", "--scope", "org", "--out", filepath.Join(outDir, "a.csv")}, "compliance_officer"},
		{[]string{"--format", "html", "--out", filepath.Join(outDir, "a.html")}, ".zip"},
		{[]string{"--format", "csv", "--out", pkgPath}, "exists"},
	} {
		out, err := exportCLI(t, bin, dataDir, append([]string{"--as", "admin"}, c.args...)...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("export %q = %v, %s; want an error mentioning %q", c.args, err, out, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(outDir, "a.csv")); err == nil {
		t.Errorf("a refused export left a.csv behind")
	}
}
