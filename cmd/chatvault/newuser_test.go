package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// What a new user hit when trying chatvault as the README says (issue 21).

// TestHelpExitsZero: "chatvault admin -h" printed usage, then "unknown admin command", and exited 2.
func TestHelpExitsZero(t *testing.T) {
	bin := chatvaultBinary(t)
	for _, tc := range []struct {
		args []string
		want string // in the usage printed
	}{
		{[]string{"-h"}, "chatvault serve"},
		{[]string{"admin", "-h"}, "chatvault admin create-org"},
		{[]string{"admin", "--help"}, "chatvault admin create-org"},
		{[]string{"admin", "create-org", "-h"}, "-slug"},
		{[]string{"keys", "-h"}, "rotate"},
		{[]string{"keys", "help"}, "rotate"},
		{[]string{"backup", "-h"}, "chatvault backup COMMAND"},
		{[]string{"retention", "run", "-h"}, "dry-run"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			out, err := runBinary(t, bin, nil, tc.args...)
			if err != nil {
				t.Fatalf("chatvault %s: %v; want exit 0\n%s", strings.Join(tc.args, " "), err, out)
			}
			if !strings.Contains(out, tc.want) || strings.Contains(out, "command \"") {
				t.Fatalf("chatvault %s printed:\n%s\nwant usage with %q and no complaint", strings.Join(tc.args, " "), out, tc.want)
			}
		})
	}
	// A missing command is still a usage error.
	out, err := runBinary(t, bin, nil, "admin")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(out, "Usage") {
		t.Fatalf("chatvault admin: %v\n%s; want usage and exit 2", err, out)
	}
}

// TestListOrgsAlignsWideNames: columns line up in terminal cells when a name is Chinese.
func TestListOrgsAlignsWideNames(t *testing.T) {
	dir := t.TempDir()
	admin := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(context.Background(), append([]string{"admin"}, append(args, "--data", dir)...), &out, io.Discard); err != nil {
			t.Fatalf("admin %v: %v", args, err)
		}
		return out.String()
	}
	admin("create-org", "--slug", "acme", "--name", "Acme 公司", "--admin", "root")
	admin("create-org", "--slug", "beta", "--name", "Beta Ltd", "--admin", "root")
	admin("create-org", "--slug", "zh", "--name", "北京数据科技有限公司", "--admin", "root")
	out := admin("list-orgs")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("list-orgs printed %d lines; want 4:\n%s", len(lines), out)
	}
	// The ID column starts at the same terminal cell on every line.
	col := -1
	for _, l := range lines[1:] {
		id := regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f-]{27}`).FindString(l)
		at := displayWidth(l[:strings.Index(l, id)])
		if col == -1 {
			col = at
		} else if at != col {
			t.Fatalf("list-orgs: ID column at cell %d and %d:\n%s", col, at, out)
		}
	}
	if h := displayWidth(lines[0][:strings.Index(lines[0], "ID")]); h != col {
		t.Fatalf("list-orgs: ID heading at cell %d, IDs at %d:\n%s", h, col, out)
	}
}

func TestDisplayWidth(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		s    string
		want int
	}{
		{"acme", 4}, {"公司", 4}, {"Acme 公司", 9}, {"ｆｕｌｌ", 8}, {"e\u0301", 1}, {"a\u200db", 2}, {"", 0},
	} {
		if got := displayWidth(tc.s); got != tc.want {
			t.Errorf("displayWidth(%q) = %d; want %d", tc.s, got, tc.want)
		}
	}
}

// TestBackupJSONIsSnakeCase: backup create --json printed Go field names (ID, Data) and
// nanoseconds; scripts get the same style as every other JSON output.
func TestBackupJSONIsSnakeCase(t *testing.T) {
	dir, cfgFile, idFile, _ := backupSetup(t, "")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"backup", "create", "--json", "--config", cfgFile, "--data", dir}, &out, io.Discard); err != nil {
		t.Fatalf("backup create --json: %v", err)
	}
	var res map[string]any
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("backup create --json printed %q: %v", out.String(), err)
	}
	for _, k := range []string{"id", "data", "stored", "duration_seconds", "phase_seconds"} {
		if _, ok := res[k]; !ok {
			t.Errorf("backup create --json has no %q: %s", k, out.String())
		}
	}
	for k := range res {
		if k != strings.ToLower(k) {
			t.Errorf("backup create --json has field %q; want snake_case", k)
		}
	}
	if phases, _ := res["phase_seconds"].(map[string]any); phases["snapshot"] == nil {
		t.Errorf("phase_seconds = %v; want the snapshot phase in seconds", res["phase_seconds"])
	}
	id, _ := res["id"].(string)
	out.Reset()
	if err := run(context.Background(), []string{"backup", "verify", id, "--json", "--identity", idFile, "--config", cfgFile, "--data", dir}, &out, io.Discard); err != nil {
		t.Fatalf("backup verify --json: %v", err)
	}
	var rep struct {
		ID     string            `json:"id"`
		Stored map[string]string `json:"stored"`
		Full   bool              `json:"full"`
	}
	// verify prints its report, then a line for people.
	if err := json.NewDecoder(&out).Decode(&rep); err != nil || rep.ID != id || !rep.Full || len(rep.Stored) != 2 {
		t.Fatalf("backup verify --json = %+v, %v; want id %s, full, 2 stored copies", rep, err, id)
	}
	for target, v := range rep.Stored {
		if v != "ok" {
			t.Errorf("verify: stored[%s] = %q; want ok", target, v)
		}
	}
}

// TestJSONLogDurations: durations in JSON logs read as "1.5s", not nanosecond integers.
func TestJSONLogDurations(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	newLogger(LogConfig{Level: "info", Format: "json"}, &buf).Info("done", "took", 1500*time.Millisecond,
		slog.Group("phases", slog.Duration("snapshot", 20*time.Millisecond)))
	var line struct {
		Took   string
		Phases struct{ Snapshot string }
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("log line %s: %v", buf.String(), err)
	}
	if line.Took != "1.5s" || line.Phases.Snapshot != "20ms" {
		t.Fatalf("log line %s; want took \"1.5s\" and phases.snapshot \"20ms\"", buf.String())
	}
}
