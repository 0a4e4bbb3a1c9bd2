// Package audit is the audit log's one way in and out. Every admin action and every read of
// message content by someone who is not a participant calls Record, and Record fails closed: when
// the entry cannot be written it returns an error, and the caller then neither acts nor returns
// content. Auditors read the log through Entries.
//
// The free text of an entry (its Reason and Details: an org-wide search's query, a rule's
// pattern, a hold's name and reason) can carry what a user typed, a password searched for
// included, so Record seals it under the org's audit key (AES-256-GCM, bound to the entry's
// org, time, actor, action, target and outcome) before the store sees it; the store keeps the
// envelope in Details under SealedKey, and the key wrapped by the KEK like the search index key.
// A store without encryption at rest keeps the key unwrapped beside the data, as it keeps its
// bodies: the log is then unreadable to a grep, not to someone holding the database.
package audit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
)

// SealedKey is the Details key under which a stored entry keeps its sealed free text.
const SealedKey = "sealed"

// Outcomes an entry can have besides a refusal's "refused: ...".
const (
	OutcomeOK      = "ok"
	OutcomeStarted = "started" // written before a long action; a later entry says how it ended
)

// Stores is what the audit log needs from a store.
type Stores interface {
	chatvault.AuditStore
	chatvault.AuditKeyStore
}

// Service writes and reads the audit log.
type Service struct {
	store Stores
	kr    *keyring.Keyring // nil: the store runs without encryption at rest
	clock chatvault.Clock

	mu   sync.Mutex
	orgs map[string]*orgKeys
}

// orgKeys are one org's audit keys, unwrapped: seal is the newest, open every one by number.
type orgKeys struct {
	seal *keyring.DataKey
	open map[int64]*keyring.DataKey
}

// New returns the audit log over store. kr is the keyring the store's data keys are wrapped with,
// nil when the store runs without encryption at rest.
func New(store Stores, kr *keyring.Keyring, clock chatvault.Clock) *Service {
	return &Service{store: store, kr: kr, clock: clock, orgs: map[string]*orgKeys{}}
}

// Record writes e (its At set from the clock when zero) and sets e.ID. An error means nothing was
// written: the caller must not act, or return content, on it.
func (s *Service) Record(ctx context.Context, e *chatvault.AuditEntry) error {
	if e.At.IsZero() {
		e.At = s.clock.Now()
	}
	if e.Outcome == "" {
		e.Outcome = OutcomeOK
	}
	stored := *e
	if e.Reason != "" || len(e.Details) > 0 {
		k, err := s.sealKey(ctx, e.OrgID)
		if err != nil {
			return fmt.Errorf("record audit entry %s: %w", e.Action, err)
		}
		text, err := seal(k, e)
		if err != nil {
			return fmt.Errorf("record audit entry %s: %w", e.Action, err)
		}
		stored.Reason, stored.Details = "", map[string]any{SealedKey: text}
	}
	if err := s.store.RecordAudit(ctx, &stored); err != nil {
		return fmt.Errorf("record audit entry %s: %w", e.Action, err)
	}
	e.ID = stored.ID
	return nil
}

// Entries lists the org's newest entries, their free text opened, for those who may read the log.
func (s *Service) Entries(ctx context.Context, a chatvault.Actor, limit int) ([]*chatvault.AuditEntry, error) {
	if err := chatvault.Authorize(a, chatvault.PermReadAudit); err != nil {
		return nil, err
	}
	es, err := s.store.FindAudit(ctx, a.OrgID, limit)
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		if err := s.open(ctx, e); err != nil {
			return nil, fmt.Errorf("audit entry %d: %w", e.ID, err)
		}
	}
	return es, nil
}

// Seal seals plain under the org's audit key, bound to aad. It is for what an audited action
// keeps beside its entry that must not lie in the clear either: an export job's request (its
// query, its filters) and its checkpoint (the key of its staged records).
func (s *Service) Seal(ctx context.Context, org string, plain, aad []byte) ([]byte, error) {
	k, err := s.sealKey(ctx, org)
	if err != nil {
		return nil, fmt.Errorf("seal under the audit key: %w", err)
	}
	return k.Seal(plain, aad), nil
}

// Open opens what Seal sealed for the org under the same aad.
func (s *Service) Open(ctx context.Context, org string, sealed, aad []byte) ([]byte, error) {
	n, err := keyring.EnvelopeKey(sealed)
	if err != nil {
		return nil, err
	}
	k, err := s.openKey(ctx, org, n)
	if err != nil {
		return nil, err
	}
	return k.Open(sealed, aad)
}

// sealed is the free text of an entry, as sealed.
type sealed struct {
	Reason  string         `json:"reason,omitempty"`
	Details map[string]any `json:"details,omitempty"`
}

// aad binds sealed text to the entry's clear fields, so it cannot be moved to another entry, and
// those fields cannot be altered, without the entry failing to open.
func aad(e *chatvault.AuditEntry) []byte {
	return keyring.AAD("audit", e.OrgID, strconv.FormatInt(e.At.UnixMilli(), 10), e.ActorID, e.Action, e.Target, e.Outcome)
}

