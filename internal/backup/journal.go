package backup

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
func (j *Job) ShipJournal(ctx context.Context) (int, error) {
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
	var errs []error
	if len(ds) > 0 {
		// One segment for all targets: a target further ahead gets entries it had (harmless).
		seg, err := encodeSegment(ds, j.Recipients)
		if err != nil {
			return 0, err
		}
		name := journalPrefix + j.now().Format(journalTimeFormat) + "-" + randHex(4) + ".jsonl.gz.age"
		for _, t := range j.Targets {
			if st.Shipped[t.String()] >= upto {
				continue
			}
			if err := t.Put(ctx, name, bytes.NewReader(seg), int64(len(seg))); err != nil {
				errs = append(errs, err)
				continue
			}
			st.Shipped[t.String()] = upto
		}
	} else {
		for _, t := range j.Targets {
			st.Shipped[t.String()] = max(st.Shipped[t.String()], upto)
		}
	}
	if err := j.writeJournalState(st); err != nil {
		errs = append(errs, fmt.Errorf("save journal state: %w", err))
	}
	if len(ds) > 0 {
		j.logger().Info("deletion journal shipped", "entries", len(ds), "up_to_event", upto, "failed_targets", len(errs))
	}
	return len(ds), errors.Join(errs...)
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

// readJournal reads every journal entry shipped to the targets at or after since, deduplicated.
// Any target that cannot be read fails the call: a restore must not silently skip deletions.
func readJournal(ctx context.Context, targets []Target, since time.Time, ids []age.Identity) ([]chatvault.Deletion, int, error) {
	seen := map[string]bool{}
	type key struct {
		kind      chatvault.DeletionKind
		org, conv string
		seq       int64
		id        string
	}
	have := map[key]bool{}
	var out []chatvault.Deletion
	segments := 0
	for _, t := range targets {
		names, err := t.List(ctx, journalPrefix)
		if err != nil {
			return nil, 0, fmt.Errorf("read the deletion journal: %w (restore needs every target's journal so that nothing deleted comes back)", err)
		}
		for _, n := range names {
			base := strings.TrimPrefix(n, journalPrefix)
			ts, _, _ := strings.Cut(base, "-")
			at, err := time.Parse(journalTimeFormat, ts)
			if err != nil || at.Before(since.Add(-journalMargin)) || seen[base] {
				continue
			}
			seen[base] = true
			segments++
			ds, err := readSegment(ctx, t, n, ids)
			if err != nil {
				return nil, 0, err
			}
			for _, d := range ds {
				k := key{d.Kind, d.OrgID, d.ConversationID, d.Seq, d.MessageID}
				if !have[k] {
					have[k] = true
					out = append(out, d)
				}
			}
		}
	}
	return out, segments, nil
}

func readSegment(ctx context.Context, t Target, name string, ids []age.Identity) ([]chatvault.Deletion, error) {
	rc, err := t.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	plain, err := age.Decrypt(bufio.NewReader(rc), ids...)
	if err != nil {
		return nil, fmt.Errorf("journal segment %s on %s: %w", name, t, err)
	}
	zr, err := gzip.NewReader(plain)
	if err != nil {
		return nil, fmt.Errorf("journal segment %s on %s: %w", name, t, err)
	}
	var out []chatvault.Deletion
	dec := json.NewDecoder(zr)
	for {
		var d chatvault.Deletion
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("journal segment %s on %s: %w", name, t, err)
		}
		out = append(out, d)
	}
}
