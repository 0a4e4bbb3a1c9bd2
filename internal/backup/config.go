package backup

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// Config is the backup section of chatvault's configuration.
type Config struct {
	// Schedule is when the server takes a backup: a standard 5-field cron expression ("0 3 * * *")
	// or a descriptor (@daily, @hourly, @every 6h). Default @daily (midnight, local time).
	Schedule string `yaml:"schedule"`
	// Recipients are the age X25519 public keys (age1...) every backup is encrypted to. The server
	// never holds the matching identities; the operator keeps them.
	Recipients []string `yaml:"recipients"`
	// Targets receive every data backup and the deletion journal. None: backups are off.
	Targets []TargetConfig `yaml:"targets"`
	// KeyTargets receive key backups (the keys database and the key file); default: Targets. Point
	// them elsewhere (other place, other credentials) to keep keys apart from data.
	KeyTargets []TargetConfig `yaml:"key_targets"`
	// Keep is the retention of data backups (grandfather-father-son).
	Keep Keep `yaml:"keep"`
	// KeysKeepDays is how long key backups are kept (the newest one is always kept). Short on
	// purpose: a data key destroyed by a purge is gone once no key backup holds it.
	KeysKeepDays int `yaml:"keys_keep_days"`
	// Verify after each scheduled backup (default true).
	Verify bool `yaml:"verify"`
	// IdentityFile, when set, lets the scheduled verify decrypt and restore the backup in full (the
	// server then holds an identity: keep it off unless you accept that). Without it the scheduled
	// verify checks the snapshot before encryption and every stored copy byte for byte.
	IdentityFile string `yaml:"identity_file"`
	// ManifestPublicKey pins the key backup manifests and journal segments must be signed with
	// (chatvault-ed25519:..., as `chatvault backup key` prints it). Empty: the key of the data
	// directory's own signing key. Set it wherever you restore on another machine, and on the
	// server itself, so a lost or replaced key file is noticed.
	ManifestPublicKey string `yaml:"manifest_public_key"`
}

// Keep says how many backups to keep: the newest of each of the last Daily days, Weekly ISO weeks
// and Monthly months that have one.
type Keep struct {
	Daily   int `yaml:"daily"`
	Weekly  int `yaml:"weekly"`
	Monthly int `yaml:"monthly"`
}

// TargetConfig is one place backups go.
type TargetConfig struct {
	Type string `yaml:"type"` // dir or s3
	// dir
	Path string `yaml:"path"`
	// s3 (any S3-compatible service)
	Endpoint     string `yaml:"endpoint"` // host:port, or a URL (https:// or http://)
	Bucket       string `yaml:"bucket"`
	Prefix       string `yaml:"prefix"`
	Region       string `yaml:"region"`
	AccessKeyEnv string `yaml:"access_key_env"` // names of the environment variables holding the credentials
	SecretKeyEnv string `yaml:"secret_key_env"`
}

// DefaultConfig is the backup section when none is configured: off (no targets), daily, verified.
func DefaultConfig() Config {
	return Config{Schedule: "@daily", Keep: Keep{Daily: 7, Weekly: 4, Monthly: 12}, KeysKeepDays: 14, Verify: true}
}

// Enabled reports whether any target is configured.
func (c Config) Enabled() bool { return len(c.Targets) > 0 }

// KeyTargetsOrDefault returns where key backups go.
func (c Config) KeyTargetsOrDefault() []TargetConfig {
	if len(c.KeyTargets) > 0 {
		return c.KeyTargets
	}
	return c.Targets
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate checks the section; every error names its field. Schedule is checked with the other
// schedules (cmd/chatvault/schedule.go).
func (c Config) Validate() error {
	var errs []error
	if c.Enabled() && len(c.Recipients) == 0 {
		errs = append(errs, errors.New("backup.recipients: list at least one age public key (age1...; make one with age-keygen): backups are always encrypted"))
	}
	if _, err := ParseRecipients(c.Recipients); err != nil {
		errs = append(errs, fmt.Errorf("backup.recipients: %w", err))
	}
	if c.ManifestPublicKey != "" {
		if _, err := ParsePublicKey(c.ManifestPublicKey); err != nil {
			errs = append(errs, fmt.Errorf("backup.manifest_public_key: %w", err))
		}
	}
	if len(c.KeyTargets) > 0 && !c.Enabled() {
		errs = append(errs, errors.New("backup.key_targets: set backup.targets too"))
	}
	for i, t := range c.Targets {
		errs = append(errs, t.validate(fmt.Sprintf("backup.targets[%d]", i))...)
	}
	for i, t := range c.KeyTargets {
		errs = append(errs, t.validate(fmt.Sprintf("backup.key_targets[%d]", i))...)
	}
	k := c.Keep
	if k.Daily < 0 || k.Weekly < 0 || k.Monthly < 0 {
		errs = append(errs, fmt.Errorf("backup.keep: daily %d, weekly %d, monthly %d must not be negative", k.Daily, k.Weekly, k.Monthly))
	} else if k.Daily+k.Weekly+k.Monthly == 0 {
		errs = append(errs, errors.New("backup.keep: keep at least one backup (daily, weekly or monthly above 0)"))
	}
	if c.KeysKeepDays < 1 {
		errs = append(errs, fmt.Errorf("backup.keys_keep_days: %d must be at least 1", c.KeysKeepDays))
	}
	return errors.Join(errs...)
}

func (t TargetConfig) validate(field string) []error {
	var errs []error
	switch t.Type {
	case "dir":
		if strings.TrimSpace(t.Path) == "" {
			errs = append(errs, fmt.Errorf("%s.path: a dir target needs a directory", field))
		} else if !filepath.IsAbs(t.Path) {
			errs = append(errs, fmt.Errorf("%s.path: %q must be an absolute path", field, t.Path))
		}
		if t.Endpoint != "" || t.Bucket != "" || t.AccessKeyEnv != "" || t.SecretKeyEnv != "" {
			errs = append(errs, fmt.Errorf("%s: endpoint, bucket and keys are for s3 targets, not dir", field))
		}
	case "s3":
		if t.Endpoint == "" {
			errs = append(errs, fmt.Errorf("%s.endpoint: an s3 target needs an endpoint (host:port or https://host)", field))
		}
		if t.Bucket == "" {
			errs = append(errs, fmt.Errorf("%s.bucket: an s3 target needs a bucket", field))
		}
		for name, v := range map[string]string{"access_key_env": t.AccessKeyEnv, "secret_key_env": t.SecretKeyEnv} {
			if !envName.MatchString(v) {
				errs = append(errs, fmt.Errorf("%s.%s: %q must name an environment variable that holds the credential (never the credential itself)", field, name, v))
			}
		}
		if t.Path != "" {
			errs = append(errs, fmt.Errorf("%s.path: path is for dir targets; s3 targets use bucket and prefix", field))
		}
	default:
		errs = append(errs, fmt.Errorf("%s.type: %q must be dir or s3", field, t.Type))
	}
	return errs
}
