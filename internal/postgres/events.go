package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/sqlstore"
	"github.com/jackc/pgx/v5"
)

// Sync numbering. Every change takes its number from the one row of counters, updated inside the
// writing transaction (UPDATE ... value + 1 RETURNING). The row stays locked until that
// transaction commits or rolls back, so a transaction that takes numbers after ours waits for our
// commit: commit order is number order, committed numbers have no gaps, and a reader that sees
// counter value N sees every change numbered up to N (FindChanges reads the counter and the
// changes in one snapshot). This is what SQLite gets from its single writer.
//
// The cost: every writing transaction that records a change is serialised from its first number
// to its commit, WAL flush included; throughput of such transactions is bounded by one commit at
// a time (about 1/fsync latency, minus what the server's group commit shares). The store takes
// the number as late as it can in each transaction (after the conversation's lock, after the
// message insert) to keep that window short.
//
// Live delivery across processes. A transaction that publishes events also writes one
// event_outbox row (its events, without message content) and calls pg_notify; PostgreSQL delivers
// notifications at commit, in commit order, to every listening session. One listener goroutine
// per DB holds a dedicated connection in LISTEN; on each notification it reads the outbox rows
// after the last number it delivered, turns them into events (reading new messages through the
// normal, decrypting read), and calls the sink in order. After a reconnect it reads from the same
// place, so nothing is skipped. Revocations (device revoked, user disabled) are in the outbox
// too: SQLite publishes them without a number, here a transaction with only those takes one
// number for its outbox row.

// notifyChannel is the channel every store process listens on.
const notifyChannel = "chatvault_events"

// ListenerName is the application_name of the listener's connection (pg_stat_activity).
const ListenerName = "chatvault-listener"

// outboxKeep is how long outbox rows stay: long enough for a listener to reconnect.
const outboxKeep = 10 * time.Minute

// wtx is one write transaction and the events it publishes at commit.
type wtx struct {
	pgx.Tx
	db          *DB
	events      []chatvault.Event
	first, last int64 // event numbers taken; 0: none
}

// nextEventID takes the next number from the event counter, locking it until commit.
func (tx *wtx) nextEventID(ctx context.Context) (int64, error) {
	var id int64
	if err := tx.QueryRow(ctx, `UPDATE counters SET value = value + 1 WHERE name = 'event' RETURNING value`).Scan(&id); err != nil {
		return 0, fmt.Errorf("allocate event id: %w", err)
	}
	if tx.first == 0 {
		tx.first = id
	}
	tx.last = id
	return id, nil
}

// emit numbers an event, records it where sync looks for it, and queues it for publication.
// New messages are recorded by AppendMessage itself; revocations are only published.
func (tx *wtx) emit(ctx context.Context, ev chatvault.Event) (int64, error) {
	switch ev.Kind {
	case chatvault.EventDeviceRevoked, chatvault.EventUserDisabled:
		tx.events = append(tx.events, ev)
		return 0, nil
	}
	// Lock the row the event moves before taking a number: every transaction takes the
	// conversation's (or participant's) lock before the counter's, so they never wait on each
	// other in a cycle.
	var lock string
	var lockArgs []any
	if ev.PerUser() {
		lock, lockArgs = `SELECT 1 FROM participants WHERE org_id = $1 AND conversation_id = $2 AND user_id = $3 FOR UPDATE`,
			[]any{ev.OrgID, ev.ConversationID, ev.Subject}
	} else {
		lock, lockArgs = `SELECT 1 FROM conversations WHERE org_id = $1 AND id = $2 FOR UPDATE`, []any{ev.OrgID, ev.ConversationID}
	}
	if _, err := tx.Exec(ctx, lock, lockArgs...); err != nil {
		return 0, fmt.Errorf("lock before event: %w", err)
	}
	id, err := tx.nextEventID(ctx)
	if err != nil {
		return 0, err
	}
	ev.ID = id
	if err := sqlstore.RecordEvent(ctx, coreTx{tx}, ev); err != nil {
		return 0, err
	}
	tx.events = append(tx.events, ev)
	return id, nil
}

// outboxEvent is an event as the outbox keeps it: everything but message content.
type outboxEvent struct {
	ID        int64               `json:"id,omitempty"`
	OrgID     string              `json:"org"`
	Kind      chatvault.EventKind `json:"kind"`
	ConvID    string              `json:"conv,omitempty"`
	Subject   string              `json:"subject,omitempty"`
	Seq       int64               `json:"seq,omitempty"`
	FromSeq   int64               `json:"from_seq,omitempty"`
	MessageID string              `json:"msg,omitempty"`
	DeviceID  string              `json:"device,omitempty"`
	At        int64               `json:"at"`
}

