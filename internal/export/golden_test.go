package export_test

import (
	"bytes"
	"encoding/csv"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatvault/chatvault/internal/export"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file: %v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("export differs from %s (go test -update rewrites it after review):\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

// Each format on the fixed data set, as a member (Alice) and as a compliance officer, byte for
// byte against its golden file. XLSX is compared as the rows an independent reader finds in it.
func TestGolden(t *testing.T) {
	w := newWorld(t)
	all := export.Filter{Edits: true, Recalled: true, System: true}
	cases := []struct {
		name string
		as   string
		req  export.Request
	}{
		{"alice.csv", "alice", export.Request{Format: export.CSV, TimeZone: "Asia/Shanghai"}},
		{"alice-zh.csv", "alice", export.Request{Format: export.CSV, Lang: export.LangZhCN, TimeZone: "Asia/Shanghai", Filter: all}},
		{"alice.jsonl", "alice", export.Request{Format: export.JSONL, TimeZone: "Asia/Shanghai", Filter: all}},
		{"alice.html", "alice", export.Request{Format: export.HTML, TimeZone: "Asia/Shanghai", Filter: all}},
		{"alice-zh.html", "alice", export.Request{Format: export.HTML, Lang: export.LangZhCN, TimeZone: "Asia/Shanghai"}},
		{"officer.jsonl", "officer", export.Request{Scope: "org", Format: export.JSONL, TimeZone: "UTC", Filter: all}},
		{"officer.csv", "officer", export.Request{Scope: "org", Format: export.CSV, TimeZone: "UTC", Filter: all}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := w.alice
			if c.as == "officer" {
				a = w.officer
			}
			files, _, err := w.run(t, a, c.req)
			if err != nil {
				t.Fatalf("export = %v", err)
			}
			golden(t, c.name, w.dump(files))
		})
	}
}

// The CSV starts with the BOM, parses as RFC 4180 with encoding/csv into the header and one row
// per message, keeps commas, quotes and line breaks inside their cells, and neutralises cells
// Excel would run as formulas.
func TestCSVParses(t *testing.T) {
	w := newWorld(t)
	files, st, err := w.run(t, w.alice, export.Request{Format: export.CSV, TimeZone: "Asia/Shanghai"})
	if err != nil {
		t.Fatalf("export = %v", err)
	}
	data := files.data["messages.csv"].Bytes()
	if !bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		t.Fatalf("CSV starts with %q; want the UTF-8 BOM", data[:min(len(data), 3)])
	}
	recs, err := csv.NewReader(bytes.NewReader(data[3:])).ReadAll()
	if err != nil {
		t.Fatalf("encoding/csv ReadAll() = %v", err)
	}
	if len(recs) != int(st.Rows)+1 || st.Rows != 8 {
		t.Fatalf("CSV has %d records for %d messages; want a header and 8 rows", len(recs), st.Rows)
	}
	texts := map[string]bool{}
	for _, r := range recs[1:] {
		texts[r[12]] = true
	}
	for _, want := range []string{
		`'=cmd|' /C calc'!A0`,
		"Yes, at 3pm, room \"B\", bring: laptop, notes\nsecond line, 第二行",
		"'+1 好的",
		"'@all 会议改到 4 点 👍",
		"'-5% budget? 😅\nplease check", // encoding/csv reads a quoted CRLF as LF
		"'\tTabbed, \"quoted\", and a comma",
		"你好，Alice！今天开会吗？🙂",
	} {
		if !texts[want] {
			t.Errorf("CSV has no text cell %q", want)
		}
	}
	for _, r := range recs[1:] {
		if r[5] == "=Bob" {
			t.Errorf("sender cell %q is not neutralised", r[5])
		}
	}
}

// python finds a Python 3 that has openpyxl (Debian's python3-openpyxl, installed by .ci/run).
func python(t *testing.T) string {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if path, err := exec.LookPath(p); err == nil && exec.Command(path, "-c", "import openpyxl").Run() == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("python3 with openpyxl not found (apt-get install python3-openpyxl)")
	}
	t.Skip("python3 with openpyxl not found (apt-get install python3-openpyxl)")
	return ""
}

// xlsxRows is a reader's view of a workbook: each sheet's name, frozen cell and rows, values
// with their Python types, one line per row.
const xlsxRows = `
import sys, openpyxl, datetime
wb = openpyxl.load_workbook(sys.argv[1])
for ws in wb.worksheets:
    print("sheet", ws.title, "freeze", ws.freeze_panes, "width(M)", ws.column_dimensions["M"].width)
    for row in ws.iter_rows(values_only=True):
        out = []
        for v in row:
            if isinstance(v, datetime.datetime):
                out.append("date:" + v.isoformat())
            elif v is None:
                out.append("-")
            else:
                out.append(type(v).__name__ + ":" + repr(v))
        print(" | ".join(out))
`

func readXLSX(t *testing.T, data []byte) string {
	t.Helper()
	py := python(t)
	path := filepath.Join(t.TempDir(), "x.xlsx")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "-c", xlsxRows, path).CombinedOutput()
	if err != nil {
		t.Fatalf("openpyxl could not read the workbook: %v\n%s", err, out)
	}
	return string(out)
}

// The XLSX opens with openpyxl and holds the expected rows: a frozen header, times as dates in
// the chosen zone, text that looks like a formula kept as text.
func TestXLSXOpensWithOpenpyxl(t *testing.T) {
	w := newWorld(t)
	files, st, err := w.run(t, w.alice, export.Request{Format: export.XLSX, TimeZone: "Asia/Shanghai",
		Filter: export.Filter{Edits: true, Recalled: true}})
	if err != nil {
		t.Fatalf("export = %v", err)
	}
	got := readXLSX(t, files.data["messages.xlsx"].Bytes())
	// 9 messages, one of them edited once: 10 rows, after the sheet line and the header.
	if n := strings.Count(got, "\n"); st.Rows != 9 || n != 12 {
		t.Errorf("openpyxl read %d lines for %d messages; want 12 lines for 9:\n%s", n, st.Rows, got)
	}
	golden(t, "alice.xlsx.txt", w.normaliser().apply(got))
}
