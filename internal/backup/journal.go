package backup

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/chatvault/chatvault"
)

// The deletion journal. Every purge, batch delete, erasure and recall commits an event in the same
// transaction as the change; ShipJournal reads those committed after what it shipped last (per
// target), turns them into entries that name each message by seq and id, and writes them,
// gzipped and encrypted like backups, as a new segment journal/TIME-RANDOM.jsonl.gz.age on every
// data target. A restore replays every segment shipped since its backup was taken. The journal
// lives on the targets, not in the data directory, so it survives the loss of the server.

// journalTimeFormat names segments by the time they were shipped.
const journalTimeFormat = "20060102T150405.000000000Z"

// journalMargin widens the window of segments a restore reads, against clock steps: replaying an
// entry that is already in the backup does nothing.
const journalMargin = time.Hour

type journalState struct {
	// Shipped maps a target to the event number shipped to it so far.
	Shipped map[string]int64 `json:"shipped"`
}

func (j *Job) readJournalState() journalState {
	st := journalState{Shipped: map[string]int64{}}
	if raw, err := os.ReadFile(j.JournalState); err == nil {
		json.Unmarshal(raw, &st)
		if st.Shipped == nil {
			st.Shipped = map[string]int64{}
		}
	}
	return st
}

func (j *Job) writeJournalState(st journalState) error {
	raw, _ := json.Marshal(st)
	if err := os.MkdirAll(filepath.Dir(j.JournalState), 0o700); err != nil {
		return err
	}
	tmp := j.JournalState + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, j.JournalState)
}

// ShipJournal sends the deletions committed since the last shipment to every data target that has
// not had them. A target that fails gets them next time. It returns how many entries it read.
// Shipments must not run at once (they share the state file): the caller keeps them apart.
func (j *Job) ShipJournal(ctx context.Context) (int, error) { return j.shipJournal(ctx, false) }

// segmentRecord is the signed description of a journal segment, stored beside it as NAME.sig:
// which segment it is, its exact bytes, and the events whose deletions it holds. A restore
// checks that the records it finds cover every event since its backup, so a removed, swapped
// or replayed segment is found rather than silently skipped.
type segmentRecord struct {
	Name   string `json:"name"` // under journal/
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// After and Upto: every deletion of an event numbered in (After, Upto] is in the segment.
	After int64 `json:"after"`
	Upto  int64 `json:"upto"`
}

const (
	sigSuffix       = ".sig"
	maxSegmentBytes = 256 << 20
	maxSigBytes     = 64 << 10
)

