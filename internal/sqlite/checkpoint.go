package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// SQLite checkpoints the WAL (copies its pages back into the database file and fsyncs both) in
// whichever connection's commit crosses wal_autocheckpoint pages: here that is always the writer,
// so every thousandth page of ingest stalled one group commit, and every caller queued behind it,
// for the length of a checkpoint (a seventh of the writer's time in a profile of 64 senders).
// The writer therefore runs with wal_autocheckpoint=0 and a checkpointer of its own connection
// does the work beside it: a PASSIVE checkpoint never blocks the writer or readers.
const (
	// checkpointPause is the least time between two checkpoints: long enough that a checkpoint
	// copies many commits' pages at once, short enough that the WAL stays small under load.
	checkpointPause = 200 * time.Millisecond
	// truncateWALBytes is the WAL size past which a fully checkpointed log is truncated, so a
	// burst of writes does not leave a large file behind on disk.
	truncateWALBytes = 64 << 20
)

// checkpointer copies the WAL into the database beside the writer.
type checkpointer struct {
	conn *sql.DB // one connection of its own, never the writer's
	wal  string  // the WAL file's path
	wake chan struct{}
	stop chan struct{}
	done chan struct{}
	// failed holds the last checkpoint's error (nil once one succeeds). Nothing is lost when a
	// checkpoint fails: the pages stay in the WAL, readable and durable, and the next attempt
	// copies them; Ping reports it so that a log that can no longer be copied shows.
	failed atomic.Pointer[error]
}

func startCheckpointer(path string) (*checkpointer, error) {
	conn, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("open %s for checkpoints: %w", path, err)
	}
	conn.SetMaxOpenConns(1)
	conn.SetMaxIdleConns(1)
	conn.SetConnMaxLifetime(0)
	c := &checkpointer{conn: conn, wal: path + "-wal", wake: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c, nil
}

// committed tells the checkpointer that the writer committed; it returns at once.
func (c *checkpointer) committed() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-c.wake:
		}
		if err := c.checkpoint(context.Background()); err != nil {
			c.failed.Store(&err)
		} else {
			c.failed.Store(nil)
		}
		pause.Reset(checkpointPause)
		select {
		case <-c.stop:
			return
		case <-pause.C:
		}
	}
}

// err returns the last checkpoint's error, or nil.
func (c *checkpointer) err() error {
	if p := c.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// checkpoint copies what it can without waiting for anyone, then truncates a large log once
// every page of it is in the database.
func (c *checkpointer) checkpoint(ctx context.Context) error {
	var busy, logPages, done int
	if err := c.conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logPages, &done); err != nil {
		return fmt.Errorf("passive checkpoint: %w", err)
	}
	if busy != 0 || done < logPages {
		return nil
	}
	if fi, err := os.Stat(c.wal); err != nil || fi.Size() < truncateWALBytes {
		return nil
	}
	if err := c.conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logPages, &done); err != nil {
		return fmt.Errorf("truncate checkpoint: %w", err)
	}
	return nil
}

// close stops the checkpointer and closes its connection (the last connection to close
// checkpoints what is left).
func (c *checkpointer) close() error {
	close(c.stop)
	<-c.done
	return c.conn.Close()
}
