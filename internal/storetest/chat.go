package storetest

// Core chat: orgs, users, devices, conversations, membership and messages.

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
)

func testOrgs(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 1)
	got, err := s.FindOrgBySlug(ctx, f.org.Slug)
	if err != nil || got.ID != f.org.ID || got.Name != f.org.Name || !got.CreatedAt.Equal(t0) {
		t.Fatalf("FindOrgBySlug() = %+v, %v; want %+v", got, err, f.org)
	}
	dup := &chatvault.Org{ID: id(), Slug: f.org.Slug, Name: "x", CreatedAt: t0}
	admin := f.newUserValue("admin2")
	admin.OrgID = dup.ID
	wantCode(t, "CreateOrg(same slug)", s.CreateOrg(ctx, dup, admin), chatvault.ECONFLICT)
	orgs, err := s.FindOrgs(ctx)
	if err != nil || len(orgs) != 1 {
		t.Fatalf("FindOrgs() = %d orgs, %v; want 1 (a failed CreateOrg must leave nothing behind)", len(orgs), err)
	}
	if _, err := s.FindUserByUsername(ctx, dup.ID, "admin2"); chatvault.ErrorCode(err) != chatvault.ENOTFOUND {
		t.Fatalf("admin of a refused org exists: %v", err)
	}
	_, err = s.FindOrgBySlug(ctx, "no-such-org")
	wantCode(t, "FindOrgBySlug(missing)", err, chatvault.ENOTFOUND)

	// The time zone: UTC until set, then what was set, by id and by slug.
	if got, err := s.FindOrg(ctx, f.org.ID); err != nil || got.Slug != f.org.Slug || got.TimeZone != chatvault.DefaultTimeZone {
		t.Fatalf("FindOrg() = %+v, %v; want the org in %s", got, err, chatvault.DefaultTimeZone)
	}
	if err := s.SetOrgTimeZone(ctx, f.org.ID, "Asia/Shanghai"); err != nil {
		t.Fatalf("SetOrgTimeZone() = %v", err)
	}
	if got, err := s.FindOrgBySlug(ctx, f.org.Slug); err != nil || got.TimeZone != "Asia/Shanghai" {
		t.Fatalf("FindOrgBySlug() after SetOrgTimeZone = %+v, %v; want Asia/Shanghai", got, err)
	}
	// Search stemming: on for a new org, then as set.
	if !f.org.SearchStemming {
		t.Errorf("CreateOrg left SearchStemming off; want the default, on")
	}
	if err := s.SetOrgSearchStemming(ctx, f.org.ID, false); err != nil {
		t.Fatalf("SetOrgSearchStemming(false) = %v", err)
	}
	if got, err := s.FindOrg(ctx, f.org.ID); err != nil || got.SearchStemming {
		t.Fatalf("FindOrg() after SetOrgSearchStemming(false) = %+v, %v; want it off", got, err)
	}
	wantCode(t, "SetOrgSearchStemming(missing)", s.SetOrgSearchStemming(ctx, id(), true), chatvault.ENOTFOUND)
	_, err = s.FindOrg(ctx, id())
	wantCode(t, "FindOrg(missing)", err, chatvault.ENOTFOUND)
	wantCode(t, "SetOrgTimeZone(missing)", s.SetOrgTimeZone(ctx, id(), "UTC"), chatvault.ENOTFOUND)
}