var segmentPattern = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}\.[0-9]{9}Z-[0-9a-f]{8}\.jsonl\.gz\.age$`)

// shipJournal ships the journal; force writes a segment even without deletions, so that the signed
// ranges reach the current event (Create does, so that the range of events a restore has to
// read back is bounded by the time between backups).
func (j *Job) shipJournal(ctx context.Context, force bool) (int, error) {
	if j.JournalState == "" || len(j.Targets) == 0 {
		return 0, nil
	}
	st := j.readJournalState()
	from := int64(-1)
	for _, t := range j.Targets {
		if n := st.Shipped[t.String()]; from < 0 || n < from {
			from = n
		}
	}
	ds, upto, err := j.Store.Deletions(ctx, from)
	if err != nil {
		return 0, fmt.Errorf("read deletion journal: %w", err)
	}
	if upto <= from || (len(ds) == 0 && !force) {
		// The mark stays where the last segment ended: segments' ranges must join up, or a
		// restore would take the hole for a removed segment.
		return 0, nil
	}
	if j.SigningKey == nil {
		return 0, errors.New("ship the deletion journal: no backup signing key (see chatvault backup key)")
	}
	// One segment for all targets: a target further ahead gets entries it had (harmless).
	seg, err := encodeSegment(ds, j.Recipients)
	if err != nil {
		return 0, err
	}
	sum := sha256.Sum256(seg)
	base := j.now().Format(journalTimeFormat) + "-" + randHex(4) + ".jsonl.gz.age"
	sig, err := seal(segmentContext, segmentRecord{Name: base, Size: int64(len(seg)), SHA256: hex.EncodeToString(sum[:]), After: from, Upto: upto}, j.SigningKey)
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, t := range j.Targets {
		if st.Shipped[t.String()] >= upto {
			continue
		}
		// The segment first, its signed record last: a segment without one is an interrupted upload.
		err := t.Put(ctx, journalPrefix+base, bytes.NewReader(seg), int64(len(seg)))
		if err == nil {
			err = t.Put(ctx, journalPrefix+base+sigSuffix, bytes.NewReader(sig), int64(len(sig)))
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		st.Shipped[t.String()] = upto
	}
	if err := j.writeJournalState(st); err != nil {
		errs = append(errs, fmt.Errorf("save journal state: %w", err))
	}
	if len(ds) > 0 {
		j.logger().Info("deletion journal shipped", "entries", len(ds), "up_to_event", upto, "failed_targets", len(errs))
	}
	return len(ds), errors.Join(errs...)
}

// shippedEverywhere is the event number the journal has reached on every data target.
func (j *Job) shippedEverywhere() int64 {
	st := j.readJournalState()
	upto := int64(-1)
	for _, t := range j.Targets {
		if n := st.Shipped[t.String()]; upto < 0 || n < upto {
			upto = n
		}
	}
	return max(upto, 0)
}

func encodeSegment(ds []chatvault.Deletion, rs []age.Recipient) ([]byte, error) {
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, rs...)
	if err != nil {
		return nil, err
	}
	zw := gzip.NewWriter(w)
	enc := json.NewEncoder(zw)
	for _, d := range ds {
		if err := enc.Encode(d); err != nil {
			return nil, err
		}
	}
	if err := errors.Join(zw.Close(), w.Close()); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// journalRead is what a restore takes from the journal.
type journalRead struct {
	deletions []chatvault.Deletion
	segments  int
}

// readJournal reads every journal entry a restore of backup man needs, deduplicated: those of
// every signed segment holding events after the backup's, from every target. The segments'
// signed ranges must cover every event from the backup's up to needUpto and to the newest
// segment found; a gap means a segment was removed or swapped, and fails the call, as does a
// target that cannot be read: a restore must not silently skip deletions. Unsigned segments
// (shipped before segments were signed) are refused unless allowUnsigned; they carry no range,
// so with them the gap check cannot be made.
func (j *Job) readJournal(ctx context.Context, man *Manifest, ids []age.Identity, needUpto int64) (*journalRead, error) {
	type key struct {
		kind      chatvault.DeletionKind
		org, conv string
		seq       int64
		id        string
	}
	have := map[key]bool{}
	seen := map[string]bool{}
	out := &journalRead{}
	var ranges []segmentRecord
	legacy := false
	add := func(ds []chatvault.Deletion) {
		out.segments++
		for _, d := range ds {
			k := key{d.Kind, d.OrgID, d.ConversationID, d.Seq, d.MessageID}
			if !have[k] {
				have[k] = true
				out.deletions = append(out.deletions, d)
			}
		}
	}
	since := man.CreatedAt.Add(-journalMargin)
	for _, t := range j.Targets {
		names, err := t.List(ctx, journalPrefix)
		if err != nil {
			return nil, fmt.Errorf("read the deletion journal: %w (restore needs every target's journal so that nothing deleted comes back)", err)
		}
		signed := map[string]bool{}
		oldestSigned := ""
		for _, n := range names {
			if base, ok := strings.CutSuffix(strings.TrimPrefix(n, journalPrefix), sigSuffix); ok && segmentPattern.MatchString(base) {
				signed[base] = true
				if oldestSigned == "" || base < oldestSigned {
					oldestSigned = base
				}
			}
		}
		for _, n := range names {
			base := strings.TrimPrefix(n, journalPrefix)
			if !segmentPattern.MatchString(base) || seen[base] {
				continue
			}
			if signed[base] {
				rec, err := readSegmentRecord(ctx, t, base, j.TrustedKeys)
				if err != nil {
					return nil, err
				}
				if rec.Upto <= man.EventCounter {
					continue // in the backup already
				}
				seen[base] = true
				ds, err := readSegment(ctx, t, base, rec, ids)
				if err != nil {
					return nil, err
				}
				ranges = append(ranges, *rec)
				add(ds)
				continue
			}
			ts, _, _ := strings.Cut(base, "-")
			at, err := time.Parse(journalTimeFormat, ts)
			if err != nil || at.Before(since) || (oldestSigned != "" && base > oldestSigned) {
				// Older than the backup, or an interrupted upload (its entries were shipped again).
				continue
			}
			if !j.AllowUnsigned {
				return nil, fmt.Errorf("journal segment %s on %s is unsigned (shipped before chatvault signed its journal), so nothing proves it was not altered: if you trust everyone who could write to that target, add --allow-unsigned", base, t)
			}
			seen[base] = true
			legacy = true
			ds, err := readSegment(ctx, t, base, nil, ids)
			if err != nil {
				return nil, err
			}
			add(ds)
		}
	}
	if legacy {
		return out, nil
	}
	return out, checkCoverage(man, ranges, needUpto)
}

// checkCoverage checks that the segments' ranges join up from the backup's event to needUpto and
// to the end of the newest segment.
func checkCoverage(man *Manifest, ranges []segmentRecord, needUpto int64) error {
	slices.SortFunc(ranges, func(a, b segmentRecord) int { return cmp.Compare(a.After, b.After) })
	covered := man.EventCounter
	for _, r := range ranges {
		if r.After > covered {
			return fmt.Errorf("%s backup %s: the deletion journal has a gap: no segment holds the deletions of events %d to %d (a segment was removed or swapped on the targets); restoring would bring deleted messages back", man.Kind, man.ID, covered+1, r.After)
		}
		covered = max(covered, r.Upto)
	}
	if covered < needUpto {
		return fmt.Errorf("%s backup %s: the deletion journal ends at event %d, but a later backup says it was shipped up to %d: segments were removed from the targets; restoring would bring deleted messages back", man.Kind, man.ID, covered, needUpto)
	}
	return nil
}

// readSegmentRecord reads and verifies the signed record of a segment.
func readSegmentRecord(ctx context.Context, t Target, base string, trusted []ed25519.PublicKey) (*segmentRecord, error) {
	bad := func(err error) error { return fmt.Errorf("journal segment %s on %s refused: %w", base, t, err) }
	rc, err := t.Get(ctx, journalPrefix+base+sigSuffix)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, maxSigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("journal segment %s on %s: %w", base, t, err)
	}
	if len(raw) > maxSigBytes {
		return nil, bad(errors.New("its signature file is too large"))
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil || env.Format != signedFormat {
		return nil, bad(fmt.Errorf("its signature file is malformed (%v)", err))
	}
	body, err := env.open(segmentContext, trusted)
	if err != nil {
		return nil, bad(err)
	}
	var rec segmentRecord
	if err := json.Unmarshal(body, &rec); err != nil {
		return nil, bad(err)
	}
	switch {
	case rec.Name != base:
		return nil, bad(fmt.Errorf("its signature is for segment %.80q: segments were renamed or swapped", rec.Name))
	case rec.Size < 0 || rec.Size > maxSegmentBytes || !sha256Pattern.MatchString(rec.SHA256):
		return nil, bad(fmt.Errorf("size %d or sha256 %.80q out of range", rec.Size, rec.SHA256))
	case rec.After < 0 || rec.Upto < rec.After:
		return nil, bad(fmt.Errorf("event range (%d, %d] is not valid", rec.After, rec.Upto))
	}
	return &rec, nil
}

// readSegment reads a segment, checks it against its signed record (nil: an unsigned one), and
// decrypts it. It is read whole first (segments are small and bounded) so that nothing of an
// altered one is decoded.
func readSegment(ctx context.Context, t Target, base string, rec *segmentRecord, ids []age.Identity) ([]chatvault.Deletion, error) {
	rc, err := t.Get(ctx, journalPrefix+base)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(ctxReader{ctx, rc}, maxSegmentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("journal segment %s on %s: %w", base, t, err)
	}
	sum := sha256.Sum256(raw)
	switch {
	case len(raw) > maxSegmentBytes:
		return nil, fmt.Errorf("journal segment %s on %s refused: larger than %d bytes", base, t, maxSegmentBytes)
	case rec != nil && (int64(len(raw)) != rec.Size || hex.EncodeToString(sum[:]) != rec.SHA256):
		return nil, fmt.Errorf("journal segment %s on %s refused: it is not the segment its signature describes (%d bytes, the signature says %d; or a different SHA-256): it was altered or swapped", base, t, len(raw), rec.Size)
	}
	plain, err := age.Decrypt(bytes.NewReader(raw), ids...)
	if err != nil {
		return nil, fmt.Errorf("journal segment %s on %s: %w", base, t, err)
	}
	zr, err := gzip.NewReader(plain)
	if err != nil {
		return nil, fmt.Errorf("journal segment %s on %s: %w", base, t, err)
	}
	var out []chatvault.Deletion
	dec := json.NewDecoder(zr)
	for {
		var d chatvault.Deletion
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("journal segment %s on %s: %w", base, t, err)
		}
		out = append(out, d)
	}
}
