package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/audit"
	"github.com/chatvault/chatvault/internal/retention"
	"github.com/chatvault/chatvault/internal/sqlite"
	"github.com/google/uuid"
)

var purgeSeed = flag.Int64("purge.seed", 0, "seed for TestRetentionRunResumesAfterSIGKILL's kill timing (0: from the clock)")

// Shape of the resume test's data: a few conversations, almost all of it past the policy.
const (
	resumeConvs       = 4
	resumePerConv     = 10_000
	resumeKeepDays    = 30  // the policy's default_days
	resumeImportantEv = 997 // every 997th message is flagged important (kept forever)
)

// TestRetentionRunResumesAfterSIGKILL is the issue's "the purge job killed mid-run (SIGKILL)
// resumes and finishes with the same result": copy A runs `chatvault retention run` to the end;
// copy B is killed at a random moment and run again; both must end in the same state, and B's
// certificate must show the resumed run finished.
func TestRetentionRunResumesAfterSIGKILL(t *testing.T) { retentionRunResumes(t, syscall.SIGKILL) }

// TestRetentionRunResumesAfterSIGTERM is the same with the signal an operator or systemd sends:
// the run stops where it is, and the next run resumes it to the same end.
func TestRetentionRunResumesAfterSIGTERM(t *testing.T) { retentionRunResumes(t, syscall.SIGTERM) }

func retentionRunResumes(t *testing.T, sig syscall.Signal) {
	bin := chatvaultBinary(t)
	seed := *purgeSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (rerun with -purge.seed=%d)", seed, seed)
	rng := rand.New(rand.NewSource(seed))

	t0 := time.Now()
	base := filepath.Join(t.TempDir(), "base")
	orgID := makeExpiredDataDir(t, base)
	t.Logf("data dir with %d messages in %d conversations made in %v", resumeConvs*resumePerConv, resumeConvs, time.Since(t0).Round(time.Millisecond))

	dirA := filepath.Join(t.TempDir(), "a")
	copyDir(t, base, dirA)
	t1 := time.Now()
	outA := retentionRun(t, bin, dirA, "--json")
	fullRun := time.Since(t1)
	runsA := decodeRuns(t, outA)
	stateA := readMessageStates(t, dirA)
	if len(runsA) != 1 || runsA[0].FinishedAt == nil {
		t.Fatalf("copy A: runs = %s; want one finished run", outA)
	}
	t.Logf("copy A: full run took %v: totals %v", fullRun.Round(time.Millisecond), runsA[0].Totals)
	checkRetained(t, "copy A", stateA)

	// A kill lands mid-run only if the run has started and not yet finished, which timing alone
	// cannot promise on a loaded machine: after the first iterations, keep going (up to a bound)
	// until one has.
	const iterations, maxIterations = 3, 12
	midRun := 0
	for i := 0; i < iterations || midRun == 0 && i < maxIterations; i++ {
		dirB := filepath.Join(t.TempDir(), fmt.Sprintf("b%d", i))
		copyDir(t, base, dirB)
		// Kill somewhere in the run, never before the process has had time to open the store.
		delay := time.Duration(float64(fullRun) * (0.2 + 0.6*rng.Float64()))
		cmd := exec.Command(bin, "retention", "run", "--data", dirB)
		cmd.Env = withoutChatvaultEnv(os.Environ())
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = io.Discard, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", bin, err)
		}
		time.Sleep(delay) // the crash point, chosen at random: not a wait for readiness
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatalf("%v: %v", sig, err)
		}
		werr := cmd.Wait()
		killed := werr != nil
		interrupted := unfinishedRunID(t, dirB, orgID)
		switch {
		case interrupted != "":
			midRun++
		case killed:
			t.Logf("iteration %d: %v after %v before the run row was written (or the run had finished)", i, sig, delay)
		default:
			t.Logf("iteration %d: the run finished before %v after %v (exit %v)", i, sig, delay, werr)
		}

		outB := retentionRun(t, bin, dirB, "--json")
		runsB := decodeRuns(t, outB)
		if len(runsB) != 1 || runsB[0].FinishedAt == nil {
			t.Fatalf("iteration %d: copy B runs = %s; want one finished run", i, outB)
		}
		if interrupted != "" && runsB[0].ID != interrupted {
			t.Errorf("iteration %d: the second run is %s; want it to resume the interrupted run %s", i, runsB[0].ID, interrupted)
		}
		stateB := readMessageStates(t, dirB)
		compareStates(t, fmt.Sprintf("iteration %d", i), stateA, stateB)
		checkRetained(t, fmt.Sprintf("iteration %d, copy B", i), stateB)
		// Each step writes its certificate line in the same transaction as its changes, so the
		// resumed run certifies exactly what was done, by both attempts together.
		for _, action := range []string{"expired", "destroyed"} {
			want := runsA[0].Totals[action]
			if interrupted == "" && werr == nil {
				want = 0 // the first attempt finished before the signal: the second has nothing left
			}
			if got := runsB[0].Totals[action]; got != want {
				t.Errorf("iteration %d: certificate of the second run: %s = %d; want %d", i, action, got, want)
			}
		}
		// Data keys live in their own database, so their shredding and its certificate line cannot
		// share a transaction: a kill between the two leaves destroyed keys unlisted, never the reverse.
		if got, want := runsB[0].Totals["data_keys_destroyed"], runsA[0].Totals["data_keys_destroyed"]; got > want {
			t.Errorf("iteration %d: certificate lists %d data keys destroyed; want at most %d", i, got, want)
		}
		if stored := storedRun(t, dirB, orgID, runsB[0].ID); stored.FinishedAt == nil {
			t.Errorf("iteration %d: stored certificate of run %s has no finished_at; want the resumed run finished", i, runsB[0].ID)
		}
		t.Logf("iteration %d: %v after %v (interrupted run %q); resumed run %s totals %v", i, sig, delay.Round(time.Millisecond),
			interrupted, runsB[0].ID, runsB[0].Totals)
		if t.Failed() {
			t.Logf("copy B first attempt stderr:\n%s", stderr.String())
			t.FailNow()
		}
	}
	if midRun == 0 {
		t.Errorf("no %v of %d landed mid-run (full run %v): the test proved nothing; make the data larger", sig, maxIterations, fullRun)
	}
}

