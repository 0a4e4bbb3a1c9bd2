package account

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/audit"
	"github.com/chatvault/chatvault/internal/clocktest"
	"github.com/chatvault/chatvault/internal/sqlite"
)

// TestBusyHashingShedsBeforeTheHash: when every hashing slot is taken, a login is refused with
// ETOOMANY and a retry hint, and it counts as no failure.
func TestBusyHashingShedsBeforeTheHash(t *testing.T) {
	db, err := sqlite.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clock := clocktest.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	s := NewService(db, clock, Config{Audit: audit.New(db, db.Keyring(), clock),
		Login: LoginPolicy{HashConcurrency: 1, HashWait: time.Millisecond}})
	ctx := context.Background()
	_, _, password, err := s.Bootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.hashes <- struct{}{} // every slot busy
	for range 20 {
		_, err := s.Login(ctx, LoginRequest{Username: "admin", Password: "wrong-password", DeviceName: "d", Source: "192.0.2.1"})
		var e *chatvault.Error
		if chatvault.ErrorCode(err) != chatvault.ETOOMANY || !asError(err, &e) || e.RetryAfter < time.Second {
			t.Fatalf("Login with every hashing slot busy = %v; want %s with a RetryAfter", err, chatvault.ETOOMANY)
		}
	}
	<-s.hashes
	if _, err := s.Login(ctx, LoginRequest{Username: "admin", Password: password, DeviceName: "d", Source: "192.0.2.1"}); err != nil {
		t.Fatalf("Login once a slot is free = %v; want success (shed attempts are not failures)", err)
	}
}

func asError(err error, e **chatvault.Error) bool { return errors.As(err, e) }
