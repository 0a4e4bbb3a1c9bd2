package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/chatvault/chatvault/internal/account"
)

// LoginConfig is how sign-in resists guessing (internal/account.LoginPolicy) and the password
// policy. Zero hash_concurrency means one per CPU Go may use.
type LoginConfig struct {
	MaxFailures       int      `yaml:"max_failures"`
	Lockout           Duration `yaml:"lockout"`
	PasswordMinLength int      `yaml:"password_min_length"`
	HashConcurrency   int      `yaml:"hash_concurrency"`
	// SessionLifetime ends a device's session that long after sign-in; IdleTimeout ends one
	// unused that long. 0: never.
	SessionLifetime Duration `yaml:"session_lifetime"`
	IdleTimeout     Duration `yaml:"idle_timeout"`
}

func defaultLoginConfig() LoginConfig {
	p := account.DefaultLoginPolicy()
	return LoginConfig{MaxFailures: p.MaxFailures, Lockout: Duration(p.Lockout), PasswordMinLength: account.DefaultPasswordMinLength,
		SessionLifetime: Duration(30 * 24 * time.Hour), IdleTimeout: Duration(7 * 24 * time.Hour)}
}

// accountConfig is the account service's share of the configuration.
func (c LoginConfig) accountConfig() account.Config {
	p := account.DefaultLoginPolicy()
	p.MaxFailures, p.Lockout = c.MaxFailures, time.Duration(c.Lockout)
	if c.HashConcurrency > 0 {
		p.HashConcurrency = c.HashConcurrency
	}
	return account.Config{Login: p, PasswordMinLength: c.PasswordMinLength,
		SessionLifetime: time.Duration(c.SessionLifetime), IdleTimeout: time.Duration(c.IdleTimeout)}
}

func (c LoginConfig) validate() []error {
	var errs []error
	if c.MaxFailures < 3 || c.MaxFailures > 1000 {
		errs = append(errs, fmt.Errorf("login.max_failures: %d must be between 3 and 1000 (--login-max-failures or CHATVAULT_LOGIN_MAX_FAILURES)", c.MaxFailures))
	}
	if d := time.Duration(c.Lockout); d < time.Minute || d > 7*24*time.Hour {
		errs = append(errs, fmt.Errorf("login.lockout: %s must be between 1m and 168h, for example 15m (--login-lockout or CHATVAULT_LOGIN_LOCKOUT)", d))
	}
	if c.PasswordMinLength < 8 || c.PasswordMinLength > 128 {
		errs = append(errs, fmt.Errorf("login.password_min_length: %d must be between 8 and 128 (--password-min-length or CHATVAULT_PASSWORD_MIN_LENGTH)", c.PasswordMinLength))
	}
	if c.HashConcurrency < 0 || c.HashConcurrency > 256 {
		errs = append(errs, fmt.Errorf("login.hash_concurrency: %d must be between 0 (one per CPU) and 256; each check holds 19 MiB (--password-hash-concurrency or CHATVAULT_PASSWORD_HASH_CONCURRENCY)", c.HashConcurrency))
	}
	if d := time.Duration(c.SessionLifetime); d != 0 && (d < time.Hour || d > 365*24*time.Hour) {
		errs = append(errs, fmt.Errorf("login.session_lifetime: %s must be 0 (never) or between 1h and 8760h, for example 720h (--session-lifetime or CHATVAULT_SESSION_LIFETIME)", d))
	}
	if d := time.Duration(c.IdleTimeout); d != 0 && (d < 5*time.Minute || d > 365*24*time.Hour) {
		errs = append(errs, fmt.Errorf("login.idle_timeout: %s must be 0 (never) or between 5m and 8760h, for example 168h (--idle-timeout or CHATVAULT_IDLE_TIMEOUT)", d))
	}
	return errs
}

func addLoginFlags(fs *flag.FlagSet, cfg *Config) {
	fs.IntVar(&cfg.Login.MaxFailures, "login-max-failures", cfg.Login.MaxFailures, "wrong passwords in a row that lock an account (env CHATVAULT_LOGIN_MAX_FAILURES)")
	fs.Func("login-lockout", "how long a locked account stays locked, e.g. 15m (env CHATVAULT_LOGIN_LOCKOUT)", func(s string) error {
		d, err := time.ParseDuration(s)
		cfg.Login.Lockout = Duration(d)
		return err
	})
	durationFlag := func(name, usage string, dst *Duration) {
		fs.Func(name, usage, func(s string) error {
			d, err := time.ParseDuration(s)
			*dst = Duration(d)
			return err
		})
	}
	durationFlag("session-lifetime", "how long a device stays signed in, e.g. 720h; 0: for ever (env CHATVAULT_SESSION_LIFETIME)", &cfg.Login.SessionLifetime)
	durationFlag("idle-timeout", "how long an unused device stays signed in, e.g. 168h; 0: for ever (env CHATVAULT_IDLE_TIMEOUT)", &cfg.Login.IdleTimeout)
	fs.IntVar(&cfg.Login.PasswordMinLength, "password-min-length", cfg.Login.PasswordMinLength, "fewest characters a new password may have (env CHATVAULT_PASSWORD_MIN_LENGTH)")
	fs.IntVar(&cfg.Login.HashConcurrency, "password-hash-concurrency", cfg.Login.HashConcurrency, "password checks at once, 19 MiB each; 0: one per CPU (env CHATVAULT_PASSWORD_HASH_CONCURRENCY)")
}

// applyLoginFlags copies the login flags that were given over what file and environment set.
func applyLoginFlags(set map[string]bool, cfg *Config, fromFlags Config) {
	for name, apply := range map[string]func(){
		"login-max-failures":        func() { cfg.Login.MaxFailures = fromFlags.Login.MaxFailures },
		"login-lockout":             func() { cfg.Login.Lockout = fromFlags.Login.Lockout },
		"password-min-length":       func() { cfg.Login.PasswordMinLength = fromFlags.Login.PasswordMinLength },
		"password-hash-concurrency": func() { cfg.Login.HashConcurrency = fromFlags.Login.HashConcurrency },
		"session-lifetime":          func() { cfg.Login.SessionLifetime = fromFlags.Login.SessionLifetime },
		"idle-timeout":              func() { cfg.Login.IdleTimeout = fromFlags.Login.IdleTimeout },
	} {
		if set[name] {
			apply()
		}
	}
}

func applyLoginEnv(cfg *Config) error {
	for _, e := range []struct {
		name string
		dst  *int
	}{
		{"CHATVAULT_LOGIN_MAX_FAILURES", &cfg.Login.MaxFailures},
		{"CHATVAULT_PASSWORD_MIN_LENGTH", &cfg.Login.PasswordMinLength},
		{"CHATVAULT_PASSWORD_HASH_CONCURRENCY", &cfg.Login.HashConcurrency},
	} {
		if v, ok := os.LookupEnv(e.name); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%s: %q is not a whole number", e.name, v)
			}
			*e.dst = n
		}
	}
	for _, e := range []struct {
		name, example string
		dst           *Duration
	}{
		{"CHATVAULT_LOGIN_LOCKOUT", `"15m"`, &cfg.Login.Lockout},
		{"CHATVAULT_SESSION_LIFETIME", `"720h"`, &cfg.Login.SessionLifetime},
		{"CHATVAULT_IDLE_TIMEOUT", `"168h"`, &cfg.Login.IdleTimeout},
	} {
		if v, ok := os.LookupEnv(e.name); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s: %q is not a duration like %s", e.name, v, e.example)
			}
			*e.dst = Duration(d)
		}
	}
	return nil
}
