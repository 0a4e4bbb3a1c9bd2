package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/chatvault/chatvault/internal/export"
	"gopkg.in/yaml.v3"
)

// Config is every setting of chatvault, filled in this order, later winning: defaults, the YAML
// file (--config or CHATVAULT_CONFIG), CHATVAULT_* environment variables, command-line flags.
type Config struct {
	Data string `yaml:"data"`
	// AllowSharedDataDir lets chatvault start on a data directory, keys directory or key file that
	// group or others can reach; by default that is refused (docs/operations.md, file modes).
	AllowSharedDataDir bool `yaml:"allow_shared_data_dir"`
	// Store is a PostgreSQL URL (postgres://user@host:5432/db); empty: the SQLite store in Data.
	// Several serve processes can share one PostgreSQL store (docs/scaling.md).
	Store  string `yaml:"store"`
	Listen string `yaml:"listen"`
	// MetricsListen serves /metrics and the profiler on their own address; empty: off.
	MetricsListen string   `yaml:"metrics_listen"`
	MaxBodyBytes  int64    `yaml:"max_body_bytes"`
	RecallWindow  Duration `yaml:"recall_window"`
	// ExportTTL is how long a finished export package stays downloadable before it is deleted.
	ExportTTL Duration  `yaml:"export_ttl"`
	Log       LogConfig `yaml:"log"`

	// KeyFile holds the key-encryption keys; default DATA/keys/kek.json. CHATVAULT_KEK or
	// CHATVAULT_KEK_FILE in the environment take its place (see docs/operations.md).
	KeyFile string `yaml:"key_file"`
	// TLS: a certificate and key (reloaded on SIGHUP), or a self-signed certificate for local use.
	TLSCert       string `yaml:"tls_cert"`
	TLSKey        string `yaml:"tls_key"`
	TLSSelfSigned bool   `yaml:"tls_self_signed"`
	// AllowInsecureHTTP permits plain HTTP on a non-loopback address (behind a TLS-terminating proxy).
	AllowInsecureHTTP bool `yaml:"allow_insecure_http"`

	Retention RetentionConfig `yaml:"retention"`
	// Login: throttling, lockout and the password policy.
	Login LoginConfig `yaml:"login"`
	// Backup: schedule, recipients, targets and retention of backups (internal/backup).
	Backup BackupConfig `yaml:"backup"`
}

// LogConfig says how chatvault logs.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
	// Access logs one line per API request (method, route, status, bytes, time, request id).
	Access bool `yaml:"access"`
}

// Duration is a time.Duration written as "2m", "90s" in YAML and the environment.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like \"2m\" or \"90s\"", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// DefaultConfig is what chatvault runs with when nothing is configured.
func DefaultConfig() Config {
	return Config{
		Data:         "./chatvault-data",
		Listen:       "127.0.0.1:8080",
		MaxBodyBytes: 64 << 10,
		RecallWindow: Duration(2 * time.Minute),
		ExportTTL:    Duration(export.DefaultTTL),
		Login:        defaultLoginConfig(),
		Log:          LogConfig{Level: "info", Format: "text", Access: true},
		Retention: RetentionConfig{Interval: Duration(time.Hour), StartDelay: Duration(defaultRetentionStartDelay),
			TakeoverCheck: Duration(defaultTakeoverCheck)},
		Backup: backupDefaults(),
	}
}

// Validate checks every field and says how to fix what is wrong.
func (c Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.Data) == "" {
		errs = append(errs, errors.New("data: set a data directory (--data DIR or CHATVAULT_DATA)"))
	}
	errs = append(errs, c.validateStore()...)
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %q is not host:port, for example 127.0.0.1:8080 (--listen or CHATVAULT_LISTEN)", c.Listen))
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		errs = append(errs, fmt.Errorf("listen: port %q must be a number from 0 to 65535", port))
	}
	if c.MetricsListen != "" {
		if _, port, err := net.SplitHostPort(c.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("metrics_listen: %q is not host:port, for example 127.0.0.1:9464; leave it empty to serve no metrics (--metrics-listen or CHATVAULT_METRICS_LISTEN)", c.MetricsListen))
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			errs = append(errs, fmt.Errorf("metrics_listen: port %q must be a number from 0 to 65535", port))
		} else if c.MetricsListen == c.Listen && n != 0 {
			errs = append(errs, fmt.Errorf("metrics_listen: %q is the API's listen address; give metrics their own port, such as 127.0.0.1:9464", c.MetricsListen))
		}
	}
	if c.MaxBodyBytes < 1024 || c.MaxBodyBytes > 64<<20 {
		errs = append(errs, fmt.Errorf("max_body_bytes: %d must be between 1024 and %d", c.MaxBodyBytes, 64<<20))
	}
	if w := time.Duration(c.RecallWindow); w <= 0 || w > 24*time.Hour {
		errs = append(errs, fmt.Errorf("recall_window: %s must be more than 0 and at most 24h", w))
	}
	if d := time.Duration(c.ExportTTL); d < time.Hour || d > 90*24*time.Hour {
		errs = append(errs, fmt.Errorf("export_ttl: %s must be between 1h and 2160h (90 days), for example 168h (--export-ttl or CHATVAULT_EXPORT_TTL)", d))
	}
	if _, err := c.Log.level(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.validateTLS()...)
	errs = append(errs, c.validateSchedules()...)
	errs = append(errs, c.Login.validate()...)
	if err := c.Backup.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		errs = append(errs, fmt.Errorf("log.format: %q must be text or json", c.Log.Format))
	}
	return errors.Join(errs...)
}

