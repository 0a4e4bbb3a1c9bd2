package chatvault

import (
	"context"
	"time"
)

// AuditEntry records who did what, when and why. Every admin action and every read of content by
// someone who is not a participant writes one, through internal/audit, before the action takes
// effect or the content leaves (fail-closed). The evidence issue makes the log tamper-evident.
type AuditEntry struct {
	OrgID   string         `json:"-"`
	ID      int64          `json:"id"`
	At      time.Time      `json:"at"`
	ActorID string         `json:"actor_id"`
	Action  string         `json:"action"`
	Target  string         `json:"target,omitempty"`
	Reason  string         `json:"reason,omitempty"`
	Outcome string         `json:"outcome"` // "ok", "started", "refused: ..." or "failed: ..."
	Details map[string]any `json:"details,omitempty"`
}

// AuditStore keeps the audit log. The store writes entries as it gets them: what must not be
// kept in the clear (Reason, Details) reaches it already sealed by internal/audit.
type AuditStore interface {
	// RecordAudit appends e and sets e.ID.
	RecordAudit(ctx context.Context, e *AuditEntry) error
	// FindAudit lists the org's newest entries first.
	FindAudit(ctx context.Context, orgID string, limit int) ([]*AuditEntry, error)
}

// WrappedKey is a key as a store keeps it: wrapped by the KEK KEKID, or, on a store that runs
// without encryption at rest (KEKID empty), the raw key itself.
type WrappedKey struct {
	N       int64 // the key's number within its org, from 1; never reused
	KEKID   string
	Wrapped []byte
}

// AuditKeyStore keeps each org's audit keys, which seal the free text of audit entries. Sealing
// and unwrapping happen above the store (internal/audit); the store only keeps what it is given.
type AuditKeyStore interface {
	// FindAuditKeys returns every audit key the org has, in no particular order.
	FindAuditKeys(ctx context.Context, orgID string) ([]WrappedKey, error)
	// AddAuditKey keeps k unless the org already has a key numbered k.N, and returns the key kept
	// under that number: of two processes adding the same number at once, both use the first.
	AddAuditKey(ctx context.Context, orgID string, k WrappedKey) (*WrappedKey, error)
}