func testUsers(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 3)
	u := f.users[1]
	got, err := s.FindUserByUsername(ctx, f.org.ID, u.Username)
	if err != nil || got.ID != u.ID || got.DisplayName != u.DisplayName || !equal(got.Roles, u.Roles) || got.PasswordHash != u.PasswordHash {
		t.Fatalf("FindUserByUsername() = %+v, %v; want %+v", got, err, u)
	}
	dup := f.newUserValue(u.Username)
	err = s.CreateUser(ctx, dup)
	wantCode(t, "CreateUser(taken username)", err, chatvault.ECONFLICT)

	disabled, roles := true, []chatvault.Role{chatvault.RoleMember, chatvault.RoleAuditor}
	upd, err := s.UpdateUser(ctx, f.org.ID, u.ID, chatvault.UserUpdate{Disabled: &disabled, Roles: roles})
	if err != nil || !upd.Disabled || !equal(upd.Roles, roles) || upd.DisplayName != u.DisplayName {
		t.Fatalf("UpdateUser() = %+v, %v", upd, err)
	}
	got, _ = s.FindUserByID(ctx, f.org.ID, u.ID)
	if !got.Disabled || !equal(got.Roles, roles) {
		t.Fatalf("after UpdateUser, FindUserByID() = %+v", got)
	}
	_, err = s.UpdateUser(ctx, f.org.ID, id(), chatvault.UserUpdate{Disabled: &disabled})
	wantCode(t, "UpdateUser(missing)", err, chatvault.ENOTFOUND)

	// A password someone else chose is marked until the user sets their own; the mark reaches
	// the session, which is what enforces it.
	hash, must := "$argon2id$other", true
	if upd, err := s.UpdateUser(ctx, f.org.ID, u.ID, chatvault.UserUpdate{PasswordHash: &hash, MustChangePassword: &must}); err != nil ||
		!upd.MustChangePassword || upd.PasswordHash != hash || !upd.Disabled {
		t.Fatalf("UpdateUser(must change) = %+v, %v", upd, err)
	}
	d := &chatvault.Device{OrgID: f.org.ID, ID: id(), UserID: u.ID, Name: "d", CreatedAt: t0, TokenHash: []byte("hash-" + id())}
	if err := s.CreateDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	if sess, err := s.FindSession(ctx, d.TokenHash); err != nil || !sess.User.MustChangePassword {
		t.Fatalf("FindSession() of a user who must change their password = %+v, %v", sess, err)
	}
	must = false
	if got, err := s.UpdateUser(ctx, f.org.ID, u.ID, chatvault.UserUpdate{MustChangePassword: &must}); err != nil || got.MustChangePassword {
		t.Fatalf("UpdateUser(changed) = %+v, %v", got, err)
	}
	if other, _ := s.FindUserByID(ctx, f.org.ID, f.users[0].ID); other.MustChangePassword {
		t.Fatalf("a user nobody reset has MustChangePassword")
	}

	page1, err := s.FindUsers(ctx, f.org.ID, chatvault.UserFilter{Limit: 2})
	if err != nil || len(page1) != 2 {
		t.Fatalf("FindUsers(limit 2) = %d, %v", len(page1), err)
	}
	page2, _ := s.FindUsers(ctx, f.org.ID, chatvault.UserFilter{AfterUsername: page1[1].Username, Limit: 2})
	if len(page2) != 1 || page2[0].Username <= page1[1].Username {
		t.Fatalf("FindUsers(after %q) = %d users; want the 1 remaining", page1[1].Username, len(page2))
	}
}

func testSessions(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 2)
	u := f.users[1]
	d := &chatvault.Device{OrgID: f.org.ID, ID: id(), UserID: u.ID, Name: "手机 phone", CreatedAt: t0, TokenHash: []byte("hash-" + id())}
	if err := s.CreateDevice(ctx, d); err != nil {
		t.Fatal(err)
	}
	sess, err := s.FindSession(ctx, d.TokenHash)
	if err != nil || sess.Device.ID != d.ID || sess.User.ID != u.ID || sess.User.OrgID != f.org.ID || sess.Device.RevokedAt != nil {
		t.Fatalf("FindSession() = %+v, %v", sess, err)
	}
	_, err = s.FindSession(ctx, []byte("unknown"))
	wantCode(t, "FindSession(unknown)", err, chatvault.ENOTFOUND)
	ds, _ := s.FindDevices(ctx, f.org.ID, u.ID)
	if len(ds) != 1 || ds[0].Name != d.Name || ds[0].LastSeenAt != nil {
		t.Fatalf("FindDevices() = %+v; want the one device, never seen since sign-in", ds)
	}
	// The last use is kept, shown in the list and in the session (the idle timeout reads it).
	if err := s.TouchDevice(ctx, f.org.ID, u.ID, d.ID, t0.Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if sess, _ := s.FindSession(ctx, d.TokenHash); sess.Device.LastSeenAt == nil || !sess.Device.LastSeenAt.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("after TouchDevice, session LastSeenAt = %v", sess.Device.LastSeenAt)
	}
	if ds, _ := s.FindDevices(ctx, f.org.ID, u.ID); len(ds) != 1 || ds[0].LastSeenAt == nil {
		t.Fatalf("after TouchDevice, FindDevices() = %+v", ds)
	}
	wantCode(t, "RevokeDevice(other user's device)", s.RevokeDevice(ctx, f.org.ID, f.users[0].ID, d.ID, t0), chatvault.ENOTFOUND)
	if err := s.RevokeDevice(ctx, f.org.ID, u.ID, d.ID, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	sess, _ = s.FindSession(ctx, d.TokenHash)
	if sess.Device.RevokedAt == nil || !sess.Device.RevokedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("after RevokeDevice, RevokedAt = %v", sess.Device.RevokedAt)
	}
	if ds, _ := s.FindDevices(ctx, f.org.ID, u.ID); len(ds) != 0 {
		t.Fatalf("FindDevices() after revoke = %d devices; want 0", len(ds))
	}
	wantCode(t, "RevokeDevice(twice)", s.RevokeDevice(ctx, f.org.ID, u.ID, d.ID, t0), chatvault.ENOTFOUND)
}

