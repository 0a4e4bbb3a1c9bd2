package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/chatvault/chatvault"
)

// A writeReq is one caller's write: a function run inside the shared transaction of a batch.
type writeReq struct {
	ctx  context.Context
	fn   writeFunc
	done chan error
}

// A writeFunc runs inside the writer's transaction. It must use the context it is given, never its
// caller's: cancelling a statement inside a shared transaction would make SQLite roll back the
// whole batch, other callers' writes included.
type writeFunc func(ctx context.Context, tx *sql.Tx) error

// update runs fn in a write transaction and returns once that transaction is durably committed (or
// fn failed, in which case nothing fn did is kept). Concurrent calls share transactions and fsyncs:
// the writer takes every request that queued up while the previous commit was syncing.
func (db *DB) update(ctx context.Context, fn writeFunc) error {
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	db.closeMu.RLock()
	if db.closed {
		db.closeMu.RUnlock()
		return chatvault.Errorf(chatvault.EUNAVAILABLE, "the store is closed")
	}
	db.reqs <- req
	db.closeMu.RUnlock()
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		// The write may still commit; callers that retry rely on idempotency (client_msg_id).
		return ctx.Err()
	}
}

func (db *DB) writer() {
	defer db.wg.Done()
	batch := make([]*writeReq, 0, maxBatch)
	for first := range db.reqs {
		batch = append(batch[:0], first)
	fill:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-db.reqs:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		db.commit(batch)
	}
}

// commit runs a batch in one transaction. Each request runs inside its own savepoint so that one
// failing request rolls back only its own changes; the commit (one fsync) acknowledges them all.
func (db *DB) commit(batch []*writeReq) {
	results := make([]error, len(batch))
	err := db.commitBatch(batch, results)
	for i, r := range batch {
		if err != nil && results[i] == nil {
			results[i] = err
		}
		r.done <- results[i]
	}
}

func (db *DB) commitBatch(batch []*writeReq, results []error) error {
	tx, err := db.write.Begin()
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	single := len(batch) == 1
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		if single {
			results[i] = r.fn(context.Background(), tx)
			continue
		}
		if _, err := tx.Exec("SAVEPOINT w"); err != nil {
			tx.Rollback()
			return fmt.Errorf("savepoint: %w", err)
		}
		if results[i] = r.fn(context.Background(), tx); results[i] != nil {
			if _, err := tx.Exec("ROLLBACK TO w"); err != nil {
				tx.Rollback()
				return fmt.Errorf("rollback to savepoint: %w", err)
			}
		}
		if _, err := tx.Exec("RELEASE w"); err != nil {
			tx.Rollback()
			return fmt.Errorf("release savepoint: %w", err)
		}
	}
	if single && results[0] != nil {
		tx.Rollback()
		return nil
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
