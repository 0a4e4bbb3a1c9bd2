package sqlite

import "context"

// Lead reports that this process runs the scheduled jobs (internal/jobs): an SQLite store is
// opened by one process, which therefore always leads.
func (db *DB) Lead(context.Context) (bool, error) { return true, nil }