func (l LogConfig) level() (slog.Level, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.Level)); err != nil {
		return 0, fmt.Errorf("log.level: %q must be debug, info, warn or error", l.Level)
	}
	return lv, nil
}

// configFlags are the flags every command that opens the data directory shares.
type configFlags struct {
	fs     *flag.FlagSet
	config *string
	cfg    Config
}

// addConfigFlags registers --config and --data; withServer adds the server's own settings.
func addConfigFlags(fs *flag.FlagSet, withServer bool) *configFlags {
	cf := &configFlags{fs: fs, cfg: DefaultConfig()}
	cf.config = fs.String("config", "", "YAML config file (env CHATVAULT_CONFIG); unknown keys are errors")
	fs.StringVar(&cf.cfg.Data, "data", cf.cfg.Data, "data directory (env CHATVAULT_DATA)")
	fs.StringVar(&cf.cfg.KeyFile, "key-file", "", "key-encryption key file (env CHATVAULT_KEY_FILE; default DATA/keys/kek.json)")
	fs.BoolVar(&cf.cfg.AllowSharedDataDir, "allow-shared-data-dir", false, "start even if other users can reach the data directory or key file (env CHATVAULT_ALLOW_SHARED_DATA_DIR)")
	fs.StringVar(&cf.cfg.Store, "store", "", "PostgreSQL URL, e.g. postgres://chatvault@db:5432/chatvault (env CHATVAULT_STORE); empty: SQLite in the data directory")
	if withServer {
		fs.StringVar(&cf.cfg.Listen, "listen", cf.cfg.Listen, "address to listen on (env CHATVAULT_LISTEN)")
		fs.Int64Var(&cf.cfg.MaxBodyBytes, "max-body-bytes", cf.cfg.MaxBodyBytes, "largest request body accepted (env CHATVAULT_MAX_BODY_BYTES)")
		fs.Func("recall-window", "how long a sender may recall a message, e.g. 2m (env CHATVAULT_RECALL_WINDOW)", func(s string) error {
			d, err := time.ParseDuration(s)
			cf.cfg.RecallWindow = Duration(d)
			return err
		})
		fs.Func("export-ttl", "how long a finished export stays downloadable, e.g. 168h (env CHATVAULT_EXPORT_TTL)", func(s string) error {
			d, err := time.ParseDuration(s)
			cf.cfg.ExportTTL = Duration(d)
			return err
		})
		fs.StringVar(&cf.cfg.Log.Level, "log-level", cf.cfg.Log.Level, "debug, info, warn or error (env CHATVAULT_LOG_LEVEL)")
		fs.StringVar(&cf.cfg.Log.Format, "log-format", cf.cfg.Log.Format, "text or json (env CHATVAULT_LOG_FORMAT)")
		fs.BoolVar(&cf.cfg.Log.Access, "log-access", cf.cfg.Log.Access, "log one line per API request, without bodies or tokens (env CHATVAULT_LOG_ACCESS)")
		fs.StringVar(&cf.cfg.MetricsListen, "metrics-listen", "", "address for /metrics and /debug/pprof, e.g. 127.0.0.1:9464; empty: off (env CHATVAULT_METRICS_LISTEN)")
		addTLSFlags(fs, &cf.cfg)
		addRetentionFlags(fs, &cf.cfg)
		addLoginFlags(fs, &cf.cfg)
	}
	return cf
}

// parse parses a command's flags (its own and the shared ones registered on the same set),
// refuses stray arguments, and resolves the configuration.
func (cf *configFlags) parse(args []string) (Config, error) {
	if err := cf.fs.Parse(args); err != nil {
		return Config{}, err
	}
	if cf.fs.NArg() > 0 {
		return Config{}, fmt.Errorf("%s takes no arguments, got %q", cf.fs.Name(), cf.fs.Args())
	}
	return cf.resolve()
}