func testDirect(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 3)
	key := f.users[1].ID + ":" + f.users[2].ID
	first := &chatvault.Conversation{OrgID: f.org.ID, ID: id(), Kind: chatvault.Direct, CreatedBy: f.users[1].ID, CreatedAt: t0, DirectKey: key}
	if created, err := s.CreateConversation(ctx, first, []string{f.users[2].ID}); err != nil || !created {
		t.Fatalf("CreateConversation() = %v, %v", created, err)
	}
	again := &chatvault.Conversation{OrgID: f.org.ID, ID: id(), Kind: chatvault.Direct, CreatedBy: f.users[2].ID, CreatedAt: t0, DirectKey: key}
	created, err := s.CreateConversation(ctx, again, []string{f.users[1].ID})
	if err != nil || created || again.ID != first.ID {
		t.Fatalf("CreateConversation(same pair) = %v, %v, id %s; want false, nil, id %s", created, err, again.ID, first.ID)
	}
	_, err = s.AddMembers(ctx, f.org.ID, first.ID, []string{f.users[0].ID}, t0)
	wantCode(t, "AddMembers(direct)", err, chatvault.ECONFLICT)
}

func testMembersValidated(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 3)
	other := newFixture(t, s, 2)
	disabled := true
	s.UpdateUser(ctx, f.org.ID, f.users[2].ID, chatvault.UserUpdate{Disabled: &disabled})
	for name, member := range map[string]string{
		"unknown user":        id(),
		"disabled user":       f.users[2].ID,
		"user of another org": other.users[1].ID,
	} {
		c := &chatvault.Conversation{OrgID: f.org.ID, ID: id(), Kind: chatvault.Group, CreatedBy: f.users[0].ID, CreatedAt: t0}
		_, err := s.CreateConversation(ctx, c, []string{f.users[1].ID, member})
		wantCode(t, "CreateConversation("+name+")", err, chatvault.EINVALID)
		if _, err := s.FindConversation(ctx, f.org.ID, c.ID); chatvault.ErrorCode(err) != chatvault.ENOTFOUND {
			t.Fatalf("a refused conversation (%s) was stored: %v", name, err)
		}
	}
}

func testAppendSeq(t *testing.T, s chatvault.Store) {
	f := newFixture(t, s, 4)
	c := f.group(t, 0, false, 1, 2, 3)
	const senders, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, senders*each)
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m := &chatvault.Message{OrgID: f.org.ID, ID: id(), ConversationID: c.ID, SenderID: f.users[g%4].ID,
					ClientMsgID: fmt.Sprintf("g%d-%d", g, i), Kind: chatvault.KindText, Text: "并发 concurrent", SentAt: t0}
				if _, err := s.AppendMessage(context.Background(), m); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("AppendMessage() = %v", err)
	}
	got := f.seqs(t, c, chatvault.MessageQuery{})
	if len(got) != senders*each {
		t.Fatalf("stored %d messages; want %d", len(got), senders*each)
	}
	for i, seq := range got {
		if seq != int64(i+1) {
			t.Fatalf("seq[%d] = %d; want %d (gap-free from 1)", i, seq, i+1)
		}
	}
	conv, _ := s.FindConversation(context.Background(), f.org.ID, c.ID)
	if conv.LastSeq != senders*each {
		t.Fatalf("LastSeq = %d; want %d", conv.LastSeq, senders*each)
	}
}

