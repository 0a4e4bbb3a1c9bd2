package chatvault

import (
	"context"
	"time"
)

// DeletionKind says what happened to a message after a backup was taken that a restore of that
// backup must do again.
type DeletionKind string

const (
	DeletionDestroyed DeletionKind = "destroyed" // purged, batch-deleted or erased: body and versions gone
	DeletionRecalled  DeletionKind = "recalled"  // recalled by its sender: nobody sees it
)

// Deletion is one entry of the deletion journal: one message, named by seq and by id, so an entry
// is never applied to another message that reuses the seq on a different timeline (after a restore).
type Deletion struct {
	Kind           DeletionKind `json:"kind"`
	OrgID          string       `json:"org"`
	ConversationID string       `json:"conv"`
	Seq            int64        `json:"seq"`
	MessageID      string       `json:"id"`
	At             time.Time    `json:"at"`
}

// SnapshotInfo describes a consistent copy of a store: what a backup manifest records.
type SnapshotInfo struct {
	SchemaVersion int              `json:"schema_version"`
	Tables        map[string]int64 `json:"tables"` // rows per table
	// EventCounter is the last event number in the copy: every change up to it is in the copy.
	EventCounter int64 `json:"event_counter"`
}

// BackupStore is what a storage engine offers the backup job.
type BackupStore interface {
	// Snapshot writes a consistent, compact copy of the data (never key material) to path, a new
	// file, while writes go on, and describes it.
	Snapshot(ctx context.Context, path string) (*SnapshotInfo, error)
	// SnapshotKeys writes a consistent copy of the keys database to path.
	SnapshotKeys(ctx context.Context, path string) error
	// Deletions returns the journal entries of destructive changes committed after event number
	// after, and the event number they run up to (the next call's after).
	Deletions(ctx context.Context, after int64) ([]Deletion, int64, error)
}

// CheckReport is what an integrity check of a store (a restored backup) found.
type CheckReport struct {
	Integrity string           `json:"integrity"` // "ok", or what the engine's check reported
	Tables    map[string]int64 `json:"tables"`
	// Sampled bodies were opened with the keys; Shredded of them belong to a destroyed data key
	// (purged after the copy was made: expected, not an error).
	Sampled  int `json:"sampled"`
	Opened   int `json:"opened"`
	Shredded int `json:"shredded"`
}

// RestoredStore is a store opened on a restored copy: the backup job checks it and replays the
// deletion journal into it.
type RestoredStore interface {
	// Check runs the engine's integrity check, counts rows per table and opens up to sample
	// random message bodies.
	Check(ctx context.Context, sample int) (*CheckReport, error)
	// ApplyDeletions does again what the entries record; entries that name a message the copy does
	// not have, or that are already done, are skipped. It returns how many it applied.
	ApplyDeletions(ctx context.Context, ds []Deletion) (int, error)
	Close() error
}
