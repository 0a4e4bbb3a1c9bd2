// Package storetest is the conformance suite every chatvault store passes: the contract of the
// interfaces in the root package, checked against a real engine. A store's own test calls Run with
// a function that opens a fresh, empty store.
package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/google/uuid"
)

// Opener returns a fresh, empty store, closed when the test ends.
type Opener func(t *testing.T) chatvault.Store

// Run runs the whole suite.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s chatvault.Store)
	}{
		{"Orgs", testOrgs},
		{"Users", testUsers},
		{"Sessions", testSessions},
		{"DirectConversationIsFoundAgain", testDirect},
		{"ConversationMembersMustBeEnabledUsers", testMembersValidated},
		{"AppendAllocatesGapFreeSeq", testAppendSeq},
		{"AppendIsIdempotentPerClientMsgID", testIdempotent},
		{"AppendRefusesNonMembers", testAppendNonMember},
		{"AppendChecksReplyTo", testReplyTo},
		{"FindMessagesRanges", testFindRanges},
		{"HideIsPerUser", testHide},
		{"EditKeepsVersions", testEdit},
		{"Recall", testRecall},
		{"MembershipSpans", testSpans},
		{"ReadAndClearMarkers", testMarkers},
		{"CountMessages", testCount},
		{"UserConversations", testUserConversations},
		{"OrgsAreIsolated", testOrgIsolation},
		{"TextRoundTripsExactly", testTextRoundTrip},
		{"ExportJobs", testExportJobs},

		{"RetentionSettings", testRetentionSettings},
		{"ExpireStep", testExpireStep},
		{"ExpireStepResumesAfterItsWatermark", testExpireWatermark},
		{"ExpireImportantStep", testExpireImportant},
		{"DestroyExpiredLeavesTombstones", testDestroyExpired},
		{"DestroyRecalledAndBatch", testDestroyRecalledAndBatch},
		{"CountsMatchWhatStepsDo", testCounts},
		{"UnexpireAndRestoreExpired", testUnexpireRestore},
		{"Holds", testHolds},
		{"HeldRangesAreNeverTouched", testHeldRanges},
		{"ImportanceRules", testRules},
		{"ImportanceFlagsAndStars", testImportance},
		{"PurgeRunsAndCertificateItems", testPurgeRuns},
		{"Audit", testAudit},
		{"FeedAfterCursor", testFeed},
		{"FeedCarriesTombstonesAndRestores", testFeedTombstones},
		{"SearchCandidates", testSearch},
		{"SearchTypedQueries", testTypedQueries},
		{"SearchFollowsEditsAndDeletions", testSearchDeletions},
		{"SearchPagesNewestFirst", testSearchPaging},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func id() string { return uuid.Must(uuid.NewV7()).String() }

// fixture is an org with users ready to chat.
type fixture struct {
	s     chatvault.Store
	org   *chatvault.Org
	users []*chatvault.User
}

func newFixture(t *testing.T, s chatvault.Store, users int) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{s: s}
	f.org = &chatvault.Org{ID: id(), Slug: "org-" + id()[24:], Name: "组织 Org", CreatedAt: t0}
	admin := f.newUserValue("admin")
	admin.OrgID = f.org.ID
	if err := s.CreateOrg(ctx, f.org, admin); err != nil {
		t.Fatalf("CreateOrg() = %v", err)
	}
	f.users = append(f.users, admin)
	for i := 1; i < users; i++ {
		u := f.newUserValue(fmt.Sprintf("user%d", i))
		if err := s.CreateUser(ctx, u); err != nil {
			t.Fatalf("CreateUser() = %v", err)
		}
		f.users = append(f.users, u)
	}
	return f
}

func (f *fixture) newUserValue(name string) *chatvault.User {
	orgID := ""
	if f.org != nil {
		orgID = f.org.ID
	}
	return &chatvault.User{OrgID: orgID, ID: id(), Username: name, DisplayName: "名字 " + name,
		Roles: []chatvault.Role{chatvault.RoleMember}, PasswordHash: "$argon2id$fake", CreatedAt: t0}
}

func (f *fixture) group(t *testing.T, owner int, history bool, members ...int) *chatvault.Conversation {
	t.Helper()
	c := &chatvault.Conversation{OrgID: f.org.ID, ID: id(), Kind: chatvault.Group, Title: "群 group",
		CreatedBy: f.users[owner].ID, CreatedAt: t0, HistoryVisibleToNewMembers: history}
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = f.users[m].ID
	}
	created, err := f.s.CreateConversation(context.Background(), c, ids)
	if err != nil || !created {
		t.Fatalf("CreateConversation() = %v, %v; want true, nil", created, err)
	}
	return c
}

func (f *fixture) send(t *testing.T, c *chatvault.Conversation, from int, text string) *chatvault.Message {
	t.Helper()
	m := &chatvault.Message{OrgID: f.org.ID, ID: id(), ConversationID: c.ID, SenderID: f.users[from].ID,
		ClientMsgID: id(), Kind: chatvault.KindText, Text: text, SentAt: t0}
	created, err := f.s.AppendMessage(context.Background(), m)
	if err != nil || !created {
		t.Fatalf("AppendMessage() = %v, %v; want true, nil", created, err)
	}
	return m
}

// sendAt sends text from user `from` at time at.
func (f *fixture) sendAt(t *testing.T, c *chatvault.Conversation, from int, text string, at time.Time) *chatvault.Message {
	t.Helper()
	m := &chatvault.Message{OrgID: f.org.ID, ID: id(), ConversationID: c.ID, SenderID: f.users[from].ID,
		ClientMsgID: id(), Kind: chatvault.KindText, Text: text, SentAt: at}
	created, err := f.s.AppendMessage(context.Background(), m)
	if err != nil || !created {
		t.Fatalf("AppendMessage() = %v, %v; want true, nil", created, err)
	}
	return m
}

func (f *fixture) seqs(t *testing.T, c *chatvault.Conversation, q chatvault.MessageQuery) []int64 {
	t.Helper()
	if q.Limit == 0 {
		q.Limit = 1000
	}
	ms, err := f.s.FindMessages(context.Background(), f.org.ID, c.ID, q)
	if err != nil {
		t.Fatalf("FindMessages() = %v", err)
	}
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

func wantCode(t *testing.T, op string, err error, code string) {
	t.Helper()
	if got := chatvault.ErrorCode(err); got != code {
		t.Fatalf("%s error code = %q (%v); want %q", op, got, err, code)
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