func testIdempotent(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 2)
	c := f.group(t, 0, false, 1)
	first := f.send(t, c, 1, "第一次 first")
	retry := &chatvault.Message{OrgID: f.org.ID, ID: id(), ConversationID: c.ID, SenderID: f.users[1].ID,
		ClientMsgID: first.ClientMsgID, Kind: chatvault.KindText, Text: "第一次 first", SentAt: t0.Add(time.Second)}
	created, err := s.AppendMessage(ctx, retry)
	if err != nil || created || retry.ID != first.ID || retry.Seq != first.Seq || !retry.SentAt.Equal(first.SentAt) {
		t.Fatalf("AppendMessage(retry) = %v, %v, %+v; want the first message back", created, err, retry)
	}
	// The same client id from another sender is another message.
	other := &chatvault.Message{OrgID: f.org.ID, ID: id(), ConversationID: c.ID, SenderID: f.users[0].ID,
		ClientMsgID: first.ClientMsgID, Kind: chatvault.KindText, Text: "other", SentAt: t0}
	if created, err := s.AppendMessage(ctx, other); err != nil || !created || other.Seq != 2 {
		t.Fatalf("AppendMessage(same client id, other sender) = %v, %v, seq %d; want new message seq 2", created, err, other.Seq)
	}
	// So is the same client id from the same sender in another conversation.
	c2 := f.group(t, 1, false, 0)
	elsewhere := &chatvault.Message{OrgID: f.org.ID, ID: id(), ConversationID: c2.ID, SenderID: f.users[1].ID,
		ClientMsgID: first.ClientMsgID, Kind: chatvault.KindText, Text: "elsewhere 别处", SentAt: t0}
	if created, err := s.AppendMessage(ctx, elsewhere); err != nil || !created || elsewhere.Seq != 1 || elsewhere.ID == first.ID {
		t.Fatalf("AppendMessage(same client id, other conversation) = %v, %v, seq %d, id %s; want a new message seq 1 with its own id",
			created, err, elsewhere.Seq, elsewhere.ID)
	}
	// A message sent with a client id is named by it, so that any server finds the retry.
	for _, m := range []*chatvault.Message{first, other, elsewhere} {
		if want := chatvault.ClientMessageID(m.OrgID, m.ConversationID, m.SenderID, m.ClientMsgID); m.ID != want {
			t.Errorf("message %d of %s has id %s; want %s, derived from its client id", m.Seq, m.ConversationID, m.ID, want)
		}
	}
}

func testAppendNonMember(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 3)
	c := f.group(t, 0, false, 1)
	m := &chatvault.Message{OrgID: f.org.ID, ID: id(), ConversationID: c.ID, SenderID: f.users[2].ID, Kind: chatvault.KindText, Text: "x", SentAt: t0}
	_, err := s.AppendMessage(ctx, m)
	wantCode(t, "AppendMessage(never a member)", err, chatvault.ENOTFOUND)
	if err := s.RemoveMember(ctx, f.org.ID, c.ID, f.users[1].ID, t0); err != nil {
		t.Fatal(err)
	}
	m.SenderID = f.users[1].ID
	_, err = s.AppendMessage(ctx, m)
	wantCode(t, "AppendMessage(former member)", err, chatvault.EFORBIDDEN)
	if got := f.seqs(t, c, chatvault.MessageQuery{}); len(got) != 0 {
		t.Fatalf("refused sends stored %d messages", len(got))
	}
}

func testReplyTo(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 2)
	c := f.group(t, 0, false, 1)
	c2 := f.group(t, 0, false, 1)
	elsewhere := f.send(t, c2, 0, "elsewhere")
	m := &chatvault.Message{OrgID: f.org.ID, ID: id(), ConversationID: c.ID, SenderID: f.users[1].ID, Kind: chatvault.KindText,
		Text: "reply", ReplyTo: elsewhere.ID, SentAt: t0}
	_, err := s.AppendMessage(ctx, m)
	wantCode(t, "AppendMessage(reply_to in another conversation)", err, chatvault.EINVALID)
	target := f.send(t, c, 0, "target")
	m.ReplyTo = target.ID
	if _, err := s.AppendMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	got, _ := s.FindMessageByID(ctx, f.org.ID, c.ID, m.ID)
	if got.ReplyTo != target.ID || got.Seq != 2 {
		t.Fatalf("FindMessageByID() = reply_to %q seq %d; want %q, 2 (a refused append must not use up a seq)", got.ReplyTo, got.Seq, target.ID)
	}
}

