package backup

import (
	"context"
	"time"

	"filippo.io/age"
	"github.com/robfig/cron/v3"
)

// JournalInterval is how often a running server ships the deletion journal between backups: the
// longest a deletion can go unrecorded outside the server.
const JournalInterval = time.Minute

// Scheduler runs the backup job on a cron schedule inside the server: create (with a check of the
// snapshot before upload), verify when Verify is set (in full when Identities are given, else every
// stored copy byte for byte), prune; and it ships the deletion journal every JournalInterval.
// Failures are logged and counted in the job's Metrics; the next run tries again.
type Scheduler struct {
	Job        *Job
	Schedule   cron.Schedule
	Verify     bool
	Identities []age.Identity
	// Now is the clock of the schedule; default time.Now.
	Now func() time.Time
}

// Run runs until ctx ends.
func (s *Scheduler) Run(ctx context.Context) {
	now := s.Now
	if now == nil {
		now = time.Now
	}
	journal := time.NewTicker(JournalInterval)
	defer journal.Stop()
	for {
		next := s.Schedule.Next(now())
		timer := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-journal.C:
			timer.Stop()
			if _, err := s.Job.ShipJournal(ctx); err != nil && ctx.Err() == nil {
				s.Job.logger().Warn("deletion journal not shipped to every target; retrying in a minute", "error", err)
			}
		case <-timer.C:
			s.RunOnce(ctx)
		}
	}
}

// RunOnce creates, verifies and prunes once.
func (s *Scheduler) RunOnce(ctx context.Context) {
	res, err := s.Job.Create(ctx, true)
	if err != nil {
		return // logged and counted by Create
	}
	if s.Verify {
		if _, err := s.Job.Verify(ctx, res.ID, s.Identities); err != nil {
			return // logged and counted by Verify; keep older backups: do not prune after a failure
		}
	}
	if _, err := s.Job.Prune(ctx); err != nil && ctx.Err() == nil {
		s.Job.logger().Error("backup prune failed", "error", err)
	}
}
