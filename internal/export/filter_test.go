package export_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/export"
	"github.com/chatvault/chatvault/internal/export/xlsx"
	"github.com/chatvault/chatvault/internal/retention"
	"github.com/google/uuid"
)

// exported is one message line of a JSONL export.
type exported struct {
	Type           string `json:"type"`
	ConversationID string `json:"conversation_id"`
	Seq            int64  `json:"seq"`
	SenderID       string `json:"sender_id"`
	Text           string `json:"text"`
	State          string `json:"state"`
	Version        int    `json:"version"`
}

func (e exported) key() string { return fmt.Sprintf("%s/%d", e.ConversationID, e.Seq) }

// messagesOf reads the message lines of a JSONL export.
func messagesOf(t *testing.T, files *memFiles) []exported {
	t.Helper()
	var out []exported
	sc := bufio.NewScanner(files.data["messages.jsonl"])
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e exported
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("JSONL line %q: %v", sc.Text(), err)
		}
		if e.Type == "message" {
			out = append(out, e)
		}
	}
	return out
}

var vocabulary = []string{"alpha", "beta", "gamma", "delta", "合同", "会议", "预算", "报告", "ok", "🙂"}

// crowd adds to the fixed world a generated history: more conversations, random senders and
// words, members who leave and join, hides and cleared history, so that what a member may see
// differs from what is stored.
func (w *world) crowd(t *testing.T, r *rand.Rand, n int) {
	t.Helper()
	ctx := context.Background()
	people := []chatvault.Actor{w.zhang, w.alice, w.bob}
	var convs []string
	for i := range 4 {
		g, _, err := w.chat.CreateConversation(ctx, people[i%3], chat.NewConversation{Kind: chatvault.Group,
			Title: fmt.Sprintf("group %d", i), Members: []string{people[(i+1)%3].UserID, people[(i+2)%3].UserID}, HistoryVisible: i%2 == 0})
		if err != nil {
			t.Fatal(err)
		}
		convs = append(convs, g.Conversation.ID)
	}
	convs = append(convs, w.direct, w.group)
	for i := range n {
		conv := convs[r.IntN(len(convs))]
		sender := people[r.IntN(3)]
		var words []string
		for range 1 + r.IntN(4) {
			words = append(words, vocabulary[r.IntN(len(vocabulary))])
		}
		m, _, err := w.chat.Send(ctx, sender, conv, chat.SendRequest{ClientMsgID: uuid.NewString(), Text: strings.Join(words, " ")})
		if chatvault.ErrorCode(err) == chatvault.EFORBIDDEN || chatvault.ErrorCode(err) == chatvault.ENOTFOUND {
			continue // the sender left, or is not in this direct chat
		} else if err != nil {
			t.Fatal(err)
		}
		switch r.IntN(60) {
		case 0:
			w.chat.Hide(ctx, people[r.IntN(3)], conv, m.ID)
		case 1:
			if conv != w.direct {
				w.chat.RemoveMember(ctx, sender, conv, sender.UserID)
			}
		case 2:
			if conv != w.direct {
				w.chat.AddMembers(ctx, w.alice, conv, []string{w.zhang.UserID, w.bob.UserID})
			}
		case 3:
			if i > n/2 {
				w.chat.ClearHistory(ctx, people[r.IntN(3)], conv)
			}
		}
	}
}

