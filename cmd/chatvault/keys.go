package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"text/tabwriter"
	"time"

	"github.com/chatvault/chatvault/internal/datadir"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/sqlite"
)

const keysUsage = `Usage: chatvault keys COMMAND [--data DIR] [--key-file FILE]

Commands:
  status            the key-encryption keys (KEKs), and how many data keys each wraps
  rotate            make a new KEK and re-wrap every data key with it (messages are not re-encrypted)
  rotate --rewrap-only
                    re-wrap with the current primary KEK without making a new one (after a rotation of
                    CHATVAULT_KEK, or to finish an interrupted rotation)
  retire KEK_ID     erase an old KEK once no data key is wrapped by it
  generate          print a new random KEK (base64) for CHATVAULT_KEK

The KEKs come from CHATVAULT_KEK / CHATVAULT_KEK_FILE when set, else from the key file.
rotate and retire refuse a data directory a server is using: stop it, rotate, start it again.
`

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return flag.ErrHelp
	}
	if isHelp(args[0]) {
		fmt.Fprint(stdout, keysUsage)
		return nil
	}
	if args[0] == "generate" {
		fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(keyring.Generate()))
		return nil
	}
	fs := flag.NewFlagSet("keys "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, keysUsage) }
	cf := addConfigFlags(fs, false)
	rewrapOnly := false
	switch args[0] {
	case "status", "retire":
	case "rotate":
		fs.BoolVar(&rewrapOnly, "rewrap-only", false, "re-wrap with the current primary KEK; make no new KEK")
	default:
		fmt.Fprint(stderr, keysUsage)
		return fmt.Errorf("unknown keys command %q", args[0])
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := cf.resolve()
	if err != nil {
		return err
	}
	if cfg.postgresStore() {
		return errPostgresStore("chatvault keys "+args[0], "key rotation for the PostgreSQL store is not built yet "+
			"(chatvault keys generate works: it opens nothing)")
	}
	mode := datadir.Exclusive
	if args[0] == "status" {
		mode = datadir.Shared
	}
	lock, err := lockDataDir(cfg, "keys "+args[0], mode)
	if err != nil {
		return err
	}
	defer lock.Release()
	kr, err := openKeyring(cfg)
	if err != nil {
		return err
	}
	keys, err := openKeysDatabase(cfg, lock)
	if err != nil {
		return err
	}
	if keys != nil {
		defer keys.Close()
	}
	switch args[0] {
	case "status":
		return keysStatus(ctx, stdout, kr, keys)
	case "rotate":
		return keysRotate(ctx, stdout, kr, keys, rewrapOnly)
	default:
		if fs.NArg() != 1 {
			return errors.New("retire needs the id of the KEK to retire (see chatvault keys status)")
		}
		return keysRetire(ctx, stdout, kr, keys, fs.Arg(0))
	}
}

// openKeysDatabase opens the data directory's keys database; nil when there is none yet.
func openKeysDatabase(cfg Config, lock *datadir.Lock) (*sqlite.KeyStore, error) {
	if err := mustHold(lock, cfg.Data); err != nil {
		return nil, err
	}
	path := sqlite.KeysPath(cfg.Data)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return sqlite.OpenKeyStore(path)
}

func keysStatus(ctx context.Context, w io.Writer, kr *keyring.Keyring, keys *sqlite.KeyStore) error {
	keks, err := kr.Provider().KEKs(ctx)
	if err != nil {
		return err
	}
	uses := map[string]sqlite.KEKUse{}
	if keys != nil {
		us, err := keys.Uses(ctx)
		if err != nil {
			return err
		}
		for _, u := range us {
			uses[u.KEKID] = u
		}
	}
	fmt.Fprintf(w, "key provider: %s\n", kr.Provider())
	if keys != nil {
		fmt.Fprintf(w, "keys database: %s\n\n", keys.Path())
	} else {
		fmt.Fprintf(w, "keys database: none yet (no message has been stored)\n\n")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEK\tCREATED\tSTATE\tKEYS WRAPPED")
	known := map[string]bool{}
	for _, k := range keks {
		known[k.ID] = true
		state := "active"
		switch {
		case k.Primary:
			state = "primary"
		case k.Retired:
			state = "retired " + k.RetiredAt.Format(time.DateOnly)
		}
		created := "-"
		if !k.CreatedAt.IsZero() {
			created = k.CreatedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", k.ID, created, state, uses[k.ID].DataKeys)
	}
	for id, u := range uses {
		if !known[id] {
			fmt.Fprintf(tw, "%s\t-\tMISSING from the provider\t%d\n", id, u.DataKeys)
		}
	}
	return tw.Flush()
}

func keysRotate(ctx context.Context, w io.Writer, kr *keyring.Keyring, keys *sqlite.KeyStore, rewrapOnly bool) error {
	if !rewrapOnly {
		rot, ok := kr.Provider().(keyring.Rotator)
		if !ok {
			return fmt.Errorf("%s cannot make keys: generate one (chatvault keys generate), set it as %s with the old one in %s, restart, then run chatvault keys rotate --rewrap-only",
				kr.Provider(), keyring.EnvKEK, keyring.EnvKEKPrevious)
		}
		info, err := rot.Rotate(ctx)
		if err != nil {
			return fmt.Errorf("rotate: %w", err)
		}
		fmt.Fprintf(w, "new primary KEK %s; new data keys are wrapped with it from now on\n", info.ID)
	}
	if keys == nil {
		fmt.Fprintln(w, "no data keys to re-wrap yet")
		return nil
	}
	n, err := keys.Rewrap(ctx, kr)
	if err != nil {
		return fmt.Errorf("re-wrap data keys (%d done; run it again to finish): %w", n, err)
	}
	fmt.Fprintf(w, "re-wrapped %d keys (data keys and search index keys)\n\n", n)
	if err := keysStatus(ctx, w, kr, keys); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nOnce an old KEK wraps 0 data keys, retire it: chatvault keys retire KEK_ID")
	return nil
}

func keysRetire(ctx context.Context, w io.Writer, kr *keyring.Keyring, keys *sqlite.KeyStore, id string) error {
	rot, ok := kr.Provider().(keyring.Rotator)
	if !ok {
		return fmt.Errorf("%s keeps no KEKs to retire: remove the old key from %s once chatvault keys status shows it wraps 0 data keys", kr.Provider(), keyring.EnvKEKPrevious)
	}
	if keys != nil {
		n, err := keys.WrappedBy(ctx, id)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("KEK %s still wraps %d data keys: run chatvault keys rotate --rewrap-only first", id, n)
		}
	}
	if err := rot.Retire(ctx, id); err != nil {
		return err
	}
	fmt.Fprintf(w, "retired KEK %s: its material is erased from %s (older copies of the key file in backups still hold it)\n", id, kr.Provider())
	return nil
}
