// Package export writes what one actor may read of an org's chats to files: CSV for Excel,
// XLSX, JSONL (the full-fidelity format import and evidence packages reuse) and an HTML
// transcript per conversation, optionally packed into a zip with a manifest.
//
// An export reads one snapshot: the conversations in scope, each up to the last seq it had when
// the export began, paged by (conversation, seq). Seq is gap-free and never reused, so a message
// sent during the export (a higher seq) is out, and every message of the snapshot is read exactly
// once however many share a timestamp. Content comes only through chat.ExportSource: a member
// gets what history shows them; an org-wide export is audited before anything is read.
package export

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/search"
)

// Format is an export file format.
type Format string

const (
	CSV   Format = "csv"
	XLSX  Format = "xlsx"
	JSONL Format = "jsonl"
	HTML  Format = "html"
)

// Formats lists every format.
var Formats = []Format{CSV, XLSX, JSONL, HTML}

// Languages of column headings and labels.
const (
	LangEN   = "en"
	LangZhCN = "zh-CN"
)

// Filter selects messages; every part that is set must hold.
type Filter struct {
	// From and To bound sent_at to [From, To); zero means no bound.
	From time.Time `json:"from,omitzero"`
	To   time.Time `json:"to,omitzero"`
	// Conversations narrows to these conversations.
	Conversations []string `json:"conversations,omitempty"`
	// Participants narrows to conversations any of these users is or was in (the chat partner).
	Participants []string `json:"participants,omitempty"`
	// Senders narrows to messages these users sent.
	Senders []string `json:"senders,omitempty"`
	// Query narrows to messages matching a search query (the search syntax).
	Query string `json:"query,omitempty"`
	// Stem reads the query's English words with light stemming (docs/search.md); unset, the
	// org's setting decides (on where nothing looked it up).
	Stem *bool `json:"stem,omitempty"`
	// Edits adds each edited message's earlier texts; Recalled adds recalled messages (their
	// text only in org-wide exports); System adds system messages.
	Edits    bool `json:"include_edits,omitempty"`
	Recalled bool `json:"include_recalled,omitempty"`
	System   bool `json:"include_system,omitempty"`
}

// Request is one export: who reads at what scope, what, and how it is written.
type Request struct {
	Scope    string `json:"scope"` // chat.ScopeMine (default) or chat.ScopeOrg
	Format   Format `json:"format"`
	Lang     string `json:"lang"`
	TimeZone string `json:"time_zone"` // IANA name; times are shown in it
	// Recipients are age public keys (age1...) the package is encrypted to; none: not encrypted.
	Recipients []string `json:"recipients,omitempty"`
	Filter
}

// parseQuery reads the filter's query with its stemming.
func (f *Filter) parseQuery() (*search.Query, error) {
	return search.ParseWith(f.Query, search.Options{Stem: f.Stem == nil || *f.Stem})
}

// Validate fills defaults and checks the request; errors name the offending field.
func (r *Request) Validate() error {
	r.Scope = cmp.Or(r.Scope, chat.ScopeMine)
	if r.Scope != chat.ScopeMine && r.Scope != chat.ScopeOrg {
		return chatvault.Invalidf("scope", "scope is %q or %q", chat.ScopeMine, chat.ScopeOrg)
	}
	if !slices.Contains(Formats, r.Format) {
		return chatvault.Invalidf("format", "format %q is not one of csv, xlsx, jsonl, html", r.Format)
	}
	r.Lang = cmp.Or(r.Lang, LangEN)
	if r.Lang != LangEN && r.Lang != LangZhCN {
		return chatvault.Invalidf("lang", "lang is %q or %q", LangEN, LangZhCN)
	}
	r.TimeZone = cmp.Or(r.TimeZone, "UTC")
	if _, err := time.LoadLocation(r.TimeZone); err != nil || r.TimeZone == "Local" {
		return chatvault.Invalidf("time_zone", "time_zone %q is not an IANA time zone name such as Asia/Shanghai or UTC", r.TimeZone)
	}
	for _, k := range r.Recipients {
		if _, err := age.ParseX25519Recipient(k); err != nil {
			return chatvault.Invalidf("recipients", "recipients: %q is not an age public key (age1...)", k)
		}
	}
	if !r.From.IsZero() && !r.To.IsZero() && !r.From.Before(r.To) {
		return chatvault.Invalidf("to", "to must be after from: the range is [from, to)")
	}
	if r.Query != "" {
		if _, err := r.parseQuery(); err != nil {
			msg := "invalid query"
			if errors.Is(err, search.ErrQuery) {
				msg = err.Error()
			}
			return chatvault.Invalidf("query", "%s", msg)
		}
	}
	return nil
}

