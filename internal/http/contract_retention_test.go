package http_test

// The contract scenarios for retention, holds, deletions and the audit log.

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/chat"
	"github.com/chatvault/chatvault/internal/retention"
	"github.com/google/uuid"
)

// retentionPolicy is a valid policy body for PUT /api/v1/admin/retention/policy.
func retentionPolicy(changes map[string]any) map[string]any {
	p := map[string]any{"default_days": 30, "min_days": 0, "max_days": 0, "important_days": 365, "mode": "org",
		"purge_grace_days": 7, "preserve_recalls": false, "recall_window_seconds": 0, "reason": "合规要求"}
	for k, v := range changes {
		p[k] = v
	}
	return p
}

// merged is a copy of a with b's entries added.
func merged(a, b map[string]any) map[string]any {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}

func contractRetention(t *testing.T, c *contract) {
	ts, k := c.serve(t)
	admin := ts.adminToken
	alice, bob, carol := ts.newUser("alice"), ts.newUser("bob"), ts.newUser("carol")
	var officerUser chatvault.User
	ts.must(http.StatusCreated, "POST", "/api/v1/admin/users", admin, map[string]any{
		"username": "officer", "password": "password-officer", "roles": []string{"compliance_officer"}}).decode(t, &officerUser)
	officer := ts.login("officer", "password-officer", "").Token
	g := ts.group(alice, "留存", false, bob)
	var d conversation
	ts.must(http.StatusCreated, "POST", "/api/v1/conversations", bob.Token, map[string]any{"type": "direct", "members": []string{carol.ID}}).decode(t, &d)
	msgURL := func(convID, msgID string) string { return "/api/v1/conversations/" + convID + "/messages/" + msgID }
	admURL := func(convID, msgID string) string {
		return "/api/v1/admin/conversations/" + convID + "/messages/" + msgID + "/important"
	}

	// The policy: the default one, replaced, and one that does not hold together.
	var pol chatvault.Policy
	ts.must(http.StatusOK, "GET", "/api/v1/admin/retention/policy", admin, nil).decode(t, &pol)
	if pol.DefaultDays != 180 || pol.GraceDays != 7 || pol.Locked {
		t.Errorf("default policy = %+v; want 180 days, 7 days' grace, unlocked", pol)
	}
	ts.must(http.StatusOK, "PUT", "/api/v1/admin/retention/policy", admin, retentionPolicy(nil)).decode(t, &pol)
	if pol.DefaultDays != 30 || pol.ImportantDays != 365 || pol.UpdatedBy == "" {
		t.Errorf("policy = %+v; want 30 days, important 365, updated_by set", pol)
	}
	wantError(t, ts.must(http.StatusBadRequest, "PUT", "/api/v1/admin/retention/policy", admin,
		retentionPolicy(map[string]any{"min_days": 60, "max_days": 30})), chatvault.EINVALID, "min_days")
	wantError(t, ts.must(http.StatusBadRequest, "PUT", "/api/v1/admin/retention/policy", admin,
		retentionPolicy(map[string]any{"default_days": 0, "max_days": 400})), chatvault.EINVALID, "default_days")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "PUT", "/api/v1/admin/retention/policy", admin,
			retentionPolicy(map[string]any{"mode": "sometimes"})), chatvault.EINVALID, "mode")
		wantError(t, ts.must(http.StatusBadRequest, "PUT", "/api/v1/admin/retention/policy", admin,
			retentionPolicy(map[string]any{"default_days": -1})), chatvault.EINVALID, "default_days")
		wantError(t, ts.must(http.StatusBadRequest, "PUT", "/api/v1/admin/retention/policy", admin,
			retentionPolicy(map[string]any{"colour": "blue"})), chatvault.EINVALID, "colour")
	})

	// Importance rules.
	var rule, other chatvault.ImportantRule
	ts.must(http.StatusCreated, "POST", "/api/v1/admin/retention/rules", admin, map[string]any{"pattern": "合同"}).decode(t, &rule)
	ts.must(http.StatusCreated, "POST", "/api/v1/admin/retention/rules", admin, map[string]any{"pattern": "^INV-[0-9]+$", "regex": true}).decode(t, &other)
	ts.must(http.StatusNoContent, "DELETE", "/api/v1/admin/retention/rules/"+other.ID, admin, nil)
	wantError(t, ts.must(http.StatusNotFound, "DELETE", "/api/v1/admin/retention/rules/"+other.ID, admin, nil), chatvault.ENOTFOUND, "")
	wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/retention/rules", admin,
		map[string]any{"pattern": "(", "regex": true}), chatvault.EINVALID, "pattern")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/retention/rules", admin, map[string]any{"pattern": ""}), chatvault.EINVALID, "pattern")
	})
	var rules struct {
		Rules []chatvault.ImportantRule `json:"rules"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/admin/retention/rules", admin, nil).decode(t, &rules)
	if len(rules.Rules) != 1 || rules.Rules[0].ID != rule.ID {
		t.Errorf("rules = %+v; want only %s", rules.Rules, rule.ID)
	}

	// Messages: plain, matched by the rule, flagged by the admin, starred and unstarred by a member.
	var initial chat.SyncResult
	ts.must(http.StatusOK, "GET", "/api/v1/sync", bob.Token, nil).decode(t, &initial)
	m1 := ts.send(alice, g.ID, "很久以前的消息")
	m2 := ts.send(bob, g.ID, "合同第三条已签")
	m3 := ts.send(alice, g.ID, "会议纪要")
	m4 := ts.send(bob, g.ID, "bob 的旧消息")
	ts.send(carol, d.ID, "私聊")
	if m1.Important || !m2.Important {
		t.Errorf("important = %v, %v; want only the message matching the rule", m1.Important, m2.Important)
	}
	var starred chatvault.Message
	ts.must(http.StatusOK, "PUT", msgURL(g.ID, m1.ID)+"/star", bob.Token, nil).decode(t, &starred)
	if !starred.Important || starred.ID != m1.ID {
		t.Errorf("starred = %+v; want m1, important", starred)
	}
	ts.must(http.StatusOK, "PUT", msgURL(g.ID, m1.ID)+"/star", bob.Token, nil)
	ts.must(http.StatusOK, "DELETE", msgURL(g.ID, m1.ID)+"/star", bob.Token, nil).decode(t, &starred)
	if starred.Important {
		t.Errorf("unstarred = %+v; want not important", starred)
	}
	wantError(t, ts.must(http.StatusNotFound, "PUT", msgURL(g.ID, uuid.NewString())+"/star", bob.Token, nil), chatvault.ENOTFOUND, "")
	wantError(t, ts.must(http.StatusNotFound, "PUT", msgURL(g.ID, m1.ID)+"/star", carol.Token, nil), chatvault.ENOTFOUND, "")
	m5 := ts.send(alice, g.ID, "发错了")
	ts.must(http.StatusOK, "POST", msgURL(g.ID, m5.ID)+"/recall", alice.Token, nil)
	wantError(t, ts.must(http.StatusConflict, "PUT", msgURL(g.ID, m5.ID)+"/star", bob.Token, nil), chatvault.ECONFLICT, "")
	wantError(t, ts.must(http.StatusConflict, "DELETE", msgURL(g.ID, m5.ID)+"/star", bob.Token, nil), chatvault.ECONFLICT, "")
	var flag struct {
		MessageID string `json:"message_id"`
		Important bool   `json:"important"`
	}
	ts.must(http.StatusOK, "PUT", admURL(g.ID, m3.ID), admin, map[string]bool{"important": true}).decode(t, &flag)
	if flag.MessageID != m3.ID || !flag.Important {
		t.Errorf("flag = %+v; want m3 important", flag)
	}
	wantError(t, ts.must(http.StatusNotFound, "PUT", admURL(g.ID, uuid.NewString()), admin, map[string]bool{"important": true}), chatvault.ENOTFOUND, "")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "PUT", admURL(g.ID, m3.ID), admin, map[string]string{"important": "yes"}), chatvault.EINVALID, "important")
	})

	// 40 days on, the 30-day policy lets the plain messages and the recall go; the important ones
	// stay. A recall the org does not preserve is destroyed directly, not expired first.
	ts.clock.Advance(40 * 24 * time.Hour)
	at := url.QueryEscape(ts.clock.Now().Format(time.RFC3339))
	var prev retention.Preview
	ts.must(http.StatusOK, "GET", "/api/v1/admin/retention/preview?at="+at, admin, nil).decode(t, &prev)
	if prev.Proposed || prev.Totals["expire"] != 3 || prev.Totals["destroy"] != 1 || len(prev.Conversations) != 2 {
		t.Errorf("preview = %+v; want 3 to expire (m1, m4, the direct message) and the recall destroyed, in 2 conversations", prev)
	}
	for _, cp := range prev.Conversations {
		if cp.ConversationID == g.ID && (cp.RetentionDays != 30 || cp.Expire.Count != 2 || cp.Destroy.Count != 1) {
			t.Errorf("preview of the group = %+v / %+v; want 30 days, 2 to expire, the recall to destroy", cp.Expire, cp.Destroy)
		}
	}
	ts.must(http.StatusOK, "GET", "/api/v1/admin/retention/preview?at=2027-06-30", admin, nil)
	ts.must(http.StatusOK, "GET", "/api/v1/admin/retention/preview", admin, nil)
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "GET", "/api/v1/admin/retention/preview?at=soon", admin, nil), chatvault.EINVALID, "at")
	})
	ts.must(http.StatusOK, "POST", "/api/v1/admin/retention/preview", admin, map[string]any{
		"at": ts.clock.Now().Add(400 * 24 * time.Hour).Format(time.RFC3339), "policy": retentionPolicy(map[string]any{"default_days": 10})}).decode(t, &prev)
	if !prev.Proposed || prev.Policy.DefaultDays != 10 || prev.Totals["destroy"] != 6 {
		t.Errorf("proposed preview totals = %v; want all 6 messages destroyed", prev.Totals)
	}
	wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/retention/preview", admin, map[string]any{
		"policy": retentionPolicy(map[string]any{"min_days": 60, "max_days": 30})}), chatvault.EINVALID, "min_days")
	k.breaking(func() {
		ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/retention/preview", admin, map[string]any{"at": "2026-01-01"})
	})

	// Runs: a dry run changes nothing; a real one expires, destroys the recall, and tells readers.
	var run chatvault.PurgeRun
	ts.must(http.StatusOK, "POST", "/api/v1/admin/retention/run", admin, map[string]bool{"dry_run": true}).decode(t, &run)
	if !run.DryRun || run.Totals["expired"] != 3 || run.Totals["destroyed"] != 1 {
		t.Errorf("dry run totals = %v; want what the real run does now: 3 expired, 1 (the recall) destroyed", run.Totals)
	}
	ts.must(http.StatusOK, "GET", msgURL(g.ID, m1.ID), bob.Token, nil)
	ts.must(http.StatusOK, "POST", "/api/v1/admin/retention/run", admin, nil).decode(t, &run)
	if run.DryRun || run.Totals["expired"] != 3 || run.Totals["destroyed"] != 1 || run.FinishedAt == nil {
		t.Errorf("run = %+v; want 3 expired, 1 destroyed, finished", run)
	}
	// Expired messages read as purged tombstones for everyone; the important ones stay live.
	for _, m := range []chatvault.Message{m1, m4, m2, m3} {
		var got chatvault.Message
		ts.must(http.StatusOK, "GET", msgURL(g.ID, m.ID), alice.Token, nil).decode(t, &got)
		if gone := m.ID == m1.ID || m.ID == m4.ID; gone != (got.State == chatvault.StatePurged) || gone != (got.Text == "") {
			t.Errorf("after the run seq %d = %s %q; want purged without text: %v", got.Seq, got.State, got.Text, gone)
		}
	}
	var changes chat.SyncResult
	ts.must(http.StatusOK, "GET", "/api/v1/sync?since="+url.QueryEscape(initial.Cursor), bob.Token, nil).decode(t, &changes)
	if !slices.ContainsFunc(changes.Events, func(e chatvault.Event) bool {
		return e.Kind == chatvault.EventPurged && e.ConversationID == g.ID && e.FromSeq >= 1 && e.Seq >= e.FromSeq
	}) {
		t.Errorf("events after the run = %+v; want messages_purged for the group", changes.Events)
	}
	var runs struct {
		Runs []chatvault.PurgeRun `json:"runs"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/admin/retention/runs", admin, nil).decode(t, &runs)
	if len(runs.Runs) != 1 || runs.Runs[0].ID != run.ID {
		t.Errorf("runs = %+v; want the one real run %s", runs.Runs, run.ID)
	}

	// Restore brings the expired messages back within the grace window.
	var restored struct {
		Restored int `json:"restored"`
	}
	ts.must(http.StatusOK, "POST", "/api/v1/admin/retention/restore", admin, map[string]any{
		"conversation_id": g.ID, "from_seq": 1, "to_seq": m5.Seq, "reason": "误删"}).decode(t, &restored)
	if restored.Restored != 2 {
		t.Errorf("restored = %d; want 2 (m1, m4; the recall is destroyed)", restored.Restored)
	}
	var back chatvault.Message
	ts.must(http.StatusOK, "GET", msgURL(g.ID, m1.ID), bob.Token, nil).decode(t, &back)
	if back.State != chatvault.StateLive || back.Text != m1.Text {
		t.Errorf("restored m1 = %+v; want it live with its text", back)
	}
	wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/retention/restore", admin, map[string]any{
		"conversation_id": g.ID, "from_seq": 5, "to_seq": 2}), chatvault.EINVALID, "from_seq")
	wantError(t, ts.must(http.StatusNotFound, "POST", "/api/v1/admin/retention/restore", admin, map[string]any{
		"conversation_id": uuid.NewString(), "from_seq": 1, "to_seq": 2}), chatvault.ENOTFOUND, "")
	k.breaking(func() {
		ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/retention/restore", admin, map[string]any{"conversation_id": g.ID, "from_seq": 0, "to_seq": 2})
	})

	// A conversation's override: forever, then cleared.
	var override struct {
		ConversationID string `json:"conversation_id"`
		Days           *int   `json:"days"`
	}
	ts.must(http.StatusOK, "PUT", "/api/v1/admin/conversations/"+g.ID+"/retention", admin, map[string]any{"days": 0, "reason": "诉讼"}).decode(t, &override)
	if override.ConversationID != g.ID || override.Days == nil || *override.Days != 0 {
		t.Errorf("override = %+v; want 0 (forever)", override)
	}
	ts.must(http.StatusOK, "PUT", "/api/v1/admin/conversations/"+g.ID+"/retention", admin, map[string]any{"days": nil}).decode(t, &override)
	if override.Days != nil {
		t.Errorf("cleared override = %+v; want null", override)
	}
	wantError(t, ts.must(http.StatusNotFound, "PUT", "/api/v1/admin/conversations/"+uuid.NewString()+"/retention", admin, map[string]any{"days": 30}), chatvault.ENOTFOUND, "")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "PUT", "/api/v1/admin/conversations/"+g.ID+"/retention", admin, map[string]any{"days": -1}), chatvault.EINVALID, "days")
	})

	// Legal holds, placed and released by the compliance officer.
	var hold chatvault.Hold
	ts.must(http.StatusCreated, "POST", "/api/v1/compliance/holds", officer, map[string]any{
		"name": "张三诉讼", "reason": "counsel ref 2026-113", "custodians": []string{carol.ID}, "from": "2025-01-01"}).decode(t, &hold)
	if hold.ID == "" || hold.CreatedBy != officerUser.ID || !hold.Active() {
		t.Errorf("hold = %+v; want an active hold by the officer", hold)
	}
	wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/compliance/holds", officer, map[string]any{
		"name": "x", "reason": "y", "conversations": []string{uuid.NewString()}}), chatvault.EINVALID, "conversations")
	wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/compliance/holds", officer, map[string]any{
		"name": "x", "reason": "y", "from": "2026-02-01", "to": "2026-01-01"}), chatvault.EINVALID, "to")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/compliance/holds", officer, map[string]any{"name": "x"}), chatvault.EINVALID, "reason")
	})
	var holds struct {
		Holds []chatvault.Hold `json:"holds"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/compliance/holds", officer, nil).decode(t, &holds)
	if len(holds.Holds) != 1 || holds.Holds[0].ID != hold.ID {
		t.Errorf("holds = %+v; want %s", holds.Holds, hold.ID)
	}

	// Batch deletes: preview, then confirm once with the token. Held messages are refused.
	var dp retention.DeletionPreview
	ts.must(http.StatusOK, "POST", "/api/v1/admin/deletions/preview", admin, map[string]any{"user_id": carol.ID, "reason": "erasure request"}).decode(t, &dp)
	if dp.Totals["delete"] != 0 || dp.Totals["held"] != 1 {
		t.Errorf("erasure preview of carol under a hold = %+v; want 1 held, nothing to delete", dp.Totals)
	}
	ts.must(http.StatusOK, "POST", "/api/v1/admin/deletions/preview", admin, map[string]any{
		"user_id": bob.ID, "reason": "GDPR art. 17"}).decode(t, &dp)
	if dp.Totals["delete"] != 2 || len(dp.Token) != 32 || dp.Filter.SenderID != bob.ID {
		t.Errorf("erasure preview of bob = %+v; want 2 to delete and a token", dp)
	}
	var res retention.DeletionResult
	ts.must(http.StatusOK, "POST", "/api/v1/admin/deletions/"+dp.Token+"/confirm", admin, nil).decode(t, &res)
	if res.Deleted != 2 {
		t.Errorf("erasure = %+v; want 2 deleted", res)
	}
	if m := ts.history(alice, g.ID, ""); slices.ContainsFunc(m.Messages, func(m chatvault.Message) bool {
		return m.SenderID == bob.ID && m.State != chatvault.StatePurged
	}) {
		t.Errorf("after the erasure alice still sees bob's messages: %+v", m.Messages)
	}
	wantError(t, ts.must(http.StatusNotFound, "POST", "/api/v1/admin/deletions/"+dp.Token+"/confirm", admin, nil), chatvault.ENOTFOUND, "")
	wantError(t, ts.must(http.StatusNotFound, "POST", "/api/v1/admin/deletions/0123456789abcdef0123456789abcdef/confirm", admin, nil), chatvault.ENOTFOUND, "")
	wantError(t, ts.must(http.StatusConflict, "PUT", admURL(g.ID, m2.ID), admin, map[string]bool{"important": false}), chatvault.ECONFLICT, "")
	wantError(t, ts.must(http.StatusNotFound, "POST", "/api/v1/admin/deletions/preview", admin, map[string]any{"conversation_id": uuid.NewString()}), chatvault.ENOTFOUND, "")
	wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/deletions/preview", admin, map[string]any{
		"from": "2026-03-01", "to": "2026-02-01"}), chatvault.EINVALID, "to")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/deletions/preview", admin, map[string]any{"reason": "everything"}), chatvault.EINVALID, "conversation_id")
	})

	// Releasing the hold lets carol's message go.
	ts.must(http.StatusOK, "POST", "/api/v1/compliance/holds/"+hold.ID+"/release", officer, map[string]string{"reason": "case closed"}).decode(t, &hold)
	if hold.Active() || hold.ReleasedBy != officerUser.ID {
		t.Errorf("released hold = %+v; want released by the officer", hold)
	}
	wantError(t, ts.must(http.StatusNotFound, "POST", "/api/v1/compliance/holds/"+hold.ID+"/release", officer, map[string]string{"reason": "again"}), chatvault.ENOTFOUND, "")
	wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/compliance/holds/"+hold.ID+"/release", officer, map[string]string{"reason": "  "}), chatvault.EINVALID, "reason")
	ts.must(http.StatusOK, "POST", "/api/v1/admin/deletions/preview", admin, map[string]any{"user_id": carol.ID}).decode(t, &dp)
	if dp.Totals["delete"] != 1 || dp.Totals["held"] != 0 {
		t.Errorf("erasure preview of carol after the release = %+v; want 1 to delete", dp.Totals)
	}

	// The audit log, for admins and compliance officers.
	var audit struct {
		Entries []chatvault.AuditEntry `json:"entries"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/admin/audit", admin, nil).decode(t, &audit)
	if !slices.ContainsFunc(audit.Entries, func(e chatvault.AuditEntry) bool { return e.Action == "erasure.execute" && e.Outcome == "ok" }) {
		t.Errorf("audit = %+v; want the erasure", audit.Entries)
	}
	ts.must(http.StatusOK, "GET", "/api/v1/admin/audit?limit=2", officer, nil).decode(t, &audit)
	if len(audit.Entries) != 2 {
		t.Errorf("audit?limit=2 = %d entries; want 2", len(audit.Entries))
	}
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "GET", "/api/v1/admin/audit?limit=1001", admin, nil), chatvault.EINVALID, "limit")
		wantError(t, ts.must(http.StatusBadRequest, "GET", "/api/v1/admin/audit?limit=all", admin, nil), chatvault.EINVALID, "limit")
	})

	// A member's own window: none, 90 days, forever, cleared.
	var mine struct {
		Days *int `json:"days"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/me/retention", bob.Token, nil).decode(t, &mine)
	if mine.Days != nil {
		t.Errorf("initial window = %d; want null", *mine.Days)
	}
	ts.must(http.StatusOK, "PUT", "/api/v1/me/retention", bob.Token, map[string]any{"days": 90})
	ts.must(http.StatusOK, "GET", "/api/v1/me/retention", bob.Token, nil).decode(t, &mine)
	var me chatvault.User
	ts.must(http.StatusOK, "GET", "/api/v1/me", bob.Token, nil).decode(t, &me)
	if mine.Days == nil || *mine.Days != 90 || me.RetentionDays == nil || *me.RetentionDays != 90 {
		t.Errorf("window = %v, user %v; want 90", mine.Days, me.RetentionDays)
	}
	ts.must(http.StatusOK, "PUT", "/api/v1/me/retention", bob.Token, map[string]any{"days": 0})
	ts.must(http.StatusOK, "PUT", "/api/v1/me/retention", bob.Token, map[string]any{"days": nil}).decode(t, &mine)
	if mine.Days != nil {
		t.Errorf("cleared window = %d; want null", *mine.Days)
	}
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "PUT", "/api/v1/me/retention", bob.Token, map[string]any{"days": -1}), chatvault.EINVALID, "days")
		wantError(t, ts.must(http.StatusBadRequest, "PUT", "/api/v1/me/retention", bob.Token, map[string]any{"days": "forever"}), chatvault.EINVALID, "days")
	})

	// Members may not manage retention, holds or read the audit log; admins may not manage holds;
	// compliance officers may not manage retention.
	policy := retentionPolicy(nil)
	for _, call := range []struct {
		token, method, path string
		body                any
	}{
		{bob.Token, "GET", "/api/v1/admin/retention/policy", nil},
		{bob.Token, "PUT", "/api/v1/admin/retention/policy", policy},
		{bob.Token, "POST", "/api/v1/admin/retention/lock", map[string]string{"reason": "mine now"}},
		{bob.Token, "GET", "/api/v1/admin/retention/preview", nil},
		{bob.Token, "POST", "/api/v1/admin/retention/preview", map[string]any{"policy": policy}},
		{bob.Token, "POST", "/api/v1/admin/retention/run", nil},
		{bob.Token, "GET", "/api/v1/admin/retention/runs", nil},
		{bob.Token, "POST", "/api/v1/admin/retention/restore", map[string]any{"conversation_id": g.ID, "from_seq": 1, "to_seq": 1}},
		{bob.Token, "GET", "/api/v1/admin/retention/rules", nil},
		{bob.Token, "POST", "/api/v1/admin/retention/rules", map[string]any{"pattern": "x"}},
		{bob.Token, "DELETE", "/api/v1/admin/retention/rules/" + rule.ID, nil},
		{bob.Token, "PUT", "/api/v1/admin/conversations/" + g.ID + "/retention", map[string]any{"days": 0}},
		{bob.Token, "PUT", admURL(g.ID, m3.ID), map[string]bool{"important": false}},
		{bob.Token, "POST", "/api/v1/admin/deletions/preview", map[string]any{"conversation_id": g.ID}},
		{bob.Token, "POST", "/api/v1/admin/deletions/" + strings.Repeat("ab", 16) + "/confirm", nil},
		{bob.Token, "GET", "/api/v1/admin/audit", nil},
		{bob.Token, "GET", "/api/v1/compliance/holds", nil},
		{bob.Token, "POST", "/api/v1/compliance/holds", map[string]any{"name": "x", "reason": "y"}},
		{bob.Token, "POST", "/api/v1/compliance/holds/" + hold.ID + "/release", map[string]string{"reason": "y"}},
		{admin, "GET", "/api/v1/compliance/holds", nil},
		{admin, "POST", "/api/v1/compliance/holds", map[string]any{"name": "x", "reason": "y"}},
		{officer, "GET", "/api/v1/admin/retention/policy", nil},
		{officer, "POST", "/api/v1/admin/deletions/preview", map[string]any{"conversation_id": g.ID}},
	} {
		wantError(t, ts.must(http.StatusForbidden, call.method, call.path, call.token, call.body), chatvault.EFORBIDDEN, "")
	}
}

// contractRetentionLock locks a policy, in a server of its own since there is no unlock.
func contractRetentionLock(t *testing.T, c *contract) {
	ts, k := c.serve(t)
	admin := ts.adminToken
	alice := ts.newUser("alice")
	g := ts.group(alice, "锁定", false)
	ts.send(alice, g.ID, "要保留的消息")
	ts.must(http.StatusOK, "PUT", "/api/v1/admin/retention/policy", admin, retentionPolicy(map[string]any{"default_days": 90, "min_days": 30}))
	ts.clock.Advance(24 * time.Hour)
	var dp retention.DeletionPreview
	ts.must(http.StatusOK, "POST", "/api/v1/admin/deletions/preview", admin, map[string]any{"conversation_id": g.ID}).decode(t, &dp)
	if dp.Totals["too_young"] != 1 || dp.Totals["delete"] != 0 {
		t.Errorf("deletion preview = %+v; want the one message refused as younger than min_days", dp.Totals)
	}

	wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/retention/lock", admin, map[string]string{"reason": "  "}), chatvault.EINVALID, "reason")
	k.breaking(func() {
		wantError(t, ts.must(http.StatusBadRequest, "POST", "/api/v1/admin/retention/lock", admin, map[string]string{}), chatvault.EINVALID, "reason")
	})
	var pol chatvault.Policy
	ts.must(http.StatusOK, "POST", "/api/v1/admin/retention/lock", admin, map[string]string{"reason": "SEC 17a-4"}).decode(t, &pol)
	if !pol.Locked || pol.LockedAt == nil {
		t.Errorf("locked policy = %+v; want locked with locked_at", pol)
	}
	ts.must(http.StatusOK, "POST", "/api/v1/admin/retention/lock", admin, map[string]string{"reason": "again"})

	// Only longer from now on; refusals are audited.
	for _, change := range []map[string]any{
		{"default_days": 60}, {"min_days": 10}, {"purge_grace_days": 1}, {"mode": "user_choice"}, {"default_days": 90, "max_days": 400},
	} {
		wantError(t, ts.must(http.StatusForbidden, "PUT", "/api/v1/admin/retention/policy", admin,
			retentionPolicy(merged(map[string]any{"default_days": 90, "min_days": 30, "reason": "shorten"}, change))), chatvault.EFORBIDDEN, "")
	}
	ts.must(http.StatusOK, "PUT", "/api/v1/admin/retention/policy", admin, retentionPolicy(map[string]any{"default_days": 365, "min_days": 30})).decode(t, &pol)
	if !pol.Locked || pol.DefaultDays != 365 {
		t.Errorf("lengthened policy = %+v; want locked, 365 days", pol)
	}
	wantError(t, ts.must(http.StatusForbidden, "PUT", "/api/v1/admin/conversations/"+g.ID+"/retention", admin, map[string]any{"days": 30}), chatvault.EFORBIDDEN, "")
	ts.must(http.StatusOK, "PUT", "/api/v1/admin/conversations/"+g.ID+"/retention", admin, map[string]any{"days": 0})

	// Batch deletes are refused entirely, a pending one included.
	wantError(t, ts.must(http.StatusForbidden, "POST", "/api/v1/admin/deletions/preview", admin, map[string]any{"conversation_id": g.ID}), chatvault.EFORBIDDEN, "")
	wantError(t, ts.must(http.StatusForbidden, "POST", "/api/v1/admin/deletions/"+dp.Token+"/confirm", admin, nil), chatvault.EFORBIDDEN, "")

	// A run with nothing to do still certifies it: empty lists, not nulls.
	ts.clock.Advance(400 * 24 * time.Hour)
	var run chatvault.PurgeRun
	ts.must(http.StatusOK, "POST", "/api/v1/admin/retention/run", admin, map[string]bool{"dry_run": false}).decode(t, &run)
	if !run.Policy.Locked || len(run.Items) != 0 {
		t.Errorf("run under the lock = %+v; want nothing done", run)
	}

	var audit struct {
		Entries []chatvault.AuditEntry `json:"entries"`
	}
	ts.must(http.StatusOK, "GET", "/api/v1/admin/audit?limit=1000", admin, nil).decode(t, &audit)
	refused := 0
	for _, e := range audit.Entries {
		if e.Action == "retention.policy.update" && strings.HasPrefix(e.Outcome, "refused") {
			refused++
		}
	}
	if refused != 5 {
		t.Errorf("audit has %d refused policy updates; want 5", refused)
	}
}
