package chat

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/chatvault/chatvault"
)

// AuditExportOrg is the audit action of an org-wide export.
const AuditExportOrg = "export_org"

// ExportSource is what one actor may export, read through the same rules as history: a member
// reads through Service.read (membership windows, cleared history, hides, their own retention
// window, recalled content redacted); a compliance officer reads every message of the org that
// still has content, recalled ones and edit history included, and only after the export's audit
// entry is written.
type ExportSource struct {
	s   *Service
	a   chatvault.Actor
	org bool
}

// ExportConversation is one conversation of an export's snapshot: its messages up to
// Conversation.LastSeq, fixed when the snapshot was taken, so anything sent later is out.
type ExportConversation struct {
	Conversation *chatvault.Conversation
	acc          *access // nil for an org-wide export
}

// OpenExport checks that the actor may export at the scope asked (ScopeMine or ScopeOrg). An
// org-wide export is a read by a non-participant: entry (its Action, Target and Details; the
// rest is filled here) is recorded before OpenExport returns, and without it there is no export.
func (s *Service) OpenExport(ctx context.Context, a chatvault.Actor, scope string, entry chatvault.AuditEntry) (*ExportSource, error) {
	switch cmp.Or(scope, ScopeMine) {
	case ScopeMine:
		return &ExportSource{s: s, a: a}, nil
	case ScopeOrg:
	default:
		return nil, chatvault.Invalidf("scope", "scope is %q or %q", ScopeMine, ScopeOrg)
	}
	if err := chatvault.Authorize(a, chatvault.PermExportOrg); err != nil {
		return nil, err
	}
	if s.cfg.Audit == nil {
		return nil, chatvault.Errorf(chatvault.EUNAVAILABLE, "org-wide export is off: this server has no audit log to record it in")
	}
	entry.OrgID, entry.ActorID, entry.At = a.OrgID, a.UserID, s.clock.Now()
	entry.Action = cmp.Or(entry.Action, AuditExportOrg)
	entry.Outcome = cmp.Or(entry.Outcome, "ok")
	if err := s.cfg.Audit.Record(ctx, &entry); err != nil {
		return nil, fmt.Errorf("record org-wide export: %w", err)
	}
	return &ExportSource{s: s, a: a, org: true}, nil
}

// Conversations takes the export's snapshot: the conversations in scope, in id order, each with
// its last seq as it is now. ids narrows to those conversations (each must be visible to the
// actor: ENOTFOUND, field "conversation", otherwise); participants narrows to conversations any
// of these users is or was in.
func (x *ExportSource) Conversations(ctx context.Context, ids, participants []string) ([]*ExportConversation, error) {
	s, a := x.s, x.a
	var out []*ExportConversation
	add := func(conv *chatvault.Conversation, acc *access) error {
		if len(participants) > 0 {
			ok, err := x.hasParticipant(ctx, conv.ID, participants)
			if err != nil || !ok {
				return err
			}
		}
		out = append(out, &ExportConversation{Conversation: conv, acc: acc})
		return nil
	}
	notFound := func(id string) error {
		return &chatvault.Error{Code: chatvault.ENOTFOUND, Field: "conversation", Message: fmt.Sprintf("conversation %s not found", id)}
	}
	switch {
	case len(ids) > 0:
		for _, id := range slices.Compact(slices.Sorted(slices.Values(ids))) {
			if !validID(id) {
				return nil, notFound(id)
			}
			if x.org {
				conv, err := s.store.FindConversation(ctx, a.OrgID, id)
				if chatvault.ErrorCode(err) == chatvault.ENOTFOUND {
					return nil, notFound(id)
				} else if err != nil {
					return nil, err
				}
				if err := add(conv, nil); err != nil {
					return nil, err
				}
				continue
			}
			acc, err := s.open(ctx, a, id)
			if chatvault.ErrorCode(err) == chatvault.ENOTFOUND {
				return nil, notFound(id)
			} else if err != nil {
				return nil, err
			}
			if err := add(acc.conv, acc); err != nil {
				return nil, err
			}
		}
	case x.org:
		for after := ""; ; {
			page, err := s.store.FindConversationIDs(ctx, a.OrgID, after, 500)
			if err != nil {
				return nil, err
			}
			for _, id := range page {
				conv, err := s.store.FindConversation(ctx, a.OrgID, id)
				if err != nil {
					return nil, err
				}
				if err := add(conv, nil); err != nil {
					return nil, err
				}
			}
			if len(page) < 500 {
				break
			}
			after = page[len(page)-1]
		}
	default:
		ucs, err := s.store.FindUserConversations(ctx, a.OrgID, a.UserID)
		if err != nil {
			return nil, err
		}
		for _, uc := range ucs {
			conv, part := uc.Conversation, uc.Participant
			if err := add(&conv, &access{conv: &conv, part: &part, sentFrom: s.windowStart(a)}); err != nil {
				return nil, err
			}
		}
	}
	slices.SortFunc(out, func(p, q *ExportConversation) int { return cmp.Compare(p.Conversation.ID, q.Conversation.ID) })
	return out, nil
}

