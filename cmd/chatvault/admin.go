package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/account"
	"github.com/chatvault/chatvault/internal/audit"
)

const adminUsage = `Usage:
  chatvault admin create-org --slug SLUG [--name NAME] --admin USERNAME [--time-zone TZ] [--data DIR]
      create an org with its first admin; prints the admin's one-time password
  chatvault admin set-time-zone --org SLUG --time-zone TZ [--data DIR]
      the IANA time zone (Asia/Shanghai, UTC, ...) exports show times in unless they name another
  chatvault admin list-orgs [--data DIR]
  chatvault admin reset-password --org SLUG --user USERNAME [--data DIR]
      set a new one-time password; prints it

These work on the data directory directly, and refuse while a server uses it: stop the server,
or do the same through the API (POST /api/v1/admin/...).
`

func runAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, adminUsage)
		return flag.ErrHelp
	}
	if isHelp(args[0]) {
		fmt.Fprint(stdout, adminUsage)
		return nil
	}
	fs := flag.NewFlagSet("admin "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, adminUsage); fs.PrintDefaults() }
	cf := addConfigFlags(fs, false)
	var slug, name, username, org, tz string
	switch args[0] {
	case "create-org":
		fs.StringVar(&slug, "slug", "", "short name of the org, typed at login (a-z, 0-9, -)")
		fs.StringVar(&name, "name", "", "display name of the org")
		fs.StringVar(&username, "admin", "", "username of the org's first admin")
		fs.StringVar(&tz, "time-zone", "", "IANA time zone exports show times in (default UTC)")
	case "set-time-zone":
		fs.StringVar(&org, "org", "", "slug of the org")
		fs.StringVar(&tz, "time-zone", "", "IANA time zone, e.g. Asia/Shanghai")
	case "reset-password":
		fs.StringVar(&org, "org", "", "slug of the user's org")
		fs.StringVar(&username, "user", "", "username")
	case "list-orgs":
	default:
		fmt.Fprint(stderr, adminUsage)
		return fmt.Errorf("unknown admin command %q", args[0])
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := cf.resolve()
	if err != nil {
		return err
	}
	// Exclusive even for list-orgs: opening the store may write (schema upgrade, search backlog).
	db, done, err := openAlone(ctx, cfg, "admin "+args[0], newLogger(cfg.Log, stderr))
	if err != nil {
		return err
	}
	defer done()
	accounts := account.NewService(db, chatvault.SystemClock{}, account.Config{Audit: audit.New(db, db.Keyring(), chatvault.SystemClock{})})

	switch args[0] {
	case "create-org":
		if slug == "" || username == "" {
			return errors.New("create-org needs --slug and --admin")
		}
		if tz != "" {
			if err := account.CheckTimeZone(tz); err != nil {
				return describe(err)
			}
		}
		o, admin, password, err := accounts.CreateOrg(ctx, slug, name, username)
		if err != nil {
			return describe(err)
		}
		if tz != "" {
			if o, err = accounts.SetTimeZoneBySlug(ctx, o.Slug, tz); err != nil {
				return describe(err)
			}
		}
		fmt.Fprintf(stdout, "org:      %s (%s)\ntimezone: %s\nadmin:    %s\npassword: %s\n", o.Slug, o.ID, o.TimeZone, admin.Username, password)
	case "set-time-zone":
		if org == "" || tz == "" {
			return errors.New("set-time-zone needs --org and --time-zone")
		}
		o, err := accounts.SetTimeZoneBySlug(ctx, org, tz)
		if err != nil {
			return describe(err)
		}
		fmt.Fprintf(stdout, "org:      %s\ntimezone: %s\n", o.Slug, o.TimeZone)
	case "reset-password":
		if org == "" || username == "" {
			return errors.New("reset-password needs --org and --user")
		}
		password, err := accounts.ResetPasswordByName(ctx, org, username)
		if err != nil {
			return describe(err)
		}
		fmt.Fprintf(stdout, "password: %s\n", password)
	case "list-orgs":
		orgs, err := accounts.Orgs(ctx)
		if err != nil {
			return err
		}
		var tb table
		tb.row("SLUG", "NAME", "ID", "TIME ZONE", "CREATED")
		for _, o := range orgs {
			tb.row(o.Slug, o.Name, o.ID, o.TimeZone, o.CreatedAt.Format(time.RFC3339))
		}
		if err := tb.write(stdout); err != nil {
			return err
		}
	}
	return db.Close()
}

// describe turns a domain error into the sentence an operator needs.
func describe(err error) error {
	if code := chatvault.ErrorCode(err); code != chatvault.EINTERNAL {
		return errors.New(chatvault.ErrorMessage(err))
	}
	return err
}