// oracle is what a brute-force reading finds: every message of every conversation the actor
// is or was in, read through the ordinary history pages (the read path) oldest first, or, for a
// compliance officer, the whole store; then the filter applied by hand.
func (w *world) oracle(t *testing.T, a chatvault.Actor, org bool, f export.Filter) []string {
	t.Helper()
	ctx := context.Background()
	var convIDs []string
	if org {
		ids, err := w.db.FindConversationIDs(ctx, w.org.ID, "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		convIDs = ids
	} else {
		sums, err := w.chat.Conversations(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sums {
			convIDs = append(convIDs, s.Conversation.ID)
		}
	}
	slices.Sort(convIDs)
	var out []string
	for _, id := range convIDs {
		if len(f.Conversations) > 0 && !slices.Contains(f.Conversations, id) {
			continue
		}
		if len(f.Participants) > 0 {
			ps, err := w.db.FindParticipantIDs(ctx, w.org.ID, id)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(ps, func(p string) bool { return slices.Contains(f.Participants, p) }) {
				continue
			}
		}
		var ms []*chatvault.Message
		if org {
			all, err := w.db.FindMessages(ctx, w.org.ID, id, chatvault.MessageQuery{Limit: 1 << 30})
			if err != nil {
				t.Fatal(err)
			}
			ms = all
		} else {
			after := int64(0)
			for {
				page, err := w.chat.Messages(ctx, a, id, chat.Page{After: &after, Limit: chat.MaxPageLimit})
				if err != nil {
					t.Fatal(err)
				}
				ms = append(ms, page.Messages...)
				if !page.HasMore {
					break
				}
				after = page.Messages[len(page.Messages)-1].Seq
			}
		}
		for _, m := range ms {
			if m.State != chatvault.StateLive || m.ExpiredAt != nil ||
				!f.From.IsZero() && m.SentAt.Before(f.From) || !f.To.IsZero() && !m.SentAt.Before(f.To) ||
				len(f.Senders) > 0 && !slices.Contains(f.Senders, m.SenderID) ||
				f.Query != "" && !slices.Contains(strings.Fields(m.Text), f.Query) {
				continue
			}
			out = append(out, fmt.Sprintf("%s/%d", id, m.Seq))
		}
	}
	return out
}

// Every filter, alone and combined, selects exactly what a brute-force reading of the read path
// finds, for members (who never get what history does not show them) and for a compliance
// officer.
func TestFilterMatchesOracle(t *testing.T) {
	w := newWorld(t)
	r := rand.New(rand.NewPCG(1, 2))
	w.crowd(t, r, 1500)
	start, end := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC), w.clk.peek()
	mid := start.Add(end.Sub(start) / 2)
	filters := map[string]export.Filter{
		"all":               {},
		"time":              {From: start.Add(end.Sub(start) / 4), To: mid},
		"time-to":           {To: mid},
		"sender":            {Senders: []string{w.zhang.UserID}},
		"participant":       {Participants: []string{w.bob.UserID}},
		"conversation":      {Conversations: []string{w.group}},
		"query-word":        {Query: "beta"},
		"query-chinese":     {Query: "合同"},
		"combined":          {From: mid, Senders: []string{w.alice.UserID, w.bob.UserID}, Query: "会议", Participants: []string{w.zhang.UserID}},
		"direct-with-zhang": {Participants: []string{w.zhang.UserID}, Senders: []string{w.zhang.UserID}},
	}
	actors := map[string]chatvault.Actor{"alice": w.alice, "bob": w.bob, "zhang": w.zhang, "officer": w.officer}
	for an, a := range actors {
		for fn, f := range filters {
			t.Run(an+"/"+fn, func(t *testing.T) {
				org := an == "officer"
				req := export.Request{Format: export.JSONL, Filter: f}
				if org {
					req.Scope = chat.ScopeOrg
				}
				if fn == "conversation" && an == "officer" {
					req.Conversations = []string{w.group, w.direct}
					f.Conversations = req.Conversations
				}
				files, _, err := w.run(t, a, req)
				if err != nil {
					t.Fatalf("export = %v", err)
				}
				var got []string
				for _, e := range messagesOf(t, files) {
					got = append(got, e.key())
				}
				want := w.oracle(t, a, org, f)
				if !slices.Equal(got, want) {
					t.Errorf("export selected %d messages; the oracle %d\n got %v\nwant %v", len(got), len(want), got, want)
				}
			})
		}
	}
}

// While an export runs, messages are sent, edited and a retention purge expires the oldest
// ones (the export's progress hook does it between pages, so the interleaving is the same every
// run): nothing sent after the snapshot appears, nothing appears twice, and every message of the
// snapshot that the purge left is there.
func TestConcurrentChangesDuringExport(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	for range 1800 {
		w.send(t, w.alice, w.group, "before the export", "")
	}
	snapshot, err := w.db.FindConversation(ctx, w.org.ID, w.group)
	if err != nil {
		t.Fatal(err)
	}
	ret := retention.New(w.db, w.audit, w.clk, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	policy := chatvault.DefaultPolicy()
	policy.DefaultDays, policy.GraceDays = 1, 0
	if _, err := ret.SetPolicy(ctx, w.admin, policy, "test"); err != nil {
		t.Fatal(err)
	}

	req := export.Request{Format: export.JSONL, Filter: export.Filter{Conversations: []string{w.group}}}
	if err := req.Validate(); err != nil {
		t.Fatal(err)
	}
	src, err := w.chat.OpenExport(ctx, w.alice, req.Scope, chatvault.AuditEntry{})
	if err != nil {
		t.Fatal(err)
	}
	files := &memFiles{}
	wr, err := xlsx.NewWriter(files, &req, "messages")
	if err != nil {
		t.Fatal(err)
	}
	pages, sent, purgedAt := 0, 0, int64(0)
	ex := &export.Exporter{Users: w.db, Progress: func(p export.Progress) {
		pages++
		for range 20 {
			w.send(t, w.bob, w.group, "during the export", "")
			sent++
		}
		// An edit of a message the export has not reached yet.
		ms, err := w.db.FindMessages(ctx, w.org.ID, w.group, chatvault.MessageQuery{After: p.Rows + 200, Limit: 1})
		if err == nil && len(ms) == 1 && ms[0].SenderID == w.alice.UserID && ms[0].State == chatvault.StateLive && ms[0].ExpiredAt == nil {
			if _, err := w.chat.Edit(ctx, w.alice, w.group, ms[0].ID, "edited during the export", 0); err != nil {
				t.Errorf("Edit() = %v", err)
			}
		}
		if pages == 2 {
			// Time moves on two days: the purge expires the oldest messages, which the export has
			// already passed, and destroys them.
			w.clk.add(48 * time.Hour)
			if _, err := ret.Run(ctx, w.org.ID, w.admin.UserID, false); err != nil {
				t.Errorf("retention Run() = %v", err)
			}
			purgedAt = p.Rows
		}
	}}
	if _, err := ex.Run(ctx, w.org.ID, src, &req, wr); err != nil {
		t.Fatalf("export = %v", err)
	}
	if sent == 0 || purgedAt == 0 {
		t.Fatalf("the hook sent %d messages and purged after %d rows; the test did not interleave", sent, purgedAt)
	}
	got := messagesOf(t, files)
	seen := map[int64]bool{}
	for _, e := range got {
		if seen[e.Seq] {
			t.Errorf("seq %d exported twice", e.Seq)
		}
		seen[e.Seq] = true
		if e.Seq > snapshot.LastSeq {
			t.Errorf("seq %d exported; the snapshot ends at %d", e.Seq, snapshot.LastSeq)
		}
	}
	// Every message of the snapshot the purge did not take is there.
	after := int64(0)
	for {
		ms, err := w.db.FindMessages(ctx, w.org.ID, w.group, chatvault.MessageQuery{After: after, Before: snapshot.LastSeq + 1, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			if m.State == chatvault.StateLive && m.ExpiredAt == nil && !seen[m.Seq] {
				t.Errorf("seq %d (%s) of the snapshot is missing", m.Seq, m.State)
			}
		}
		if len(ms) < 1000 {
			break
		}
		after = ms[len(ms)-1].Seq
	}
	if n := int64(len(got)); n < snapshot.LastSeq-purgedAt-1 || n > snapshot.LastSeq {
		t.Errorf("exported %d of a %d-message snapshot", n, snapshot.LastSeq)
	}
}
