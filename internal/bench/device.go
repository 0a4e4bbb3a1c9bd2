package bench

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"sync"

	"github.com/chatvault/chatvault"
	"github.com/google/uuid"
)

// DeviceStore is what SignIn needs from a store.
type DeviceStore interface {
	CreateDevice(ctx context.Context, d *chatvault.Device) error
}

// SignIn registers a signed-in device for each user directly in the store and returns the
// devices' bearer tokens, in order. It writes what account.Service.Login writes after the password
// check (a device row holding the SHA-256 of a "cvt_" + base64url(32 random bytes) token), so a
// benchmark can put thousands of devices online without an argon2id hash per login (~40 ms each).
// The product's login path is unchanged; the tests check the tokens authenticate through it.
func SignIn(ctx context.Context, st DeviceStore, users []*chatvault.User, deviceName string) ([]string, error) {
	tokens := make([]string, len(users))
	errs := make([]error, len(users))
	work := make(chan int)
	var wg sync.WaitGroup
	for range 64 { // concurrent callers share the writer's transactions and fsyncs
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				u := users[i]
				buf := make([]byte, 32)
				rand.Read(buf)
				tok := "cvt_" + base64.RawURLEncoding.EncodeToString(buf)
				h := sha256.Sum256([]byte(tok))
				d := &chatvault.Device{OrgID: u.OrgID, ID: uuid.Must(uuid.NewV7()).String(), UserID: u.ID, Name: deviceName,
					CreatedAt: chatvault.SystemClock{}.Now(), TokenHash: h[:]}
				if errs[i] = st.CreateDevice(ctx, d); errs[i] == nil {
					tokens[i] = tok
				}
			}
		}()
	}
	for i := range users {
		work <- i
	}
	close(work)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("sign %s in: %w", users[i].Username, err)
		}
	}
	return tokens, nil
}
