package account

import (
	"context"

	"github.com/chatvault/chatvault"
)

// Account changes are recorded before they take effect (fail-closed, as retention does): when the
// entry cannot be written the change does not happen. A refused attempt to change roles is
// recorded too, since that is what a reviewer of separation of duties looks for.

// audit writes one entry of an action by a.
func (s *Service) audit(ctx context.Context, a chatvault.Actor, action, target, outcome string, details map[string]any) error {
	if s.cfg.Audit == nil {
		return chatvault.Errorf(chatvault.EUNAVAILABLE, "the audit log is not available, so %s is refused", action)
	}
	return s.cfg.Audit.Record(ctx, &chatvault.AuditEntry{OrgID: a.OrgID, At: s.clock.Now(), ActorID: a.UserID,
		Action: action, Target: target, Outcome: outcome, Details: details})
}

// refused records a refusal and returns it; when the refusal cannot be recorded, that failure is
// returned instead.
func (s *Service) refused(ctx context.Context, a chatvault.Actor, action, target string, refusal error, details map[string]any) error {
	if err := s.audit(ctx, a, action, target, "refused: "+chatvault.ErrorMessage(refusal), details); err != nil {
		return err
	}
	return refusal
}

// revokeSessions signs out every live device of the user except keep ("" for none). Each
// revocation publishes the event that closes the device's open sockets.
func (s *Service) revokeSessions(ctx context.Context, orgID, userID, keep string) (int, error) {
	devices, err := s.store.FindDevices(ctx, orgID, userID)
	if err != nil {
		return 0, err
	}
	now, n := s.clock.Now(), 0
	for _, d := range devices {
		if d.ID == keep {
			continue
		}
		// ENOTFOUND: revoked meanwhile by someone else, which is what was wanted.
		if err := s.store.RevokeDevice(ctx, orgID, userID, d.ID, now); err != nil && chatvault.ErrorCode(err) != chatvault.ENOTFOUND {
			return n, err
		}
		n++
	}
	return n, nil
}