// seal returns e's free text sealed under k, as the store keeps it.
func seal(k *keyring.DataKey, e *chatvault.AuditEntry) (string, error) {
	plain, err := json.Marshal(sealed{Reason: e.Reason, Details: e.Details})
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(k.Seal(plain, aad(e))), nil
}

// open replaces a stored entry's sealed text with the plain text. Entries written before sealing
// existed have none and are left as they are.
func (s *Service) open(ctx context.Context, e *chatvault.AuditEntry) error {
	return unseal(e, func(n int64) (*keyring.DataKey, error) { return s.openKey(ctx, e.OrgID, n) })
}

// unseal opens e's sealed text, if it has any, with the key keyOf returns for its number. The
// stored form comes from the database, so it is checked as hostile: anything but an envelope
// sealed under the org's key for exactly this entry is an error.
func unseal(e *chatvault.AuditEntry, keyOf func(n int64) (*keyring.DataKey, error)) error {
	raw, ok := e.Details[SealedKey].(string)
	if !ok || len(e.Details) != 1 {
		return nil
	}
	env, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return fmt.Errorf("%w: sealed text is not base64", keyring.ErrIntegrity)
	}
	n, err := keyring.EnvelopeKey(env)
	if err != nil {
		return err
	}
	k, err := keyOf(n)
	if err != nil {
		return err
	}
	plain, err := k.Open(env, aad(e))
	if err != nil {
		return err
	}
	var st sealed
	if err := json.Unmarshal(plain, &st); err != nil {
		return fmt.Errorf("decode sealed text: %w", err)
	}
	e.Reason, e.Details = st.Reason, st.Details
	return nil
}

// sealKey returns the key new entries of the org are sealed with, making it on first use.
func (s *Service) sealKey(ctx context.Context, org string) (*keyring.DataKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ks, ok := s.orgs[org]; ok && ks.seal != nil {
		return ks.seal, nil
	}
	ks, err := s.load(ctx, org)
	if err != nil {
		return nil, err
	}
	if ks.seal != nil {
		return ks.seal, nil
	}
	// No key of the kind this store keeps yet: the org's first entry, or the first since the
	// store was given encryption at rest (entries sealed before stay under the plain key).
	var n int64
	for have := range ks.open {
		n = max(n, have)
	}
	n++
	id := keyring.AuditKeyID(org, n)
	var fresh chatvault.WrappedKey
	if s.kr != nil {
		_, kekID, wrapped, err := s.kr.NewDataKey(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("make audit key: %w", err)
		}
		fresh = chatvault.WrappedKey{N: n, KEKID: kekID, Wrapped: wrapped}
	} else {
		raw, err := keyring.RandomKey()
		if err != nil {
			return nil, err
		}
		fresh = chatvault.WrappedKey{N: n, Wrapped: raw}
	}
	kept, err := s.store.AddAuditKey(ctx, org, fresh)
	if err != nil {
		return nil, fmt.Errorf("store audit key: %w", err)
	}
	k, err := s.unwrap(ctx, org, *kept)
	if err != nil {
		return nil, err
	}
	ks.open[n], ks.seal = k, k
	return k, nil
}

// openKey returns the org's audit key number n.
func (s *Service) openKey(ctx context.Context, org string, n int64) (*keyring.DataKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ks, ok := s.orgs[org]; ok && ks.open[n] != nil {
		return ks.open[n], nil
	}
	ks, err := s.load(ctx, org) // another process may have added it
	if err != nil {
		return nil, err
	}
	if k := ks.open[n]; k != nil {
		return k, nil
	}
	return nil, fmt.Errorf("%w: audit key %d of org %s is not in the store", keyring.ErrDataKeyDestroyed, n, org)
}

// load reads the org's audit keys from the store; s.mu is held.
func (s *Service) load(ctx context.Context, org string) (*orgKeys, error) {
	wks, err := s.store.FindAuditKeys(ctx, org)
	if err != nil {
		return nil, fmt.Errorf("read audit keys: %w", err)
	}
	ks := &orgKeys{open: map[int64]*keyring.DataKey{}}
	var sealN int64
	for _, wk := range wks {
		k, err := s.unwrap(ctx, org, wk)
		if err != nil {
			return nil, err
		}
		ks.open[wk.N] = k
		// Seal under a wrapped key when the store has a keyring, under a plain one when not.
		if (wk.KEKID != "") == (s.kr != nil) && wk.N > sealN {
			ks.seal, sealN = k, wk.N
		}
	}
	s.orgs[org] = ks
	return ks, nil
}

func (s *Service) unwrap(ctx context.Context, org string, wk chatvault.WrappedKey) (*keyring.DataKey, error) {
	id := keyring.AuditKeyID(org, wk.N)
	if wk.KEKID == "" {
		return keyring.PlainDataKey(id, wk.Wrapped)
	}
	if s.kr == nil {
		return nil, fmt.Errorf("audit key %d is wrapped by KEK %s: open the store with its keys", wk.N, wk.KEKID)
	}
	return s.kr.Unwrap(ctx, id, wk.KEKID, wk.Wrapped)
}