// AgeRecipients returns the parsed recipients; call it after Validate.
func (r *Request) AgeRecipients() []age.Recipient {
	var out []age.Recipient
	for _, k := range r.Recipients {
		if rc, err := age.ParseX25519Recipient(k); err == nil {
			out = append(out, rc)
		}
	}
	return out
}

// Location returns the request's time zone; call it after Validate.
func (r *Request) Location() *time.Location {
	loc, err := time.LoadLocation(r.TimeZone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// ParseTime reads a filter bound typed by a person: RFC 3339, or a date or date and time
// (2006-01-02, 2006-01-02 15:04, 2006-01-02T15:04:05) in loc. field names it in the error.
func ParseTime(field, s string, loc *time.Location) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	for _, layout := range []string{"2006-01-02", "2006-01-02 15:04", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02T15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, chatvault.Invalidf(field, "%s %q is not a time: give RFC 3339 (2026-03-01T09:00:00+08:00) or a date (2026-03-01) in the export's time zone", field, s)
}

// Conversation is a conversation as an export names it.
type Conversation struct {
	ID    string
	Kind  chatvault.ConversationKind
	Title string
	// Created and LastSeq are the conversation's, LastSeq as of the snapshot.
	Created time.Time
	LastSeq int64
}

// Name is how people see the conversation: its title, or its kind.
func (c *Conversation) Name() string { return cmp.Or(c.Title, string(c.Kind)) }

// Reply is what a reply points at, when the exporter may see it.
type Reply struct {
	Seq    int64
	Sender string
	Text   string
}

// Record is one message as the writers get it.
type Record struct {
	Conversation *Conversation
	Message      *chatvault.Message
	SenderName   string
	// Time is Message.SentAt in the export's time zone.
	Time time.Time
	// Versions are the earlier texts of an edited message, oldest first (with Filter.Edits).
	Versions []*chatvault.MessageVersion
	Reply    *Reply
}

// Writer writes records in (conversation, seq) order.
type Writer interface {
	// Begin starts a conversation; End finishes it. Records of it come in between.
	Begin(c *Conversation) error
	Write(r *Record) error
	End() error
	// Close finishes the last file.
	Close() error
}

// Users finds users' display names.
type Users interface {
	FindUserByID(ctx context.Context, orgID, userID string) (*chatvault.User, error)
}

// Progress is how far an export has got.
type Progress struct {
	Rows int64 `json:"rows_done"`
	// Estimated is the snapshot's seq count in scope: an upper bound on the rows.
	Estimated     int64 `json:"rows_estimated"`
	Conversations int   `json:"conversations"`
	Done          int   `json:"conversations_done"`
}

// Stats is what an export wrote.
type Stats struct {
	Rows          int64 // messages written
	Conversations int   // conversations in scope
}

// pageSize is how many messages one read returns: large enough that a page costs little more
// than its rows, small enough that memory stays flat whatever the export's size.
const pageSize = 500

// Exporter runs exports.
type Exporter struct {
	Users Users
	// Progress, when set, is called after each page.
	Progress func(Progress)
	// Checkpoint, when set, is called after each page and after each conversation with the
	// position up to which the writer has been given every record; an error stops the run.
	Checkpoint func(Position) error
}

// Position is how far a run has got through its snapshot: the conversations before Conv are
// written whole; of Snapshot[Conv], Begin was written if Begun, and its messages up to seq After.
type Position struct {
	Conv  int   `json:"conversation"`
	After int64 `json:"after"`
	Begun bool  `json:"begun,omitempty"`
	Rows  int64 `json:"rows"`
}

// Snapshot takes the export's snapshot: the conversations in scope, in id order, each with its
// last seq as it is now.
func (e *Exporter) Snapshot(ctx context.Context, src *chat.ExportSource, req *Request) ([]*chat.ExportConversation, error) {
	return src.Conversations(ctx, req.Conversations, req.Participants)
}

// Run writes what src yields under req's filter to w, in (conversation, seq) order, and closes w.
// req must be validated.
func (e *Exporter) Run(ctx context.Context, orgID string, src *chat.ExportSource, req *Request, w Writer) (Stats, error) {
	convs, err := e.Snapshot(ctx, src, req)
	if err != nil {
		return Stats{}, err
	}
	return e.RunFrom(ctx, orgID, src, req, convs, Position{}, w)
}

// RunFrom writes the snapshot convs from pos on to w, and closes w: a run that stopped at a
// checkpoint continues from it, given the snapshot it had. Stats.Rows counts pos.Rows too.
func (e *Exporter) RunFrom(ctx context.Context, orgID string, src *chat.ExportSource, req *Request, convs []*chat.ExportConversation, pos Position, w Writer) (Stats, error) {
	st := Stats{Rows: pos.Rows, Conversations: len(convs)}
	names := &nameCache{users: e.Users, org: orgID, names: map[string]string{}}
	var q *search.Query
	var err error
	if req.Query != "" {
		if q, err = req.parseQuery(); err != nil {
			return st, chatvault.Invalidf("query", "invalid query")
		}
	}
	loc := req.Location()
	prog := Progress{Conversations: len(convs), Done: pos.Conv}
	for _, ec := range convs {
		prog.Estimated += ec.Conversation.LastSeq
	}
	checkpoint := func(p Position) error {
		if e.Checkpoint == nil {
			return nil
		}
		return e.Checkpoint(p)
	}

	rctx, cancel := context.WithCancel(ctx)
	pages := make(chan page, readAhead)
	var rerr error
	go func() {
		defer close(pages)
		rerr = e.read(rctx, orgID, src, convs, pos, loc, pages)
	}()
	defer func() {
		cancel()
		for range pages { // let the reader end before returning
		}
	}()

	var conv *Conversation
	var replies *replyCache
	for p := range pages {
		if p.conv != nil {
			conv, replies = p.conv, newReplyCache()
			if p.begin {
				if err := w.Begin(conv); err != nil {
					return st, err
				}
			}
		}
		for _, m := range p.ms {
			replies.add(m)
			if !req.keeps(m, q) {
				continue
			}
			r := &Record{Conversation: conv, Message: m, Time: m.SentAt.In(loc)}
			if r.SenderName, err = names.name(ctx, m.SenderID); err != nil {
				return st, err
			}
			if req.Edits {
				if r.Versions, err = src.Versions(ctx, p.ec, m); err != nil {
					return st, err
				}
			}
			if m.ReplyTo != "" {
				if r.Reply, err = replies.find(ctx, src, p.ec, names, m.ReplyTo); err != nil {
					return st, err
				}
			}
			if err := w.Write(r); err != nil {
				return st, err
			}
			st.Rows++
		}
		prog.Rows = st.Rows
		if e.Progress != nil {
			e.Progress(prog)
		}
		next := Position{Conv: p.i, After: p.after, Begun: true, Rows: st.Rows}
		if p.last {
			if err := w.End(); err != nil {
				return st, err
			}
			prog.Done++
			next = Position{Conv: p.i + 1, Rows: st.Rows}
		}
		if err := checkpoint(next); err != nil {
			return st, err
		}
		if err := ctx.Err(); err != nil {
			return st, err
		}
	}
	if rerr != nil {
		return st, rerr
	}
	if e.Progress != nil {
		e.Progress(prog)
	}
	return st, w.Close()
}

// readAhead is how many pages the reader may be ahead of the writer.
const readAhead = 2

// page is what the reader hands the writer: one page of a conversation's messages, the first
// with the conversation (and whether Begin is still to be written), the last marked.
type page struct {
	i     int
	ec    *chat.ExportConversation
	conv  *Conversation
	begin bool
	ms    []*chatvault.Message
	after int64 // the last seq read of the conversation
	last  bool
}

// read reads the snapshot from pos, page by page, into out. It runs in a goroutine of its own, a
// page or two ahead of the writer, so that on two cores the reading (queries, decryption) and the
// writing (formatting, compression) overlap; out's bound keeps memory flat. It keeps its own
// names: the writer's cache is not shared between goroutines.
func (e *Exporter) read(ctx context.Context, orgID string, src *chat.ExportSource, convs []*chat.ExportConversation, pos Position, loc *time.Location, out chan<- page) error {
	names := &nameCache{users: e.Users, org: orgID, names: map[string]string{}}
	for i := pos.Conv; i < len(convs); i++ {
		ec := convs[i]
		c := ec.Conversation
		conv := &Conversation{ID: c.ID, Kind: c.Kind, Title: c.Title, Created: c.CreatedAt.In(loc), LastSeq: c.LastSeq}
		if c.Kind == chatvault.Direct && c.Title == "" {
			var err error
			if conv.Title, err = directName(ctx, src, ec, names); err != nil {
				return err
			}
		}
		after, begin := int64(0), true
		if i == pos.Conv && pos.Begun {
			after, begin = pos.After, false
		}
		for first := true; ; first = false {
			ms, err := src.Page(ctx, ec, after, pageSize)
			if err != nil {
				return err
			}
			if len(ms) > 0 {
				after = ms[len(ms)-1].Seq
			}
			p := page{i: i, ec: ec, ms: ms, after: after, last: len(ms) < pageSize}
			if first {
				p.conv, p.begin = conv, begin
			}
			select {
			case out <- p:
			case <-ctx.Done():
				return ctx.Err()
			}
			if p.last {
				break
			}
		}
	}
	return nil
}

// directName names a direct chat by its two people, as its members see it in their lists.
func directName(ctx context.Context, src *chat.ExportSource, ec *chat.ExportConversation, names *nameCache) (string, error) {
	ids, err := src.Members(ctx, ec)
	if err != nil {
		return "", err
	}
	var ns []string
	for _, id := range ids {
		n, err := names.name(ctx, id)
		if err != nil {
			return "", err
		}
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return strings.Join(ns, " · "), nil
}

// keeps applies the filter to one message the source returned.
func (r *Request) keeps(m *chatvault.Message, q *search.Query) bool {
	switch {
	case m.State == chatvault.StatePurged:
		return false // a tombstone: nothing left to export
	case m.State == chatvault.StateRecalled && !r.Recalled:
		return false
	case m.Kind == chatvault.KindSystem && !r.System:
		return false
	case !r.From.IsZero() && m.SentAt.Before(r.From):
		return false
	case !r.To.IsZero() && !m.SentAt.Before(r.To):
		return false
	case len(r.Senders) > 0 && !slices.Contains(r.Senders, m.SenderID):
		return false
	}
	if q != nil {
		ok, _, _ := q.Match(m.Text)
		return ok
	}
	return true
}

// nameCache keeps display names; an org has far fewer users than an export has messages.
type nameCache struct {
	users Users
	org   string
	names map[string]string
}

func (n *nameCache) name(ctx context.Context, userID string) (string, error) {
	if s, ok := n.names[userID]; ok {
		return s, nil
	}
	u, err := n.users.FindUserByID(ctx, n.org, userID)
	var s string
	switch {
	case chatvault.ErrorCode(err) == chatvault.ENOTFOUND:
		s = userID
	case err != nil:
		return "", fmt.Errorf("find sender: %w", err)
	default:
		s = cmp.Or(u.DisplayName, u.Username)
	}
	n.names[userID] = s
	return s, nil
}

// replyCache remembers the recent messages of a conversation, since most replies point a little
// way back; older targets are looked up through the source. It is bounded so memory stays flat,
// and keeps the messages themselves: names and excerpts are made only for the few that a reply
// points at.
type replyCache struct {
	byID map[string]*chatvault.Message
}

const replyCacheSize = 4096

func newReplyCache() *replyCache { return &replyCache{byID: map[string]*chatvault.Message{}} }

func (c *replyCache) add(m *chatvault.Message) {
	if m.State != chatvault.StateLive {
		return
	}
	if len(c.byID) >= replyCacheSize {
		clear(c.byID)
	}
	c.byID[m.ID] = m
}

func (c *replyCache) find(ctx context.Context, src *chat.ExportSource, ec *chat.ExportConversation, names *nameCache, id string) (*Reply, error) {
	m, ok := c.byID[id]
	if !ok {
		var err error
		m, err = src.ReplyTarget(ctx, ec, id)
		if chatvault.ErrorCode(err) == chatvault.ENOTFOUND {
			return nil, nil
		} else if err != nil {
			return nil, err
		}
	}
	sender, err := names.name(ctx, m.SenderID)
	if err != nil {
		return nil, err
	}
	r := &Reply{Seq: m.Seq, Sender: sender}
	if m.State == chatvault.StateLive {
		r.Text = excerpt(m.Text, 80)
	}
	return r, nil
}

// excerpt cuts s to n characters on one line.
func excerpt(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
