package chatvault_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The dependency rules of the layout, checked on what the packages really import (directly or
// through any other package): the domain (this package and the services under internal/) knows
// no SQL driver, no database/sql and no HTTP, and a store never reaches into the HTTP transport.

const module = "github.com/chatvault/chatvault"

// Packages that are not domain code, by role. Every other package of the module is held to the
// domain's rule, so a new service is covered without being listed here; a new adapter fails the
// test until it is listed.
var (
	// stores keep rows: they may use drivers and database/sql, never the transport.
	stores = []string{"internal/sqlite", "internal/postgres", "internal/sqlstore"}
	// adapters wire, serve, measure or copy: they may import anything.
	adapters = []string{"cmd/chatvault", "internal/http", "internal/wsloop", "internal/bench", "internal/migrate", "internal/postgres/pgtest", "internal/metrics"}
	// backup talks to S3 (an HTTP client), so only drivers and database/sql are kept out of it.
	backup = []string{"internal/backup"}
	// export/xlsx writes workbooks with excelize, which imports net/http for DetectContentType;
	// like backup it is held to "no driver, no database/sql".
	xlsxWriter = []string{"internal/export/xlsx"}
)

var (
	drivers  = []string{"database/sql", "modernc.org/sqlite/...", "github.com/jackc/pgx/...", "github.com/mattn/go-sqlite3/...", "github.com/lib/pq/..."}
	httpPkgs = []string{"net/http"}
	storePkg = []string{module + "/internal/sqlite/...", module + "/internal/postgres/...", module + "/internal/sqlstore/..."}
	httpPkg  = []string{module + "/internal/http/..."}
)

func TestImportRules(t *testing.T) {
	graph := moduleGraph(t)
	var domain []string
	for pkg := range graph {
		rel, ours := strings.CutPrefix(pkg, module+"/")
		if pkg == module {
			rel, ours = "", true
		}
		if !ours || slices.Contains(stores, rel) || slices.Contains(adapters, rel) || slices.Contains(backup, rel) || slices.Contains(xlsxWriter, rel) {
			continue
		}
		domain = append(domain, rel)
	}
	slices.Sort(domain)
	for _, required := range []string{"", "internal/account", "internal/chat", "internal/retention", "internal/search", "internal/hub",
		"internal/keyring", "internal/jobs"} {
		if !slices.Contains(domain, required) {
			t.Fatalf("domain packages = %q; want %q among them (was it moved or renamed? update this test)", domain, required)
		}
	}
	for _, rule := range []struct {
		name   string
		pkgs   []string
		forbid [][]string
	}{
		{"the domain imports no driver, no database/sql, no net/http and no store", domain, [][]string{drivers, httpPkgs, storePkg}},
		{"backup imports no driver and no database/sql", backup, [][]string{drivers}},
		{"export/xlsx imports no driver and no database/sql", xlsxWriter, [][]string{drivers}},
		{"a store does not import the HTTP transport", stores, [][]string{httpPkg}},
	} {
		forbidden := slices.Concat(rule.forbid...)
		for _, rel := range rule.pkgs {
			pkg := module
			if rel != "" {
				pkg += "/" + rel
			}
			if _, ok := graph[pkg]; !ok {
				continue // a listed package this tree does not have (yet)
			}
			if chain := importChain(graph, pkg, forbidden); chain != nil {
				t.Errorf("%s: %s imports %s through\n\t%s", rule.name, pkg, chain[len(chain)-1], strings.Join(chain, "\n\t→ "))
			}
		}
	}
}

// moduleGraph returns, for every package of the module and every package they depend on, what it
// imports (test files aside: what tests import does not ship).
func moduleGraph(t *testing.T) map[string][]string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list imports: %v", err)
	}
	cmd := exec.Command(goTool, "list", "-deps", "-json=ImportPath,Imports", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./... = %v\n%s", err, stderr.String())
	}
	graph := map[string][]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		graph[p.ImportPath] = p.Imports
	}
	return graph
}

// importChain returns the shortest chain of imports from pkg to a package matching one of
// forbidden ("path" exactly, or "path/..." for the path and everything under it), or nil.
func importChain(graph map[string][]string, pkg string, forbidden []string) []string {
	prev := map[string]string{pkg: ""}
	queue := []string{pkg}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if cur != pkg && matchesAny(cur, forbidden) {
			var chain []string
			for p := cur; p != ""; p = prev[p] {
				chain = append(chain, p)
			}
			slices.Reverse(chain)
			return chain
		}
		for _, next := range graph[cur] {
			if _, seen := prev[next]; !seen {
				prev[next] = cur
				queue = append(queue, next)
			}
		}
	}
	return nil
}

func matchesAny(pkg string, patterns []string) bool {
	for _, p := range patterns {
		if base, ok := strings.CutSuffix(p, "/..."); ok {
			if pkg == base || strings.HasPrefix(pkg, base+"/") {
				return true
			}
		} else if pkg == p {
			return true
		}
	}
	return false
}