// resolve layers file and environment under the flags that were given, then validates.
func (cf *configFlags) resolve() (Config, error) {
	fromFlags := cf.cfg
	set := map[string]bool{}
	cf.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	cfg := DefaultConfig()
	path := *cf.config
	if path == "" {
		path = os.Getenv("CHATVAULT_CONFIG")
	}
	if path != "" {
		if err := loadConfigFile(path, &cfg); err != nil {
			return cfg, err
		}
	}
	if err := applyEnv(&cfg); err != nil {
		return cfg, err
	}
	for name, apply := range map[string]func(){
		"data":                     func() { cfg.Data = fromFlags.Data },
		"allow-shared-data-dir":    func() { cfg.AllowSharedDataDir = fromFlags.AllowSharedDataDir },
		"store":                    func() { cfg.Store = fromFlags.Store },
		"listen":                   func() { cfg.Listen = fromFlags.Listen },
		"max-body-bytes":           func() { cfg.MaxBodyBytes = fromFlags.MaxBodyBytes },
		"recall-window":            func() { cfg.RecallWindow = fromFlags.RecallWindow },
		"export-ttl":               func() { cfg.ExportTTL = fromFlags.ExportTTL },
		"log-level":                func() { cfg.Log.Level = fromFlags.Log.Level },
		"log-format":               func() { cfg.Log.Format = fromFlags.Log.Format },
		"log-access":               func() { cfg.Log.Access = fromFlags.Log.Access },
		"metrics-listen":           func() { cfg.MetricsListen = fromFlags.MetricsListen },
		"key-file":                 func() { cfg.KeyFile = fromFlags.KeyFile },
		"tls-cert":                 func() { cfg.TLSCert = fromFlags.TLSCert },
		"tls-key":                  func() { cfg.TLSKey = fromFlags.TLSKey },
		"tls-self-signed":          func() { cfg.TLSSelfSigned = fromFlags.TLSSelfSigned },
		"allow-insecure-http":      func() { cfg.AllowInsecureHTTP = fromFlags.AllowInsecureHTTP },
		"retention-interval":       func() { cfg.Retention.Interval = fromFlags.Retention.Interval },
		"retention-start-delay":    func() { cfg.Retention.StartDelay = fromFlags.Retention.StartDelay },
		"retention-takeover-check": func() { cfg.Retention.TakeoverCheck = fromFlags.Retention.TakeoverCheck },
	} {
		if set[name] {
			apply()
		}
	}
	applyLoginFlags(set, &cfg, fromFlags)
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}

func loadConfigFile(path string, cfg *Config) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w (check --config or CHATVAULT_CONFIG, and that the user chatvault runs as can read the file)", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	// An empty file decodes to io.EOF and means "all defaults".
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

func applyEnv(cfg *Config) error {
	str := func(name string, dst *string) {
		if v, ok := os.LookupEnv(name); ok {
			*dst = v
		}
	}
	str("CHATVAULT_DATA", &cfg.Data)
	str("CHATVAULT_STORE", &cfg.Store)
	str("CHATVAULT_LISTEN", &cfg.Listen)
	str("CHATVAULT_LOG_LEVEL", &cfg.Log.Level)
	str("CHATVAULT_LOG_FORMAT", &cfg.Log.Format)
	str("CHATVAULT_METRICS_LISTEN", &cfg.MetricsListen)
	if v, ok := os.LookupEnv("CHATVAULT_LOG_ACCESS"); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("CHATVAULT_LOG_ACCESS: %q must be true or false", v)
		}
		cfg.Log.Access = b
	}
	if err := applySecurityEnv(cfg); err != nil {
		return err
	}
	if err := applyRetentionEnv(cfg); err != nil {
		return err
	}
	if err := applyLoginEnv(cfg); err != nil {
		return err
	}
	if v, ok := os.LookupEnv("CHATVAULT_MAX_BODY_BYTES"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("CHATVAULT_MAX_BODY_BYTES: %q is not a whole number of bytes", v)
		}
		cfg.MaxBodyBytes = n
	}
	if v, ok := os.LookupEnv("CHATVAULT_RECALL_WINDOW"); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("CHATVAULT_RECALL_WINDOW: %q is not a duration like \"2m\"", v)
		}
		cfg.RecallWindow = Duration(d)
	}
	if v, ok := os.LookupEnv("CHATVAULT_EXPORT_TTL"); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("CHATVAULT_EXPORT_TTL: %q is not a duration like \"168h\"", v)
		}
		cfg.ExportTTL = Duration(d)
	}
	return nil
}

func newLogger(cfg LogConfig, w io.Writer) *slog.Logger {
	level, _ := cfg.level()
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		// slog writes a duration in JSON as integer nanoseconds, which no reader expects; write it
		// as the text handler does ("1.5s"), which Go's time.ParseDuration reads back.
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				a.Value = slog.StringValue(a.Value.Duration().String())
			}
			return a
		}
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
