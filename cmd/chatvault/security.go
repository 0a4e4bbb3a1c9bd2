package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/chatvault/chatvault/internal/datadir"
	cvhttp "github.com/chatvault/chatvault/internal/http"
	"github.com/chatvault/chatvault/internal/keyring"
	"github.com/chatvault/chatvault/internal/sqlite"
)

// This file holds the settings of encryption at rest and TLS: their flags, environment, checks,
// and the opening of the store with its keys.

func addTLSFlags(fs *flag.FlagSet, cfg *Config) {
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate file (PEM; reloaded on SIGHUP) (env CHATVAULT_TLS_CERT)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key file (PEM) (env CHATVAULT_TLS_KEY)")
	fs.BoolVar(&cfg.TLSSelfSigned, "tls-self-signed", false, "serve TLS with a self-signed certificate kept in DATA/tls, for local use (env CHATVAULT_TLS_SELF_SIGNED)")
	fs.BoolVar(&cfg.AllowInsecureHTTP, "allow-insecure-http", false, "allow plain HTTP on a non-loopback address, e.g. behind a TLS proxy (env CHATVAULT_ALLOW_INSECURE_HTTP)")
}

func applySecurityEnv(cfg *Config) error {
	if v, ok := os.LookupEnv("CHATVAULT_KEY_FILE"); ok {
		cfg.KeyFile = v
	}
	if v, ok := os.LookupEnv("CHATVAULT_TLS_CERT"); ok {
		cfg.TLSCert = v
	}
	if v, ok := os.LookupEnv("CHATVAULT_TLS_KEY"); ok {
		cfg.TLSKey = v
	}
	for name, dst := range map[string]*bool{"CHATVAULT_TLS_SELF_SIGNED": &cfg.TLSSelfSigned, "CHATVAULT_ALLOW_INSECURE_HTTP": &cfg.AllowInsecureHTTP,
		"CHATVAULT_ALLOW_SHARED_DATA_DIR": &cfg.AllowSharedDataDir} {
		if v, ok := os.LookupEnv(name); ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%s: %q is not true or false", name, v)
			}
			*dst = b
		}
	}
	return nil
}

func (c Config) tlsOn() bool { return c.TLSCert != "" || c.TLSSelfSigned }

func (c Config) validateTLS() []error {
	var errs []error
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("tls_cert, tls_key: set both (--tls-cert FILE --tls-key FILE), or neither"))
	}
	if c.TLSSelfSigned && c.TLSCert != "" {
		errs = append(errs, errors.New("tls_self_signed: choose a certificate (tls_cert, tls_key) or a self-signed one, not both"))
	}
	if !c.tlsOn() && !c.AllowInsecureHTTP && !cvhttp.IsLoopback(c.Listen) {
		errs = append(errs, fmt.Errorf("listen: %s accepts connections from other machines, and TLS is off: set --tls-cert and --tls-key "+
			"(or --tls-self-signed for local use), listen on 127.0.0.1, or set allow_insecure_http: true (--allow-insecure-http) "+
			"when a TLS-terminating proxy is in front", c.Listen))
	}
	return errs
}

// keyFile is where the key-encryption keys are kept unless configured otherwise.
func (c Config) keyFile() string {
	if c.KeyFile != "" {
		return c.KeyFile
	}
	return filepath.Join(c.Data, sqlite.KeysDir, "kek.json")
}

// openKeyring returns the keyring of the configured key provider: the environment when
// CHATVAULT_KEK or CHATVAULT_KEK_FILE is set, else the key file.
func openKeyring(cfg Config) (*keyring.Keyring, error) {
	if keyring.EnvConfigured(os.Getenv) {
		p, err := keyring.OpenEnv(os.Getenv)
		if err != nil {
			return nil, err
		}
		return keyring.New(p, 0), nil
	}
	p, err := keyring.OpenFile(cfg.keyFile())
	if err != nil {
		return nil, err
	}
	return keyring.New(p, 0), nil
}

// openStore opens the data directory's store with encryption at rest; lock is the directory's
// lock, held by the caller (lockDataDir).
func openStore(cfg Config, lock *datadir.Lock) (*sqlite.DB, error) {
	if cfg.postgresStore() {
		return nil, errPostgresStore("this command", "it does not support PostgreSQL yet; use the API of a running server")
	}
	if err := mustHold(lock, cfg.Data); err != nil {
		return nil, err
	}
	kr, err := openKeyring(cfg)
	if err != nil {
		return nil, err
	}
	return sqlite.OpenWith(cfg.Data, sqlite.Options{Keyring: kr})
}

// tlsCerts returns the certificate reloader for the configuration, or nil when TLS is off.
func tlsCerts(cfg Config) (*cvhttp.CertReloader, error) {
	switch {
	case cfg.TLSCert != "":
		return cvhttp.LoadCert(cfg.TLSCert, cfg.TLSKey)
	case cfg.TLSSelfSigned:
		host, _ := os.Hostname()
		cert, key, err := cvhttp.SelfSigned(filepath.Join(cfg.Data, "tls"), []string{host}, time.Now())
		if err != nil {
			return nil, err
		}
		return cvhttp.LoadCert(cert, key)
	}
	return nil, nil
}

// reloadOnSIGHUP reloads the TLS certificate files on every SIGHUP until the returned function is
// called. Without TLS, SIGHUP is still caught (and logged) rather than ending the process.
func reloadOnSIGHUP(certs *cvhttp.CertReloader, logger *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case <-hup:
				if certs == nil {
					logger.Info("SIGHUP: TLS is off, nothing to reload")
					continue
				}
				if err := certs.Reload(); err != nil {
					logger.Error("SIGHUP: TLS certificate not reloaded; still serving the previous one", "error", err)
					continue
				}
				logger.Info("SIGHUP: TLS certificate reloaded")
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
		<-finished
	}
}