// makeExpiredDataDir writes an encrypted data directory the way the binary opens it: one org with
// an admin and resumeConvs groups of resumePerConv messages sent over the last 400 days (none
// within 5 days of the 30-day cutoff, so the seconds between two runs never move a message across
// it), a policy of 30 days with no grace window, and some messages flagged important.
func makeExpiredDataDir(t *testing.T, dir string) (orgID string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	plain, err := sqlite.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	created := now.Add(-500 * 24 * time.Hour)
	org := &chatvault.Org{ID: uuid.NewString(), Slug: "resume", Name: "Resume test", CreatedAt: created}
	var users []*chatvault.User
	for i, name := range []string{"admin", "alice", "bob"} {
		roles := []chatvault.Role{chatvault.RoleMember}
		if i == 0 {
			roles = append(roles, chatvault.RoleOrgAdmin)
		}
		users = append(users, &chatvault.User{OrgID: org.ID, ID: uuid.NewString(), Username: name, DisplayName: name, Roles: roles, CreatedAt: created})
	}
	data := sqlite.BulkData{Orgs: []*chatvault.Org{org}, Users: users}
	for i := range resumeConvs {
		c := &chatvault.Conversation{OrgID: org.ID, ID: uuid.NewString(), Kind: chatvault.Group, Title: fmt.Sprintf("群 %d", i),
			CreatedBy: users[0].ID, CreatedAt: created}
		data.Conversations = append(data.Conversations, sqlite.BulkConversation{Conversation: c, Members: []string{users[1].ID, users[2].ID}})
	}
	const (
		oldest  = 400 * 24 * time.Hour
		gapFrom = (resumeKeepDays + 5) * 24 * time.Hour
		gapTo   = (resumeKeepDays - 5) * 24 * time.Hour
	)
	data.Messages = func(yield func(*chatvault.Message) bool) {
		for _, bc := range data.Conversations {
			for seq := int64(1); seq <= resumePerConv; seq++ {
				// Evenly over [now-400d, now-35d) ∪ [now-25d, now-1d).
				span := (oldest - gapFrom) + (gapTo - 24*time.Hour)
				off := time.Duration(float64(span) * float64(seq-1) / resumePerConv)
				sent := now.Add(-oldest + off)
				if off >= oldest-gapFrom {
					sent = now.Add(-gapTo + (off - (oldest - gapFrom)))
				}
				m := &chatvault.Message{OrgID: org.ID, ConversationID: bc.Conversation.ID, Seq: seq, ID: uuid.NewString(),
					SenderID: users[int(seq)%len(users)].ID, Kind: chatvault.KindText, SentAt: sent.Truncate(time.Millisecond),
					Text: fmt.Sprintf("消息 %d hello 合同 🚀 %s", seq, strings.Repeat("x", int(seq%50)))}
				if !yield(m) {
					return
				}
			}
		}
	}
	if err := plain.BulkLoad(ctx, data); err != nil {
		t.Fatal(err)
	}
	if err := plain.Close(); err != nil {
		t.Fatal(err)
	}

	// Open as the binary does: with the key file, which seals the plain bodies.
	db, done := openLocked(t, dir)
	defer done()
	ret := retention.New(db, audit.New(db, db.Keyring(), chatvault.SystemClock{}), chatvault.SystemClock{}, slog.New(slog.NewTextHandler(io.Discard, nil)), db)
	admin := chatvault.Actor{OrgID: org.ID, UserID: users[0].ID, Roles: users[0].Roles}
	p := chatvault.DefaultPolicy()
	p.DefaultDays, p.GraceDays = resumeKeepDays, 0
	if _, err := ret.SetPolicy(ctx, admin, p, "resume test"); err != nil {
		t.Fatalf("SetPolicy() = %v", err)
	}
	for _, bc := range data.Conversations {
		for seq := int64(resumeImportantEv); seq <= resumePerConv; seq += resumeImportantEv {
			if _, err := db.SetImportance(ctx, org.ID, bc.Conversation.ID, seq, users[0].ID, chatvault.ImportantByAdmin, true, now); err != nil {
				t.Fatalf("SetImportance(%d) = %v", seq, err)
			}
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return org.ID
}

// retentionRun runs `chatvault retention run` to the end and returns its standard output.
func retentionRun(t *testing.T, bin, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"retention", "run", "--data", dir}, args...)...)
	cmd.Env = withoutChatvaultEnv(os.Environ())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chatvault retention run --data %s: %v\n%s", dir, err, stderr.String())
	}
	return stdout.Bytes()
}