func testFindRanges(t *testing.T, s chatvault.Store) {
	f := newFixture(t, s, 2)
	c := f.group(t, 0, false, 1)
	for i := range 10 {
		f.send(t, c, i%2, fmt.Sprint(i))
	}
	for _, tc := range []struct {
		q    chatvault.MessageQuery
		want []int64
	}{
		{chatvault.MessageQuery{After: 0, Before: 0, Limit: 3}, []int64{1, 2, 3}},
		{chatvault.MessageQuery{After: 0, Before: 0, Desc: true, Limit: 3}, []int64{10, 9, 8}},
		{chatvault.MessageQuery{After: 4, Before: 7, Limit: 10}, []int64{5, 6}},
		{chatvault.MessageQuery{After: 4, Before: 7, Desc: true, Limit: 1}, []int64{6}},
		{chatvault.MessageQuery{After: 10, Limit: 10}, []int64{}},
	} {
		if got := f.seqs(t, c, tc.q); !equal(got, tc.want) {
			t.Errorf("FindMessages(%+v) = %v; want %v", tc.q, got, tc.want)
		}
	}
}

func testHide(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 2)
	c := f.group(t, 0, false, 1)
	for range 3 {
		f.send(t, c, 0, "m")
	}
	for range 2 { // hiding twice is fine
		if err := s.HideMessage(ctx, f.org.ID, c.ID, f.users[1].ID, 2, t0); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.seqs(t, c, chatvault.MessageQuery{HiddenFor: f.users[1].ID}); !equal(got, []int64{1, 3}) {
		t.Fatalf("FindMessages(hidden for user1) = %v; want [1 3]", got)
	}
	if got := f.seqs(t, c, chatvault.MessageQuery{HiddenFor: f.users[0].ID}); !equal(got, []int64{1, 2, 3}) {
		t.Fatalf("FindMessages(hidden for user0) = %v; want all three", got)
	}
}

func testEdit(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 2)
	c := f.group(t, 0, false, 1)
	m := f.send(t, c, 0, "原文 original")
	e1, err := s.EditMessage(ctx, f.org.ID, c.ID, m.Seq, 1, "第二版 second", t0.Add(time.Minute))
	if err != nil || e1.Version != 2 || e1.Text != "第二版 second" || e1.EditedAt == nil {
		t.Fatalf("EditMessage() = %+v, %v", e1, err)
	}
	_, err = s.EditMessage(ctx, f.org.ID, c.ID, m.Seq, 1, "stale", t0)
	wantCode(t, "EditMessage(stale version)", err, chatvault.ECONFLICT)
	if _, err := s.EditMessage(ctx, f.org.ID, c.ID, m.Seq, 2, "third", t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	vs, err := s.FindMessageVersions(ctx, f.org.ID, c.ID, m.Seq)
	if err != nil || len(vs) != 2 || vs[0].Text != "原文 original" || vs[0].Version != 1 || !vs[0].CreatedAt.Equal(t0) ||
		vs[1].Text != "第二版 second" || !vs[1].CreatedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("FindMessageVersions() = %v, %v", vs, err)
	}
	got, _ := s.FindMessageByID(ctx, f.org.ID, c.ID, m.ID)
	if got.Text != "third" || got.Version != 3 {
		t.Fatalf("after edits, message = %q v%d; want third v3", got.Text, got.Version)
	}
}

func testRecall(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 2)
	c := f.group(t, 0, false, 1)
	m := f.send(t, c, 0, "oops")
	r, err := s.RecallMessage(ctx, f.org.ID, c.ID, m.Seq, t0.Add(time.Second))
	if err != nil || r.State != chatvault.StateRecalled || r.StateAt == nil {
		t.Fatalf("RecallMessage() = %+v, %v", r, err)
	}
	_, err = s.RecallMessage(ctx, f.org.ID, c.ID, m.Seq, t0)
	wantCode(t, "RecallMessage(twice)", err, chatvault.ECONFLICT)
	_, err = s.EditMessage(ctx, f.org.ID, c.ID, m.Seq, 1, "edit after recall", t0)
	wantCode(t, "EditMessage(recalled)", err, chatvault.ECONFLICT)
}

