package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// LeaderLock elects, among the processes sharing one database, the one that runs the scheduled
// jobs (internal/jobs; DB.Lead). It is a session-level advisory lock held on a connection of its own:
// PostgreSQL frees it when that session ends, so a process that dies (kill -9, a lost machine, a
// cut network once the server notices) hands the job over without anyone cleaning up, and the
// others take it with pg_try_advisory_lock the next time they check.
//
// The connection is not from the store's pool: a pooled connection would carry the lock back into
// the pool, and the pool may close it at any time. Through PgBouncer the store URL must use
// session pooling; transaction pooling gives the lock to whichever client uses the server
// connection next.
type LeaderLock struct {
	url  string
	name string
	key  int64

	mu   sync.Mutex // the connection is used by one goroutine at a time
	conn *pgx.Conn
	held bool
}

// jobsLock names the lock of the scheduled jobs. It is the name the retention schedule's lock had
// before every job ran under one lock, so that during a rolling upgrade old and new processes
// still elect one leader between them.
const jobsLock = "retention"

// Lead reports whether this process runs the scheduled jobs: whether it holds the jobs' advisory
// lock, taking it when it is free (LeaderLock.Lead). The lock's connection opens on first use and
// closes with the store, which hands the jobs to another process at once.
func (db *DB) Lead(ctx context.Context) (bool, error) { return db.leader.Lead(ctx) }

// lockCheckTimeout bounds one check or attempt of Lead.
const lockCheckTimeout = 15 * time.Second

// NewLeaderLock returns the lock named name (one per job) on the database at url. It connects on
// first use.
func NewLeaderLock(url, name string) *LeaderLock {
	return &LeaderLock{url: url, name: name, key: LockKey(name)}
}

// LockKey is the advisory lock key of a job name: the 64-bit FNV-1a hash of "chatvault/"+name.
// Advisory locks are per database, so two deployments in different databases never collide.
func LockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("chatvault/" + name))
	return int64(h.Sum64())
}

// Lead reports whether this process holds the lock, taking it when it is free. While it holds the
// lock, a call checks that the session holding it is still alive: if it died, so did the lock
// (another process may hold it now), and Lead tries again on a new connection like any other
// process. An error means "do not know": the caller must not run the job.
func (l *LeaderLock) Lead(ctx context.Context) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// A network that silently drops packets would otherwise hang the check until the kernel gives
	// up on the connection, with the job neither running here nor known to run elsewhere.
	ctx, cancel := context.WithTimeout(ctx, lockCheckTimeout)
	defer cancel()
	if l.held {
		if err := l.conn.Ping(ctx); err == nil {
			return true, nil
		}
		l.dropConn()
	}
	if l.conn == nil || l.conn.IsClosed() {
		conn, err := pgx.Connect(ctx, l.url)
		if err != nil {
			return false, fmt.Errorf("connect for the %s lock: %w", l.name, err)
		}
		l.conn = conn
	}
	var ok bool
	if err := l.conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", l.key).Scan(&ok); err != nil {
		l.dropConn()
		return false, fmt.Errorf("try the %s lock: %w", l.name, err)
	}
	l.held = ok
	return ok, nil
}

// Close frees the lock and ends its session. The lock is released explicitly first: a closed
// connection frees it only once the server's backend has noticed and exited, a moment later.
func (l *LeaderLock) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), lockCheckTimeout)
	defer cancel()
	if l.held {
		l.conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", l.key) // the session's end frees it anyway
	}
	err := l.conn.Close(ctx)
	l.conn, l.held = nil, false
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("close the %s lock: %w", l.name, err)
	}
	return nil
}

// dropConn forgets a connection that failed; its session (and any lock it held) is gone or going.
func (l *LeaderLock) dropConn() {
	if l.conn != nil {
		l.conn.Close(context.Background())
	}
	l.conn, l.held = nil, false
}

// BackendPID returns the server process id of the lock's session (0 without one), so a test can
// end that session the way a dead process's session ends.
func (l *LeaderLock) BackendPID() uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return 0
	}
	return l.conn.PgConn().PID()
}
