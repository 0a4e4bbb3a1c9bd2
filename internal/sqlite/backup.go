package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/sqlstore"
)

// Backups. A snapshot is made with VACUUM INTO from a connection of its own: SQLite reads the
// database inside one read transaction (WAL lets the writer go on meanwhile) and writes a new,
// compact file holding only live content, so no free page of the copy keeps a body that was
// destroyed before the snapshot. The copy never holds key material: that lives in the keys
// database, snapshotted separately (SnapshotKeys) into key backups with their own retention.

var _ chatvault.BackupStore = (*DB)(nil)

// Snapshot writes a consistent copy of the database to path (which must not exist) while writes
// go on, and counts what it holds.
func (db *DB) Snapshot(ctx context.Context, path string) (*chatvault.SnapshotInfo, error) {
	if err := vacuumInto(ctx, db.path, path); err != nil {
		return nil, err
	}
	return DescribeFile(ctx, path)
}

// SnapshotKeys writes a consistent copy of the keys database to path.
func (db *DB) SnapshotKeys(ctx context.Context, path string) error {
	if db.keys == nil {
		return errors.New("snapshot keys: the store runs without encryption at rest: there is no keys database")
	}
	return vacuumInto(ctx, db.keys.path, path)
}

// vacuumInto copies the SQLite database src into the new file dst, consistently.
func vacuumInto(ctx context.Context, src, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("snapshot: %s already exists", dst)
	}
	conn, err := sql.Open("sqlite", dsn(src, false))
	if err != nil {
		return fmt.Errorf("open %s: %w", src, err)
	}
	defer conn.Close()
	conn.SetMaxOpenConns(1)
	if _, err := conn.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		os.Remove(dst)
		return fmt.Errorf("snapshot %s: %w", src, err)
	}
	return nil
}

// DescribeFile counts the rows of every table of the SQLite database at path and reads its schema
// version and event counter. It opens the file read-only.
func DescribeFile(ctx context.Context, path string) (*chatvault.SnapshotInfo, error) {
	conn, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=query_only(1)")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer conn.Close()
	conn.SetMaxOpenConns(1)
	info := &chatvault.SnapshotInfo{}
	if err := conn.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&info.SchemaVersion); err != nil {
		return nil, fmt.Errorf("read schema version of %s: %w", path, err)
	}
	if info.Tables, err = countTables(ctx, conn); err != nil {
		return nil, fmt.Errorf("count rows of %s: %w", path, err)
	}
	if _, ok := info.Tables["counters"]; ok {
		if err := conn.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'event'`).Scan(&info.EventCounter); err != nil {
			return nil, fmt.Errorf("read event counter of %s: %w", path, err)
		}
	}
	return info, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func countTables(ctx context.Context, q querier) (map[string]int64, error) {
	rows, err := q.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		return nil, err
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, err
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(names))
	for _, n := range names {
		var c int64
		if err := q.QueryRowContext(ctx, `SELECT count(*) FROM "`+strings.ReplaceAll(n, `"`, `""`)+`"`).Scan(&c); err != nil {
			return nil, fmt.Errorf("count %s: %w", n, err)
		}
		out[n] = c
	}
	return out, nil
}