func testSpans(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 4)
	c := f.group(t, 0, false)
	f.send(t, c, 0, "before joining") // seq 1
	added, err := s.AddMembers(ctx, f.org.ID, c.ID, []string{f.users[1].ID, f.users[0].ID}, t0)
	if err != nil || !equal(added, []string{f.users[1].ID}) {
		t.Fatalf("AddMembers() = %v, %v; want only the new member added", added, err)
	}
	f.send(t, c, 0, "while member") // seq 2
	if err := s.RemoveMember(ctx, f.org.ID, c.ID, f.users[1].ID, t0); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "RemoveMember(twice)", s.RemoveMember(ctx, f.org.ID, c.ID, f.users[1].ID, t0), chatvault.ENOTFOUND)
	f.send(t, c, 0, "after leaving") // seq 3
	// Leave and come back with nothing sent in between: the span reopens rather than splitting.
	s.AddMembers(ctx, f.org.ID, c.ID, []string{f.users[1].ID}, t0)
	s.RemoveMember(ctx, f.org.ID, c.ID, f.users[1].ID, t0)
	s.AddMembers(ctx, f.org.ID, c.ID, []string{f.users[1].ID}, t0)
	f.send(t, c, 0, "back again") // seq 4

	p, err := s.FindParticipant(ctx, f.org.ID, c.ID, f.users[1].ID)
	if err != nil || !p.Active || p.Role != chatvault.MemberMember {
		t.Fatalf("FindParticipant() = %+v, %v", p, err)
	}
	visible := []int64{}
	for seq := int64(1); seq <= 4; seq++ {
		if p.Sees(seq) {
			visible = append(visible, seq)
		}
	}
	if !equal(visible, []int64{2, 4}) {
		t.Fatalf("spans %+v see %v; want [2 4]", p.Spans, visible)
	}
	if len(p.Spans) != 2 {
		t.Fatalf("spans = %+v; want 2 (the quick rejoin reopens the second)", p.Spans)
	}

	h := f.group(t, 0, true)
	f.send(t, h, 0, "history")
	s.AddMembers(ctx, f.org.ID, h.ID, []string{f.users[2].ID}, t0)
	p, _ = s.FindParticipant(ctx, f.org.ID, h.ID, f.users[2].ID)
	if !p.Sees(1) {
		t.Fatalf("history-visible group: a new member does not see seq 1 (spans %+v)", p.Spans)
	}
	_, err = s.FindParticipant(ctx, f.org.ID, h.ID, f.users[3].ID)
	wantCode(t, "FindParticipant(never a member)", err, chatvault.ENOTFOUND)
	ps, _ := s.FindParticipants(ctx, f.org.ID, h.ID)
	if len(ps) != 2 {
		t.Fatalf("FindParticipants() = %d; want 2", len(ps))
	}
}

func testMarkers(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 2)
	c := f.group(t, 0, false, 1)
	for range 5 {
		f.send(t, c, 0, "m")
	}
	for _, tc := range []struct{ set, want int64 }{{3, 3}, {2, 3}, {99, 5}} {
		if got, err := s.SetReadSeq(ctx, f.org.ID, c.ID, f.users[1].ID, tc.set, t0); err != nil || got != tc.want {
			t.Fatalf("SetReadSeq(%d) = %d, %v; want %d (never lower, never past last seq)", tc.set, got, err, tc.want)
		}
	}
	f.send(t, c, 0, "m")
	cleared, err := s.ClearHistory(ctx, f.org.ID, c.ID, f.users[1].ID, t0)
	if err != nil || cleared != 6 {
		t.Fatalf("ClearHistory() = %d, %v; want 6", cleared, err)
	}
	p, _ := s.FindParticipant(ctx, f.org.ID, c.ID, f.users[1].ID)
	if p.ClearedSeq != 6 || p.ReadSeq != 6 || p.Sees(6) {
		t.Fatalf("after clear, participant = %+v; want cleared and read at 6", p)
	}
	_, err = s.SetReadSeq(ctx, f.org.ID, id(), f.users[1].ID, 1, t0)
	wantCode(t, "SetReadSeq(unknown conversation)", err, chatvault.ENOTFOUND)
}

func testCount(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 2)
	c := f.group(t, 0, false, 1)
	for i := range 6 {
		f.send(t, c, i%2, "m") // user0 sends 1,3,5; user1 sends 2,4,6
	}
	s.RecallMessage(ctx, f.org.ID, c.ID, 3, t0)
	s.HideMessage(ctx, f.org.ID, c.ID, f.users[1].ID, 5, t0)
	n, err := s.CountMessages(ctx, f.org.ID, c.ID, chatvault.MessageCount{After: 0, UpTo: 6, ExcludeSender: f.users[1].ID, HiddenFor: f.users[1].ID, Limit: 100})
	if err != nil || n != 1 {
		t.Fatalf("CountMessages() = %d, %v; want 1 (seq 1: 3 is recalled, 5 hidden, evens are own)", n, err)
	}
	n, _ = s.CountMessages(ctx, f.org.ID, c.ID, chatvault.MessageCount{After: 0, UpTo: 6, Limit: 2})
	if n != 2 {
		t.Fatalf("CountMessages(limit 2) = %d; want 2", n)
	}
}

