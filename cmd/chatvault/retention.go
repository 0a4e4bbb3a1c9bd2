package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/audit"
	"github.com/chatvault/chatvault/internal/retention"
)

const retentionUsage = `Usage:
  chatvault retention run [--dry-run] [--json] [--data DIR] [--config FILE]
      run the retention job in every org now: expire what policy lets go, destroy what has been
      expired longer than the grace window, destroy data keys left protecting nothing. A run that
      was interrupted (killed, crashed) is resumed and finished first. --dry-run changes nothing
      and reports what a run would do now. --json prints each org's run certificate as JSON.

This works on the data directory directly, and refuses while a server uses it (the server runs the
same job on its schedule, retention.interval). Each step of the job is a short transaction.
`

func runRetention(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "run" {
		fmt.Fprint(stderr, retentionUsage)
		if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
			return flag.ErrHelp
		}
		return fmt.Errorf("unknown retention command %q", args[0])
	}
	fs := flag.NewFlagSet("retention run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, retentionUsage); fs.PrintDefaults() }
	cf := addConfigFlags(fs, false)
	dryRun := fs.Bool("dry-run", false, "change nothing; report what a run would do now")
	asJSON := fs.Bool("json", false, "print the run certificates as JSON instead of a summary")
	cfg, err := cf.parse(args[1:])
	if err != nil {
		return err
	}
	logger := newLogger(cfg.Log, stderr)
	db, done, err := openAlone(ctx, cfg, "retention run", logger)
	if err != nil {
		return err
	}
	defer done()
	orgs, err := db.FindOrgs(ctx)
	if err != nil {
		return err
	}
	slugs := map[string]string{}
	for _, o := range orgs {
		slugs[o.ID] = o.Slug
	}

	ret := retention.New(db, audit.New(db, db.Keyring(), chatvault.SystemClock{}), chatvault.SystemClock{}, logger, db)
	t0 := time.Now()
	runs, err := ret.RunAll(ctx, *dryRun)
	// What finished before an error is still reported: those runs are done and certified.
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if runs == nil {
			runs = []*chatvault.PurgeRun{}
		}
		if jerr := enc.Encode(runs); jerr != nil && err == nil {
			err = jerr
		}
	} else {
		writeRunSummary(stdout, runs, slugs, *dryRun, time.Since(t0))
	}
	if err != nil {
		return err
	}
	return db.Close()
}

// writeRunSummary prints one line per org. HELD (what a hold keeps back) is counted by dry runs;
// HOLDS is how many legal holds were in force.
func writeRunSummary(w io.Writer, runs []*chatvault.PurgeRun, slugs map[string]string, dryRun bool, took time.Duration) {
	if dryRun {
		fmt.Fprintln(w, "dry run: nothing was changed; this is what a run would do now")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORG\tEXPIRED\tDESTROYED\tRESTORED\tHELD\tHOLDS\tDATA KEYS DESTROYED\tRUN\tSTARTED")
	for _, r := range runs {
		id := r.ID
		if dryRun {
			id = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", orgName(slugs, r.OrgID), r.Totals["expired"], r.Totals["destroyed"],
			r.Totals["restored"], r.Totals["held"], len(r.Holds), r.Totals["data_keys_destroyed"], id, r.StartedAt.Format(time.RFC3339))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d orgs in %s\n", len(runs), took.Round(time.Millisecond))
}

func orgName(slugs map[string]string, id string) string {
	if s, ok := slugs[id]; ok {
		return s
	}
	return id
}
