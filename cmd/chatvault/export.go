package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/account"
	"github.com/chatvault/chatvault/internal/audit"
	"github.com/chatvault/chatvault/internal/backup"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/export"
	"github.com/chatvault/chatvault/internal/export/xlsx"
)

const exportUsage = `Usage:
  chatvault export --as USERNAME --format csv|xlsx|jsonl|html --out FILE [filters] [--data DIR] [--config FILE]

Exports chat records as USERNAME may read them: a member gets what their history shows them
(membership windows, cleared history, hidden messages, their own retention window). With
--scope org, USERNAME must be a compliance officer: the export covers every conversation of the
org, recalled messages and edit history included, and writes an audit entry before anything is
read (no entry, no export).

--out FILE.zip writes a package: the export's files and manifest.json (filters, who, when, each
file's rows and SHA-256). Any other name writes the one file (csv, xlsx, jsonl; html always
makes one page per conversation, so it needs .zip). --recipient age1... (repeatable) or
--passphrase-file encrypts the output with age. The output appears only when the export is
complete.

Filters (any combination): --from and --to bound the send time to [from, to), as RFC 3339 or a
date (2026-03-01, 2026-03-01 09:00) in --tz; --conversation ID, --participant USERNAME (chats
that user is or was in), --sender USERNAME (each repeatable); --query (search syntax);
--include-edits, --include-recalled, --include-system.

This works on the data directory directly and refuses while a server uses it.
`

// listFlag collects a repeatable flag; commas separate values too.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

type exportFlags struct {
	org, as, scope, format, lang, tz, from, to, query, out, passFile string
	conversations, participants, senders, recipients                 listFlag
	edits, recalled, system                                          bool
	progress                                                         string
}

func runExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, exportUsage); fs.PrintDefaults() }
	cf := addConfigFlags(fs, false)
	var f exportFlags
	fs.StringVar(&f.org, "org", account.DefaultOrgSlug, "org slug")
	fs.StringVar(&f.as, "as", "", "username whose view is exported (required)")
	fs.StringVar(&f.scope, "scope", chat.ScopeMine, "mine (what --as may read) or org (every conversation; --as must be a compliance officer)")
	fs.StringVar(&f.format, "format", "", "csv, xlsx, jsonl or html (required)")
	fs.StringVar(&f.lang, "lang", export.LangEN, "language of headings: en or zh-CN")
	fs.StringVar(&f.tz, "tz", "", "IANA time zone that times are shown in, e.g. Asia/Shanghai (default: the org's, set by admin set-time-zone)")
	fs.StringVar(&f.from, "from", "", "first send time included")
	fs.StringVar(&f.to, "to", "", "send time the export stops before")
	fs.StringVar(&f.query, "query", "", "only messages matching this search query")
	fs.StringVar(&f.out, "out", "", "output file; .zip for a package with a manifest (required)")
	fs.StringVar(&f.passFile, "passphrase-file", "", "encrypt the output with age under the passphrase in this file")
	fs.Var(&f.conversations, "conversation", "conversation id (repeatable)")
	fs.Var(&f.participants, "participant", "username: only chats this user is or was in (repeatable)")
	fs.Var(&f.senders, "sender", "username: only messages this user sent (repeatable)")
	fs.Var(&f.recipients, "recipient", "encrypt the output with age to this public key, age1... (repeatable)")
	fs.BoolVar(&f.edits, "include-edits", false, "add the earlier texts of edited messages")
	fs.BoolVar(&f.recalled, "include-recalled", false, "add recalled messages (their text only with --scope org)")
	fs.BoolVar(&f.system, "include-system", false, "add system messages")
	fs.StringVar(&f.progress, "progress", "auto", "auto (a bar on a terminal, lines otherwise), lines or none")
	cfg, err := cf.parse(args)
	if err != nil {
		return err
	}
	if f.as == "" || f.format == "" || f.out == "" {
		fs.Usage()
		return errors.New("export: --as, --format and --out are required")
	}
	req := export.Request{Scope: f.scope, Format: export.Format(f.format), Lang: f.lang, TimeZone: f.tz}
	if err := req.Validate(); err != nil {
		return cliError(err)
	}
	pkg := strings.HasSuffix(strings.TrimSuffix(f.out, ".age"), ".zip")
	if req.Format == export.HTML && !pkg {
		return errors.New("export: --format html writes one page per conversation: give --out a name ending in .zip")
	}
	enc, err := exportRecipients(f.recipients, f.passFile)
	if err != nil {
		return err
	}

	logger := newLogger(cfg.Log, stderr)
	db, done, err := openAlone(ctx, cfg, "export", logger)
	if err != nil {
		return err
	}
	defer done()
	org, err := db.FindOrgBySlug(ctx, f.org)
	if err != nil {
		return fmt.Errorf("export: org %q: %w", f.org, cliError(err))
	}
	user, err := db.FindUserByUsername(ctx, org.ID, f.as)
	if err != nil {
		return fmt.Errorf("export: --as %q: %w", f.as, cliError(err))
	}
	if user.Disabled {
		return fmt.Errorf("export: --as %q is disabled", f.as)
	}
	if req.Participants, err = userIDs(ctx, db, org.ID, "participant", f.participants); err != nil {
		return err
	}
	if req.Senders, err = userIDs(ctx, db, org.ID, "sender", f.senders); err != nil {
		return err
	}
	req.TimeZone = cmp.Or(f.tz, org.TimeZone, chatvault.DefaultTimeZone)
	loc := req.Location()
	if req.From, err = export.ParseTime("from", f.from, loc); err != nil {
		return cliError(err)
	}
	if req.To, err = export.ParseTime("to", f.to, loc); err != nil {
		return cliError(err)
	}
	req.Conversations, req.Query = f.conversations, f.query
	req.Edits, req.Recalled, req.System = f.edits, f.recalled, f.system
	if err := req.Validate(); err != nil {
		return cliError(err)
	}

	actor := chatvault.Actor{OrgID: org.ID, UserID: user.ID, Roles: user.Roles, RetentionDays: user.RetentionDays}
	clock := chatvault.SystemClock{}
	chatSvc := chat.NewService(db, clock, chat.Config{Audit: audit.New(db, db.Keyring(), clock)})
	m := &export.Manifest{CreatedAt: clock.Now(), OrgID: org.ID, RequestedBy: user.ID, Username: user.Username, Request: req}
	src, err := chatSvc.OpenExport(ctx, actor, req.Scope, chatvault.AuditEntry{Target: "cli", Details: export.AuditDetails(&req)})
	if err != nil {
		return cliError(err)
	}
	prog := newProgressPrinter(stderr, f.progress)
	err = writeExportFile(f.out, enc, func(w io.Writer) error {
		var files export.Files = &export.SingleFile{W: w}
		var p *export.Package
		if pkg {
			p = export.NewPackage(w)
			files = p
		}
		wr, err := xlsx.NewWriter(files, &req, "messages")
		if err != nil {
			return err
		}
		ex := &export.Exporter{Users: db, Progress: prog.update}
		st, err := ex.Run(ctx, org.ID, src, &req, wr)
		if err != nil {
			return err
		}
		m.Snapshot.Conversations = st.Conversations
		if p != nil {
			return p.Finish(m, wr.(export.Lister).Files())
		}
		m.Rows = st.Rows
		return nil
	})
	prog.done()
	if err != nil {
		return fmt.Errorf("export: %w", cliError(err))
	}
	fmt.Fprintf(stdout, "exported %d rows from %d conversations to %s\n", m.Rows, m.Snapshot.Conversations, f.out)
	return db.Close()
}

// userIDs resolves usernames to user ids; field names the flag in the error.
func userIDs(ctx context.Context, db chatvault.UserStore, orgID, field string, names []string) ([]string, error) {
	var out []string
	for _, n := range names {
		u, err := db.FindUserByUsername(ctx, orgID, n)
		if chatvault.ErrorCode(err) == chatvault.ENOTFOUND {
			return nil, fmt.Errorf("export: --%s %q: no such user in this org", field, n)
		} else if err != nil {
			return nil, err
		}
		out = append(out, u.ID)
	}
	return out, nil
}