func decodeRuns(t *testing.T, out []byte) []*chatvault.PurgeRun {
	t.Helper()
	var runs []*chatvault.PurgeRun
	if err := json.Unmarshal(out, &runs); err != nil {
		t.Fatalf("decode `retention run --json` output: %v\n%s", err, out)
	}
	return runs
}

// copyDir copies a closed data directory, keys included.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatalf("copy data directory: %v", err)
	}
}

// msgState is what retention decides about one message.
type msgState struct {
	state     string
	expired   bool
	important bool
	sentAt    int64
	hasBody   bool
}

type msgKey struct {
	conv string
	seq  int64
}

// readMessageStates reads every message's retention state straight from the database file.
func readMessageStates(t *testing.T, dir string) map[msgKey]msgState {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT conversation_id, seq, state, expired_at IS NOT NULL, importance != 0, sent_at, body IS NOT NULL FROM messages`)
	if err != nil {
		t.Fatalf("read messages: %v", err)
	}
	defer rows.Close()
	out := map[msgKey]msgState{}
	for rows.Next() {
		var k msgKey
		var s msgState
		if err := rows.Scan(&k.conv, &k.seq, &s.state, &s.expired, &s.important, &s.sentAt, &s.hasBody); err != nil {
			t.Fatal(err)
		}
		out[k] = s
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) != resumeConvs*resumePerConv {
		t.Fatalf("%s holds %d messages; want %d", dir, len(out), resumeConvs*resumePerConv)
	}
	return out
}

// checkRetained fails the test unless exactly what the policy lets go is destroyed: every
// message older than 30 days that is not important, and nothing else.
func checkRetained(t *testing.T, when string, st map[msgKey]msgState) {
	t.Helper()
	cutoff := time.Now().Add(-resumeKeepDays * 24 * time.Hour).UnixMilli()
	bad := 0
	for k, s := range st {
		mustGo := s.sentAt < cutoff && !s.important
		gone := s.state == string(chatvault.StatePurged)
		switch {
		case mustGo && !gone:
			if bad++; bad <= 5 {
				t.Errorf("%s: conversation %s seq %d (state %s, expired %v) is older than %d days and not important; want it destroyed",
					when, k.conv, k.seq, s.state, s.expired, resumeKeepDays)
			}
		case !mustGo && (gone || s.expired):
			if bad++; bad <= 5 {
				t.Errorf("%s: conversation %s seq %d (state %s, expired %v, important %v) must be kept", when, k.conv, k.seq, s.state, s.expired, s.important)
			}
		case gone && s.hasBody:
			if bad++; bad <= 5 {
				t.Errorf("%s: conversation %s seq %d is purged but its body is still stored", when, k.conv, k.seq)
			}
		}
	}
}

// compareStates fails the test unless both copies destroyed and expired the same seqs.
func compareStates(t *testing.T, when string, a, b map[msgKey]msgState) {
	t.Helper()
	var diff []string
	for k, sa := range a {
		sb := b[k]
		if sa.state != sb.state || sa.expired != sb.expired || sa.hasBody != sb.hasBody {
			diff = append(diff, fmt.Sprintf("conversation %s seq %d: uninterrupted %+v, resumed %+v", k.conv, k.seq, sa, sb))
		}
	}
	if len(diff) > 0 {
		slices.Sort(diff)
		t.Errorf("%s: %d messages differ between the uninterrupted and the resumed run, e.g.\n%s", when, len(diff),
			strings.Join(diff[:min(len(diff), 5)], "\n"))
	}
}

// unfinishedRunID returns the id of the org's newest run when it has not finished.
func unfinishedRunID(t *testing.T, dir, orgID string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id string
	var finished sql.NullInt64
	err = db.QueryRow(`SELECT id, finished_at FROM purge_runs WHERE org_id = ? ORDER BY started_at DESC, id DESC LIMIT 1`, orgID).Scan(&id, &finished)
	if err == sql.ErrNoRows {
		return ""
	} else if err != nil {
		t.Fatalf("read purge runs: %v", err)
	}
	if finished.Valid {
		return ""
	}
	return id
}

func storedRun(t *testing.T, dir, orgID, runID string) *chatvault.PurgeRun {
	t.Helper()
	db, done := openLocked(t, dir)
	defer done()
	r, err := db.FindPurgeRun(context.Background(), orgID, runID)
	if err != nil {
		t.Fatalf("FindPurgeRun(%s) = %v", runID, err)
	}
	return r
}
