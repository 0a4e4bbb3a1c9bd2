package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Inspection is what Inspect read from a PostgreSQL store, for chatvault doctor.
type Inspection struct {
	// SchemaVersion is the database's schema (0: chatvault never ran on it); Want is what this
	// binary migrates to.
	SchemaVersion int `json:"schema_version"`
	Want          int `json:"schema_want"`
	// Skew is the database's clock minus this machine's, measured at the middle of the round trip;
	// RoundTrip bounds its error.
	Skew      time.Duration `json:"skew"`
	RoundTrip time.Duration `json:"round_trip"`
	// Bytes is pg_database_size of the database.
	Bytes int64 `json:"bytes"`
}

// Inspect connects to url and reads the schema version, the clock and the size without changing
// anything (no migration, no lock).
func Inspect(ctx context.Context, url string) (*Inspection, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	in := &Inspection{Want: SchemaVersion()}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('public.schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("read schema version: %w", err)
	}
	if exists {
		if err := conn.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM public.schema_migrations`).Scan(&in.SchemaVersion); err != nil {
			return nil, fmt.Errorf("read schema version: %w", err)
		}
	}
	if err := conn.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&in.Bytes); err != nil {
		return nil, fmt.Errorf("read database size: %w", err)
	}
	// The best of a few round trips: the shortest bounds the error of the reading most tightly.
	for i := 0; i < 3; i++ {
		var dbNow time.Time
		t0 := time.Now()
		if err := conn.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&dbNow); err != nil {
			return nil, fmt.Errorf("read the database's clock: %w", err)
		}
		rtt := time.Since(t0)
		if i == 0 || rtt < in.RoundTrip {
			in.RoundTrip = rtt
			in.Skew = dbNow.Sub(t0.Add(rtt / 2))
		}
	}
	return in, nil
}