// exportRecipients reads the age recipients the output is encrypted to; none: not encrypted.
func exportRecipients(keys []string, passFile string) ([]age.Recipient, error) {
	rs, err := backup.ParseRecipients(keys)
	if err != nil {
		return nil, fmt.Errorf("export: --recipient %w", err)
	}
	if passFile != "" {
		if len(rs) > 0 {
			return nil, errors.New("export: give --recipient or --passphrase-file, not both (age encrypts to a passphrase alone)")
		}
		b, err := os.ReadFile(passFile)
		if err != nil {
			return nil, fmt.Errorf("export: --passphrase-file: %w", err)
		}
		pass := strings.TrimRight(string(b), "\r\n")
		if len(pass) < 12 {
			return nil, errors.New("export: --passphrase-file: the passphrase is shorter than 12 characters")
		}
		r, err := age.NewScryptRecipient(pass)
		if err != nil {
			return nil, fmt.Errorf("export: --passphrase-file: %w", err)
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// writeExportFile runs write into a temporary file beside path, encrypted to rs when there are
// any, and renames it to path only once everything is written: a failed or interrupted export
// leaves no partial file where the finished one is expected.
func writeExportFile(path string, rs []age.Recipient, write func(io.Writer) error) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("--out %s exists; choose a new name", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.partial")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	var w io.Writer = tmp
	var ew io.WriteCloser
	if len(rs) > 0 {
		if ew, err = age.Encrypt(tmp, rs...); err != nil {
			return fmt.Errorf("encrypt: %w", err)
		}
		w = ew
	}
	if err := write(w); err != nil {
		return err
	}
	if ew != nil {
		if err := ew.Close(); err != nil {
			return fmt.Errorf("encrypt: %w", err)
		}
	}
	if err := errors.Join(tmp.Sync(), tmp.Close()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// cliError turns a domain error into its message, naming the field as the flag a user types.
func cliError(err error) error {
	var e *chatvault.Error
	if errors.As(err, &e) {
		if e.Field != "" {
			return fmt.Errorf("--%s: %s", strings.ReplaceAll(cmp.Or(flagOf[e.Field], e.Field), "_", "-"), e.Message)
		}
		return errors.New(e.Message)
	}
	return err
}

var flagOf = map[string]string{"time_zone": "tz"}

// progressPrinter shows an export's progress: a bar redrawn in place on a terminal, a plain
// line every few seconds otherwise (logs, CI).
type progressPrinter struct {
	w     io.Writer
	mode  string
	last  time.Time
	start time.Time
	shown bool
}

func newProgressPrinter(w io.Writer, mode string) *progressPrinter {
	if mode == "auto" {
		mode = "lines"
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				mode = "bar"
			}
		}
	}
	return &progressPrinter{w: w, mode: mode, start: time.Now()}
}

func (p *progressPrinter) update(pr export.Progress) {
	now := time.Now()
	switch p.mode {
	case "bar":
		if now.Sub(p.last) < 100*time.Millisecond {
			return
		}
		frac := 1.0
		if pr.Estimated > 0 {
			frac = min(1, float64(pr.Rows)/float64(pr.Estimated))
		}
		n := int(frac * 30)
		fmt.Fprintf(p.w, "\r[%s%s] %d rows, %d/%d conversations", strings.Repeat("#", n), strings.Repeat(" ", 30-n), pr.Rows, pr.Done, pr.Conversations)
		p.shown = true
	case "lines":
		if !p.last.IsZero() && now.Sub(p.last) < 2*time.Second && pr.Done < pr.Conversations {
			return
		}
		fmt.Fprintf(p.w, "export: %d rows, %d of %d conversations, %s\n", pr.Rows, pr.Done, pr.Conversations, now.Sub(p.start).Round(time.Second))
	default:
		return
	}
	p.last = now
}

func (p *progressPrinter) done() {
	if p.shown {
		fmt.Fprintln(p.w)
	}
}