func testUserConversations(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 3)
	a := f.group(t, 0, false, 1)
	b := f.group(t, 1, false, 2)
	f.group(t, 0, false, 2)
	s.RemoveMember(ctx, f.org.ID, b.ID, f.users[1].ID, t0)
	ucs, err := s.FindUserConversations(ctx, f.org.ID, f.users[1].ID)
	if err != nil || len(ucs) != 2 {
		t.Fatalf("FindUserConversations() = %d, %v; want 2", len(ucs), err)
	}
	for _, uc := range ucs {
		switch uc.Conversation.ID {
		case a.ID:
			if !uc.Participant.Active || len(uc.Participant.Spans) != 1 {
				t.Errorf("conversation a: %+v", uc.Participant)
			}
		case b.ID:
			if uc.Participant.Active || uc.Participant.Role != chatvault.MemberOwner || uc.Participant.Spans[0].ToSeq == nil {
				t.Errorf("conversation b (left): %+v", uc.Participant)
			}
		default:
			t.Errorf("unexpected conversation %s", uc.Conversation.ID)
		}
	}
}

func testOrgIsolation(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 2)
	g := newFixture(t, s, 2)
	c := f.group(t, 0, false, 1)
	m := f.send(t, c, 0, "secret")
	if _, err := s.FindConversation(ctx, g.org.ID, c.ID); chatvault.ErrorCode(err) != chatvault.ENOTFOUND {
		t.Fatalf("FindConversation(other org) = %v; want not found", err)
	}
	if _, err := s.FindMessageByID(ctx, g.org.ID, c.ID, m.ID); chatvault.ErrorCode(err) != chatvault.ENOTFOUND {
		t.Fatalf("FindMessageByID(other org) = %v; want not found", err)
	}
	if ms, _ := s.FindMessages(ctx, g.org.ID, c.ID, chatvault.MessageQuery{Limit: 10}); len(ms) != 0 {
		t.Fatalf("FindMessages(other org) = %d messages", len(ms))
	}
	if _, err := s.FindUserByID(ctx, g.org.ID, f.users[1].ID); chatvault.ErrorCode(err) != chatvault.ENOTFOUND {
		t.Fatalf("FindUserByID(other org) = %v", err)
	}
	// The same username may exist in each org.
	for _, org := range []string{f.org.ID, g.org.ID} {
		if err := s.CreateUser(ctx, &chatvault.User{OrgID: org, ID: id(), Username: "same-name", DisplayName: "x",
			Roles: []chatvault.Role{chatvault.RoleMember}, PasswordHash: "h", CreatedAt: t0}); err != nil {
			t.Fatalf("CreateUser(same username in org %s) = %v", org, err)
		}
	}
	intruder := &chatvault.Message{OrgID: g.org.ID, ID: id(), ConversationID: c.ID, SenderID: g.users[0].ID, Kind: chatvault.KindText, Text: "x", SentAt: t0}
	_, err := s.AppendMessage(ctx, intruder)
	wantCode(t, "AppendMessage(other org)", err, chatvault.ENOTFOUND)
}

func testTextRoundTrip(t *testing.T, s chatvault.Store) {
	ctx := context.Background()
	f := newFixture(t, s, 1)
	c := f.group(t, 0, false)
	for _, text := range []string{"我家在上海东边", "合同v2 北京meeting ＡＢＣ", "emoji 🚀👍🏽 family 👨‍👩‍👧", "tab\tnew\nline", "\u200b zero width", "'; DROP TABLE messages; --"} {
		m := f.send(t, c, 0, text)
		got, err := s.FindMessageByID(ctx, f.org.ID, c.ID, m.ID)
		if err != nil || got.Text != text || got.ConversationID != c.ID || got.SenderID != f.users[0].ID || !got.SentAt.Equal(t0) || got.Kind != chatvault.KindText {
			t.Fatalf("round trip of %q = %+v, %v", text, got, err)
		}
	}
}
