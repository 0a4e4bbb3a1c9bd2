package backup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// PruneReport is what Prune removed.
type PruneReport struct {
	KeptData       []string `json:"kept_data"`
	DeletedData    []string `json:"deleted_data"`
	KeptKeys       []string `json:"kept_keys"`
	DeletedKeys    []string `json:"deleted_keys"`
	DeletedJournal int      `json:"deleted_journal"`
}

// Keep returns the ids to keep of backups taken at the given times (grandfather-father-son): the
// newest backup of each of the newest keep.Daily days, keep.Weekly ISO weeks and keep.Monthly
// months that have one (UTC), and always the newest backup.
func (k Keep) Select(times map[string]time.Time) map[string]bool {
	ids := make([]string, 0, len(times))
	for id := range times {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int { return times[b].Compare(times[a]) }) // newest first
	keep := map[string]bool{}
	if len(ids) > 0 {
		keep[ids[0]] = true
	}
	for _, rule := range []struct {
		n      int
		bucket func(time.Time) string
	}{
		{k.Daily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{k.Weekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }},
		{k.Monthly, func(t time.Time) string { return t.Format("2006-01") }},
	} {
		seen := map[string]bool{}
		for _, id := range ids {
			if len(seen) >= rule.n {
				break
			}
			b := rule.bucket(times[id].UTC())
			if !seen[b] {
				seen[b] = true
				keep[id] = true
			}
		}
	}
	return keep
}

// Prune applies the retention: data backups by Keep (from every target), key backups older than
// KeysKeepDays (the newest is always kept), journal segments older than the oldest data backup
// kept, and leftovers of interrupted uploads (parts without a manifest) older than a day.
func (j *Job) Prune(ctx context.Context) (*PruneReport, error) {
	rep := &PruneReport{}
	now := j.now()
	var errs []error
	data, err := listBackups(ctx, j.Targets, KindData, j.TrustedKeys)
	if errors.Is(err, errBadManifest) {
		// A backup whose manifest does not verify is not listed, so it would count as not kept.
		return nil, fmt.Errorf("prune refused, nothing deleted: %w", err)
	}
	if err != nil {
		errs = append(errs, err)
	}
	times := map[string]time.Time{}
	for _, e := range data {
		times[e.Manifest.ID] = e.Manifest.CreatedAt
	}
	keep := j.Keep.Select(times)
	var oldestKept time.Time
	for _, e := range data {
		if keep[e.Manifest.ID] {
			rep.KeptData = append(rep.KeptData, e.Manifest.ID)
			if oldestKept.IsZero() || e.Manifest.CreatedAt.Before(oldestKept) {
				oldestKept = e.Manifest.CreatedAt
			}
		} else {
			rep.DeletedData = append(rep.DeletedData, e.Manifest.ID)
		}
	}
	errs = append(errs, j.deleteBackups(ctx, j.Targets, KindData, keep, now)...)

	keys, err := listBackups(ctx, j.KeyTargets, KindKeys, j.TrustedKeys)
	if errors.Is(err, errBadManifest) {
		return rep, fmt.Errorf("prune of key backups refused, none deleted: %w", err)
	}
	if err != nil {
		errs = append(errs, err)
	}
	keepKeys := map[string]bool{}
	cutoff := now.Add(-time.Duration(j.KeysKeepDays) * 24 * time.Hour)
	for i, e := range keys {
		if i == len(keys)-1 || e.Manifest.CreatedAt.After(cutoff) {
			keepKeys[e.Manifest.ID] = true
			rep.KeptKeys = append(rep.KeptKeys, e.Manifest.ID)
		} else {
			rep.DeletedKeys = append(rep.DeletedKeys, e.Manifest.ID)
		}
	}
	errs = append(errs, j.deleteBackups(ctx, j.KeyTargets, KindKeys, keepKeys, now)...)

	// Journal segments older than every kept data backup are already in all of them.
	if !oldestKept.IsZero() && len(errs) == 0 {
		before := oldestKept.Add(-2 * journalMargin)
		for _, t := range j.Targets {
			names, err := t.List(ctx, journalPrefix)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, n := range names {
				ts, _, _ := strings.Cut(strings.TrimPrefix(n, journalPrefix), "-")
				if at, err := time.Parse(journalTimeFormat, ts); err == nil && at.Before(before) {
					if err := t.Delete(ctx, n); err != nil {
						errs = append(errs, err)
						continue
					}
					if !strings.HasSuffix(n, sigSuffix) {
						rep.DeletedJournal++ // segments, not their signatures
					}
				}
			}
		}
	}
	if len(rep.DeletedData)+len(rep.DeletedKeys) > 0 {
		j.logger().Info("backups pruned", "data_deleted", len(rep.DeletedData), "keys_deleted", len(rep.DeletedKeys), "journal_segments_deleted", rep.DeletedJournal)
	}
	return rep, errors.Join(errs...)
}

// deleteBackups removes, from every target, the backups of a kind not in keep: the manifest first
// (so a half-deleted backup is never listed), then the parts. Parts with no manifest (an upload
// that never finished) are removed once their id is a day old.
func (j *Job) deleteBackups(ctx context.Context, targets []Target, kind string, keep map[string]bool, now time.Time) []error {
	var errs []error
	for _, t := range targets {
		names, err := t.List(ctx, kind+"/")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		byID := map[string][]string{}
		complete := map[string]bool{}
		for _, n := range names {
			id, rest, ok := strings.Cut(strings.TrimPrefix(n, kind+"/"), "/")
			if !ok {
				continue
			}
			if rest == manifestName {
				complete[id] = true
				byID[id] = append([]string{n}, byID[id]...)
			} else {
				byID[id] = append(byID[id], n)
			}
		}
		for id, files := range byID {
			if keep[id] {
				continue
			}
			if !complete[id] {
				at, err := idTime(id)
				if err != nil || now.Sub(at) < 24*time.Hour {
					continue // maybe an upload in progress
				}
			}
			for _, f := range files {
				if err := t.Delete(ctx, f); err != nil {
					errs = append(errs, err)
					break
				}
			}
		}
	}
	return errs
}
