package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/sqlstore"
)

// A writeReq is one caller's write: a function run inside the shared transaction of a batch.
type writeReq struct {
	ctx context.Context
	fn  writeFunc
	// core is a write of the shared store core, run instead of fn when set.
	core func(ctx context.Context, tx sqlstore.Tx) error
	done chan error
}

// A writeFunc runs inside the writer's transaction. It must use the context it is given, never its
// caller's: cancelling a statement inside a shared transaction would make SQLite roll back the
// whole batch, other callers' writes included.
type writeFunc func(ctx context.Context, tx *wtx) error

// wtx is one request's view of the batch transaction: the transaction, plus the events the
// request emits, which are published only if its part of the batch commits.
type wtx struct {
	*sql.Tx
	db     *DB
	events []chatvault.Event
	// index holds the request's search index writes, applied at the end of the batch (see
	// applyIndex).
	index []indexOp
}

// nextEventID takes the next number from the event counter.
func (tx *wtx) nextEventID(ctx context.Context) (int64, error) {
	var id int64
	if err := tx.StmtContext(ctx, tx.db.stmts.nextEvent).QueryRowContext(ctx).Scan(&id); err != nil {
		return 0, fmt.Errorf("allocate event id: %w", err)
	}
	return id, nil
}

// emit numbers an event, records it where sync will look for it, and queues it for the sink.
// New messages are recorded by AppendMessage itself (they move last_event_id, no row is written);
// revocations are only published, since they matter only to live connections.
func (tx *wtx) emit(ctx context.Context, ev chatvault.Event) (int64, error) {
	switch ev.Kind {
	case chatvault.EventDeviceRevoked, chatvault.EventUserDisabled:
		tx.events = append(tx.events, ev)
		return 0, nil
	}
	id, err := tx.nextEventID(ctx)
	if err != nil {
		return 0, err
	}
	ev.ID = id
	if err := sqlstore.RecordEvent(ctx, tx, ev); err != nil {
		return 0, err
	}
	tx.events = append(tx.events, ev)
	return id, nil
}

// SetEventSink sets the function that receives each committed batch's events in commit order.
// Call it before the store takes writes.
func (db *DB) SetEventSink(sink chatvault.EventSink) { db.sink = sink }

// CommitObserver receives each group commit's size (the writes it made durable together) and the
// time its COMMIT took, which is where the fsync happens: the figures group commit is tuned by.
type CommitObserver func(writes int, commit time.Duration)

// SetCommitObserver sets the function told of every group commit (metrics); it may be called
// while the store takes writes.
func (db *DB) SetCommitObserver(o CommitObserver) { db.observe.Store(&o) }

// update runs fn in a write transaction and returns once that transaction is durably committed (or
// fn failed, in which case nothing fn did is kept). Concurrent calls share transactions and fsyncs:
// the writer takes every request that queued up while the previous commit was syncing.
func (db *DB) update(ctx context.Context, fn writeFunc) error {
	return db.enqueue(ctx, &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)})
}

func (db *DB) enqueue(ctx context.Context, req *writeReq) error {
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

// run runs the request inside the writer's transaction, with a context of its own (see writeFunc).
func (r *writeReq) run(w *wtx) error {
	if r.core != nil {
		return r.core(context.Background(), w)
	}
	return r.fn(context.Background(), w)
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

// commit runs a batch in one transaction, publishes its events, then answers every caller. The
// events go out before the answers, so a client that sends and then syncs finds its own message.
func (db *DB) commit(batch []*writeReq) {
	results := make([]error, len(batch))
	events, err := db.commitBatch(batch, results)
	if err == nil && len(events) > 0 && db.sink != nil {
		db.sink(events)
	}
	for i, r := range batch {
		if err != nil && results[i] == nil {
			results[i] = err
		}
		r.done <- storageFull(results[i], filepath.Dir(db.path))
	}
}

// commitBatch runs each request inside its own savepoint, so one failing request rolls back only
// its own changes; the commit (one fsync) makes them all durable.
func (db *DB) commitBatch(batch []*writeReq, results []error) ([]chatvault.Event, error) {
	tx, err := db.write.Begin()
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	var events []chatvault.Event
	var index []indexOp
	single := len(batch) == 1
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		w := &wtx{Tx: tx, db: db}
		if single {
			if results[i] = r.run(w); results[i] != nil {
				tx.Rollback()
				return nil, nil
			}
			events, index = w.events, w.index
			continue
		}
		if _, err := tx.Stmt(db.stmts.savepoint).Exec(); err != nil {
			tx.Rollback()
			return nil, fmt.Errorf("savepoint: %w", err)
		}
		if results[i] = r.run(w); results[i] != nil {
			if _, err := tx.Stmt(db.stmts.rollbackTo).Exec(); err != nil {
				tx.Rollback()
				return nil, fmt.Errorf("rollback to savepoint: %w", err)
			}
		} else {
			events = append(events, w.events...)
			index = append(index, w.index...)
		}
		if _, err := tx.Stmt(db.stmts.release).Exec(); err != nil {
			tx.Rollback()
			return nil, fmt.Errorf("release savepoint: %w", err)
		}
	}
	if err := db.applyIndex(tx, index); err != nil {
		tx.Rollback()
		return nil, err
	}
	t0 := time.Now()
	if err := tx.Commit(); err != nil {
		// SQLite may leave the transaction open when COMMIT fails (SQLITE_FULL, SQLITE_IOERR);
		// the writer's one connection must not carry it into the next batch. Without one open,
		// ROLLBACK fails harmlessly.
		db.write.Exec("ROLLBACK")
		return nil, fmt.Errorf("commit: %w", err)
	}
	if o := db.observe.Load(); o != nil {
		(*o)(len(batch), time.Since(t0))
	}
	return events, nil
}