func (x *ExportSource) hasParticipant(ctx context.Context, convID string, users []string) (bool, error) {
	ps, err := x.s.store.FindParticipants(ctx, x.a.OrgID, convID)
	if err != nil {
		return false, err
	}
	for _, p := range ps {
		if slices.Contains(users, p.UserID) {
			return true, nil
		}
	}
	return false, nil
}

// Page reads up to limit messages of the snapshot with seq > after, in seq order. A member gets
// exactly what history shows them (recalled and purged messages as placeholders); an org-wide
// export gets every message that still has content, recalled ones with their text.
func (x *ExportSource) Page(ctx context.Context, ec *ExportConversation, after int64, limit int) ([]*chatvault.Message, error) {
	conv := ec.Conversation
	if after >= conv.LastSeq {
		return nil, nil
	}
	if !x.org {
		return x.s.read(ctx, ec.acc, after, conv.LastSeq+1, false, limit)
	}
	ms, err := x.s.store.FindMessages(ctx, conv.OrgID, conv.ID, chatvault.MessageQuery{After: after, Before: conv.LastSeq + 1, Limit: limit})
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if m.ExpiredAt != nil { // expired by retention: gone for everyone, compliance included
			redact(m)
		}
	}
	return ms, nil
}

// Versions returns the earlier texts of an edited message, oldest first, for a message Page
// returned with content.
func (x *ExportSource) Versions(ctx context.Context, ec *ExportConversation, m *chatvault.Message) ([]*chatvault.MessageVersion, error) {
	if m.Version <= 1 || m.State == chatvault.StatePurged || (!x.org && m.State != chatvault.StateLive) {
		return nil, nil
	}
	return x.s.store.FindMessageVersions(ctx, x.a.OrgID, ec.Conversation.ID, m.Seq)
}

// ReplyTarget finds the message a reply points at, if the exporter may see it.
func (x *ExportSource) ReplyTarget(ctx context.Context, ec *ExportConversation, msgID string) (*chatvault.Message, error) {
	if !x.org {
		return x.s.visibleMessage(ctx, ec.acc, msgID)
	}
	if !validID(msgID) {
		return nil, chatvault.Errorf(chatvault.ENOTFOUND, "message %s not found", msgID)
	}
	m, err := x.s.store.FindMessageByID(ctx, x.a.OrgID, ec.Conversation.ID, msgID)
	if err != nil {
		return nil, err
	}
	if m.ExpiredAt != nil {
		redact(m)
	}
	return m, nil
}

// Org reports whether the export is org-wide.
func (x *ExportSource) Org() bool { return x.org }

// Members lists everyone who is or was in the conversation, for naming a direct chat by its two
// people.
func (x *ExportSource) Members(ctx context.Context, ec *ExportConversation) ([]string, error) {
	ps, err := x.s.store.FindParticipants(ctx, x.a.OrgID, ec.Conversation.ID)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.UserID)
	}
	return out, nil
}
