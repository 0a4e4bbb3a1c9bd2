package main

import (
	"bytes"
	"encoding/base64"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/postgres/pgtest"
)

// An org-wide search for a secret (a password, say) is written to the audit log, and the auditor
// reads the query back through the API; but the query is nowhere on disk in the clear: not in
// the database, its WAL, or the keys. Through the real binary, on both stores.
func TestOrgSearchQueryNeverOnDiskInTheClear(t *testing.T) {
	bin := chatvaultBinary(t)
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			dir := t.TempDir()
			args, env := []string{"--data", dir, "--retention-interval", "0"}, []string(nil)
			// The files to search: the data directory (SQLite's database, WAL and keys), and for
			// PostgreSQL the cluster's data directory (tables and WAL) too.
			roots := []string{dir}
			if engine == "postgres" {
				cluster := pgtest.Server(t)
				if cluster.DataDir() == "" {
					t.Skip("PostgreSQL is an external server: its files are out of reach")
				}
				args = append(args, "--store", cluster.NewDatabase(t))
				env = []string{"CHATVAULT_KEK=" + base64.StdEncoding.EncodeToString(keyring.Generate())}
				roots = append(roots, cluster.DataDir())
			}
			p := spawnServer(t, bin, args, env)
			p.waitListening(t)
			admin, convID := setup(t, p, dir)
			login := func(name string, roles ...string) string {
				pw := name + "'s password, long enough"
				p.must("POST", "/api/v1/admin/users", admin, map[string]any{"username": name, "password": pw, "roles": roles}, nil, http.StatusCreated)
				var l struct {
					Token string `json:"token"`
				}
				p.must("POST", "/api/v1/auth/login", "", map[string]string{"username": name, "password": pw, "device_name": "test"}, &l, http.StatusOK)
				return l.Token
			}
			officer, auditor := login("officer", "compliance_officer"), login("auditor", "auditor")
			if status, _, _, err := p.send(admin, convID, "m1", "the vault password is in the usual place"); err != nil || status != http.StatusCreated {
				t.Fatalf("send = %d, %v; want 201", status, err)
			}

			const secret = "Tr0ub4dor-and-3-unusual-words-7f3a"
			var page struct {
				Hits []any `json:"hits"`
			}
			p.must("GET", "/api/v1/search?scope=org&q="+url.QueryEscape(secret), officer, nil, &page, http.StatusOK)

			var log struct {
				Entries []struct {
					ActorID string         `json:"actor_id"`
					Action  string         `json:"action"`
					Details map[string]any `json:"details"`
				} `json:"entries"`
			}
			p.must("GET", "/api/v1/admin/audit", auditor, nil, &log, http.StatusOK)
			found := false
			for _, e := range log.Entries {
				found = found || e.Action == "search_org" && e.Details["query"] == secret
			}
			if !found {
				t.Fatalf("GET /api/v1/admin/audit = %+v; want the org-wide search for %q", log.Entries, secret)
			}

			for _, root := range roots {
				err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
					if err != nil || d.IsDir() || !d.Type().IsRegular() {
						return err
					}
					b, err := os.ReadFile(path)
					if err != nil {
						return err
					}
					if bytes.Contains(b, []byte(secret)) {
						t.Errorf("%s holds the searched-for secret %q in the clear", path, secret)
					}
					return nil
				})
				if err != nil {
					t.Fatalf("read %s: %v", root, err)
				}
			}
		})
	}
}