// publish writes the transaction's events to the outbox and notifies the listeners; both take
// effect at commit. It runs last in the transaction.
func (tx *wtx) publish(ctx context.Context) error {
	if len(tx.events) == 0 {
		return nil
	}
	if tx.first == 0 {
		if _, err := tx.nextEventID(ctx); err != nil {
			return err
		}
	}
	out := make([]outboxEvent, len(tx.events))
	for i, ev := range tx.events {
		out[i] = outboxEvent{ID: ev.ID, OrgID: ev.OrgID, Kind: ev.Kind, ConvID: ev.ConversationID, Subject: ev.Subject,
			Seq: ev.Seq, FromSeq: ev.FromSeq, MessageID: ev.MessageID, DeviceID: ev.DeviceID, At: sqlstore.Millis(ev.At)}
	}
	raw, err := json.Marshal(out)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO event_outbox (first_id, last_id, events, created_at) VALUES ($1, $2, $3, $4)`,
		tx.first, tx.last, string(raw), time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("insert outbox: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, notifyChannel, fmt.Sprint(tx.last)); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}

// SetEventSink sets the function that receives committed events, in commit order, from every
// process writing to this database, and starts the listener that calls it. Call it once, before
// the store takes writes: events committed before the listener starts are not delivered.
func (db *DB) SetEventSink(sink chatvault.EventSink) {
	db.sinkMu.Lock()
	defer db.sinkMu.Unlock()
	if db.sink != nil || sink == nil {
		db.sink = sink
		return
	}
	db.sink = sink
	ready := make(chan struct{})
	db.wg.Add(1)
	go db.listen(ready)
	select {
	case <-ready:
	case <-db.ctx.Done():
	}
}

// listen runs the listener until Close: connect, LISTEN, deliver what the outbox holds after the
// cursor, wait for a notification, repeat; on any error reconnect and resume from the cursor.
// ready is closed once the first LISTEN is in place (or the first attempt failed), so that
// SetEventSink returns with every later commit covered.
func (db *DB) listen(ready chan struct{}) {
	defer db.wg.Done()
	var cursor int64 = -1 // -1: start from the counter's value once listening
	markReady := sync.OnceFunc(func() { close(ready) })
	defer markReady()
	backoff := 100 * time.Millisecond
	for db.ctx.Err() == nil {
		connected, err := db.listenOnce(&cursor, markReady)
		markReady()
		if connected {
			backoff = 100 * time.Millisecond
		}
		if db.ctx.Err() != nil {
			return
		}
		db.log.Warn("event listener lost its connection; reconnecting", "err", err, "resume_after", cursor)
		select {
		case <-db.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (db *DB) listenOnce(cursor *int64, markReady func()) (connected bool, err error) {
	ctx := db.ctx
	cfg, err := pgx.ParseConfig(db.url)
	if err != nil {
		return false, fmt.Errorf("parse database url: %w", err)
	}
	cfg.RuntimeParams["application_name"] = ListenerName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `LISTEN `+notifyChannel); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	if *cursor < 0 {
		if err := conn.QueryRow(ctx, `SELECT value FROM counters WHERE name = 'event'`).Scan(cursor); err != nil {
			return false, fmt.Errorf("read event counter: %w", err)
		}
	}
	markReady()
	for {
		if err := db.deliver(ctx, conn, cursor); err != nil {
			return true, err
		}
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return true, err
		}
	}
}

// deliver hands the sink every outbox batch after *cursor, in number order.
func (db *DB) deliver(ctx context.Context, conn *pgx.Conn, cursor *int64) error {
	for {
		rows, err := conn.Query(ctx, `SELECT first_id, last_id, events FROM event_outbox WHERE first_id > $1 ORDER BY first_id LIMIT 256`, *cursor)
		if err != nil {
			return fmt.Errorf("read outbox: %w", err)
		}
		type batch struct {
			first, last int64
			events      string
		}
		bs, err := collect(rows, func(r pgx.CollectableRow) (batch, error) {
			var b batch
			err := r.Scan(&b.first, &b.last, &b.events)
			return b, err
		})
		if err != nil {
			return fmt.Errorf("read outbox: %w", err)
		}
		if len(bs) == 0 {
			return nil
		}
		for _, b := range bs {
			if b.first != *cursor+1 {
				// Only when the listener was away longer than outboxKeep: what was pruned is
				// lost to live delivery (devices still catch up through sync).
				db.log.Warn("event listener skipped pruned events", "from", *cursor+1, "to", b.first-1)
			}
			var evs []outboxEvent
			if err := json.Unmarshal([]byte(b.events), &evs); err != nil {
				return fmt.Errorf("decode outbox %d: %w", b.first, err)
			}
			out := make([]chatvault.Event, 0, len(evs))
			for _, e := range evs {
				ev := chatvault.Event{ID: e.ID, OrgID: e.OrgID, Kind: e.Kind, ConversationID: e.ConvID, Subject: e.Subject, Seq: e.Seq,
					FromSeq: e.FromSeq, MessageID: e.MessageID, DeviceID: e.DeviceID, At: sqlstore.FromMillis(e.At)}
				if ev.Kind == chatvault.EventMessage {
					m, err := db.FindMessageByID(ctx, ev.OrgID, ev.ConversationID, ev.MessageID)
					if err != nil {
						if ctx.Err() != nil {
							return ctx.Err()
						}
						db.log.Error("event listener could not read a new message", "conversation", ev.ConversationID, "seq", ev.Seq, "err", err)
						continue
					}
					ev.Message = m
				}
				out = append(out, ev)
			}
			db.sinkMu.Lock()
			sink := db.sink
			db.sinkMu.Unlock()
			if sink != nil && len(out) > 0 {
				sink(out)
			}
			*cursor = b.last
		}
	}
}

// pruneOutbox deletes outbox rows older than outboxKeep, once a minute, until Close.
func (db *DB) pruneOutbox() {
	defer db.wg.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-db.ctx.Done():
			return
		case <-t.C:
		}
		if _, err := db.pool.Exec(db.ctx, `DELETE FROM event_outbox WHERE created_at < $1`, time.Now().Add(-outboxKeep).UnixMilli()); err != nil && !errors.Is(err, context.Canceled) {
			db.log.Warn("prune event outbox", "err", err)
		}
	}
}