// Deletions reads, from one consistent snapshot, the destructive changes committed after event
// number after: every message now purged within the range of a purge event, and every message
// still recalled by a recall event. Purged is final, so an entry read later than its event (a
// superset) is still right. It returns the event number the read covers.
func (db *DB) Deletions(ctx context.Context, after int64) ([]chatvault.Deletion, int64, error) {
	tx, err := db.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback()
	var upto int64
	if err := tx.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'event'`).Scan(&upto); err != nil {
		return nil, 0, fmt.Errorf("read event counter: %w", err)
	}
	if upto <= after {
		return nil, upto, nil
	}
	type conv struct{ org, id string }
	var convs []conv
	rows, err := tx.QueryContext(ctx, `SELECT c.org_id, c.id FROM orgs o JOIN conversations c ON c.org_id = o.id AND c.last_event_id > ?
		ORDER BY c.org_id, c.id`, after)
	if err != nil {
		return nil, 0, fmt.Errorf("find changed conversations: %w", err)
	}
	for rows.Next() {
		var c conv
		if err := rows.Scan(&c.org, &c.id); err != nil {
			rows.Close()
			return nil, 0, err
		}
		convs = append(convs, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	var out []chatvault.Deletion
	for _, c := range convs {
		type ev struct {
			kind     string
			from, to int64
			at       int64
		}
		var evs []ev
		rows, err := tx.QueryContext(ctx, `SELECT kind, COALESCE(from_seq, seq), seq, created_at FROM events
			WHERE org_id = ? AND conversation_id = ? AND id > ? AND id <= ? AND kind IN (?, ?) AND seq IS NOT NULL ORDER BY id`,
			c.org, c.id, after, upto, chatvault.EventPurged, chatvault.EventRecalled)
		if err != nil {
			return nil, 0, fmt.Errorf("read events: %w", err)
		}
		for rows.Next() {
			var e ev
			if err := rows.Scan(&e.kind, &e.from, &e.to, &e.at); err != nil {
				rows.Close()
				return nil, 0, err
			}
			evs = append(evs, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, 0, err
		}
		seen := map[int64]bool{}
		for _, e := range evs {
			rows, err := tx.QueryContext(ctx, `SELECT seq, id, state FROM messages WHERE org_id = ? AND conversation_id = ?
				AND seq >= ? AND seq <= ? AND state IN ('purged', 'recalled') ORDER BY seq`, c.org, c.id, e.from, e.to)
			if err != nil {
				return nil, 0, fmt.Errorf("read deleted messages: %w", err)
			}
			for rows.Next() {
				d := chatvault.Deletion{OrgID: c.org, ConversationID: c.id, At: sqlstore.FromMillis(e.at)}
				var state string
				if err := rows.Scan(&d.Seq, &d.MessageID, &state); err != nil {
					rows.Close()
					return nil, 0, err
				}
				if seen[d.Seq] {
					continue
				}
				seen[d.Seq] = true
				d.Kind = chatvault.DeletionRecalled
				if state == string(chatvault.StatePurged) {
					d.Kind = chatvault.DeletionDestroyed
				}
				out = append(out, d)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, 0, err
			}
		}
	}
	return out, upto, nil
}

// applyChunk is how many journal entries one replay transaction applies.
const applyChunk = 1000

// ApplyDeletions does again what journal entries record, on a restored copy: a destroyed message
// loses its body, versions, hides and stars exactly as a purge does (a tombstone stays); a
// recalled one is recalled. An entry applies only to the message with its seq and id, and only if
// that is not done yet. Data keys left protecting nothing are then destroyed. secure_delete is on
// for these writes, so the destroyed bodies do not stay in free pages.
func (db *DB) ApplyDeletions(ctx context.Context, ds []chatvault.Deletion) (int, error) {
	type convKey struct{ org, id string }
	touched := map[convKey]bool{}
	applied := 0
	for start := 0; start < len(ds); start += applyChunk {
		chunk := ds[start:min(start+applyChunk, len(ds))]
		n := 0
		err := db.update(ctx, func(ctx context.Context, tx *wtx) error {
			n = 0
			if _, err := tx.ExecContext(ctx, `PRAGMA secure_delete = ON`); err != nil {
				return fmt.Errorf("enable secure_delete: %w", err)
			}
			for _, d := range chunk {
				at := sqlstore.Millis(d.At)
				var res sql.Result
				var err error
				switch d.Kind {
				case chatvault.DeletionDestroyed:
					res, err = tx.ExecContext(ctx, `UPDATE messages SET body = NULL, client_msg_id = NULL, reply_to = NULL, state = 'purged',
						state_at = ?1, importance = 0, expired_at = COALESCE(expired_at, ?1)
						WHERE org_id = ?2 AND conversation_id = ?3 AND seq = ?4 AND id = ?5 AND state != 'purged'`,
						at, d.OrgID, d.ConversationID, d.Seq, d.MessageID)
				case chatvault.DeletionRecalled:
					res, err = tx.ExecContext(ctx, `UPDATE messages SET state = 'recalled', state_at = ?1
						WHERE org_id = ?2 AND conversation_id = ?3 AND seq = ?4 AND id = ?5 AND state = 'live'`,
						at, d.OrgID, d.ConversationID, d.Seq, d.MessageID)
				default:
					return fmt.Errorf("journal entry for message %s: unknown kind %q", d.MessageID, d.Kind)
				}
				if err != nil {
					return fmt.Errorf("replay %s of message %s: %w", d.Kind, d.MessageID, err)
				}
				if k, _ := res.RowsAffected(); k == 0 {
					continue
				}
				n++
				if err := unindexSeqs(ctx, tx, d.OrgID, d.ConversationID, fmt.Sprintf("[%d]", d.Seq)); err != nil {
					return err
				}
				if d.Kind != chatvault.DeletionDestroyed {
					continue
				}
				touched[convKey{d.OrgID, d.ConversationID}] = true
				for _, q := range []string{
					`DELETE FROM message_versions WHERE org_id = ? AND conversation_id = ? AND seq = ?`,
					`DELETE FROM hidden_messages WHERE org_id = ? AND conversation_id = ? AND seq = ?`,
					`DELETE FROM stars WHERE org_id = ? AND conversation_id = ? AND seq = ?`,
				} {
					if _, err := tx.ExecContext(ctx, q, d.OrgID, d.ConversationID, d.Seq); err != nil {
						return fmt.Errorf("replay destruction of message %s: %w", d.MessageID, err)
					}
				}
				if _, err := tx.emit(ctx, chatvault.Event{OrgID: d.OrgID, Kind: chatvault.EventPurged, ConversationID: d.ConversationID,
					FromSeq: d.Seq, Seq: d.Seq, At: d.At}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return applied, err
		}
		applied += n
	}
	for c := range touched {
		if _, err := db.DestroyEmptyDataKeys(ctx, c.org, c.id); err != nil {
			return applied, fmt.Errorf("destroy empty data keys: %w", err)
		}
	}
	return applied, nil
}

// Check runs SQLite's integrity check, counts rows per table, and opens up to sample random
// message bodies with the store's keys. A body whose data key was destroyed counts as shredded;
// any other failure to open one is an error.
func (db *DB) Check(ctx context.Context, sample int) (*chatvault.CheckReport, error) {
	rep := &chatvault.CheckReport{}
	rows, err := db.read.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return nil, fmt.Errorf("integrity check: %w", err)
	}
	var problems []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return nil, fmt.Errorf("integrity check: %w", err)
		}
		problems = append(problems, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("integrity check: %w", err)
	}
	rep.Integrity = strings.Join(problems, "; ")
	if rep.Integrity != "ok" {
		return rep, fmt.Errorf("integrity check of %s failed: %s", db.path, rep.Integrity)
	}
	if rep.Tables, err = countTables(ctx, db.read); err != nil {
		return rep, fmt.Errorf("count rows: %w", err)
	}
	if sample <= 0 {
		return rep, nil
	}
	// A random sample in one pass, without sorting: each body is taken with probability about
	// sample/total (messages is WITHOUT ROWID, so there are no row numbers to jump to).
	every := max(1, rep.Tables["messages"]/int64(sample))
	srows, err := db.read.QueryContext(ctx, `SELECT org_id, conversation_id, id, version, body FROM messages
		WHERE body IS NOT NULL AND abs(random()) % ?1 = 0 LIMIT ?2`, every, sample)
	if err != nil {
		return rep, fmt.Errorf("sample messages: %w", err)
	}
	defer srows.Close()
	for srows.Next() {
		var org, conv, id string
		var version int
		var body []byte
		if err := srows.Scan(&org, &conv, &id, &version, &body); err != nil {
			return rep, fmt.Errorf("sample messages: %w", err)
		}
		rep.Sampled++
		if _, err := db.OpenBody(ctx, nil, org, conv, id, version, body); err != nil {
			if errors.Is(err, keyring.ErrDataKeyDestroyed) {
				rep.Shredded++
				continue
			}
			return rep, fmt.Errorf("decrypt a sampled message: %w", err)
		}
		rep.Opened++
	}
	return rep, srows.Err()
}
