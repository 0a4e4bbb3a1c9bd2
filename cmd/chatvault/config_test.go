package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func resolveWith(t *testing.T, args []string, env map[string]string) (Config, error) {
	t.Helper()
	for _, k := range []string{"CHATVAULT_CONFIG", "CHATVAULT_DATA", "CHATVAULT_LISTEN", "CHATVAULT_MAX_BODY_BYTES", "CHATVAULT_RECALL_WINDOW", "CHATVAULT_LOG_LEVEL", "CHATVAULT_LOG_FORMAT"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cf := addConfigFlags(fs, true)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	return cf.resolve()
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "chatvault.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := resolveWith(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Data != "./chatvault-data" || cfg.Listen != "127.0.0.1:8080" || cfg.MaxBodyBytes != 64<<10 || time.Duration(cfg.RecallWindow) != 2*time.Minute {
		t.Fatalf("defaults = %+v", cfg)
	}
}

// TestConfigPrecedence: flags beat the environment, which beats the file, which beats defaults.
func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, "data: /from/file\nlisten: 127.0.0.1:1111\nrecall_window: 5m\nlog:\n  level: debug\n")
	cfg, err := resolveWith(t, []string{"--config", file, "--listen", "127.0.0.1:3333"},
		map[string]string{"CHATVAULT_LISTEN": "127.0.0.1:2222", "CHATVAULT_DATA": "/from/env"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:3333" || cfg.Data != "/from/env" || time.Duration(cfg.RecallWindow) != 5*time.Minute || cfg.Log.Level != "debug" {
		t.Fatalf("resolved = %+v; want listen from flag, data from env, recall window and log level from file", cfg)
	}
	cfg, err = resolveWith(t, nil, map[string]string{"CHATVAULT_CONFIG": file})
	if err != nil || cfg.Data != "/from/file" {
		t.Fatalf("CHATVAULT_CONFIG: data = %q, %v; want /from/file", cfg.Data, err)
	}
}

func TestConfigErrorsSayHowToFix(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown key", []string{"--config", writeFile(t, "listen: 127.0.0.1:1\nlisten_addr: x\n")}, nil, "listen_addr"},
		{"bad duration in file", []string{"--config", writeFile(t, "recall_window: soon\n")}, nil, "not a duration"},
		{"missing file", []string{"--config", "/no/such/file.yaml"}, nil, "read config file"},
		{"bad listen", []string{"--listen", "8080"}, nil, "host:port"},
		{"body limit", []string{"--max-body-bytes", "10"}, nil, "max_body_bytes"},
		{"env body limit", nil, map[string]string{"CHATVAULT_MAX_BODY_BYTES": "lots"}, "CHATVAULT_MAX_BODY_BYTES"},
		{"log level", []string{"--log-level", "chatty"}, nil, "log.level"},
		{"recall window", []string{"--recall-window", "0s"}, nil, "recall_window"},
		{"export ttl", []string{"--export-ttl", "10m"}, nil, "export_ttl"},
		{"env export ttl", nil, map[string]string{"CHATVAULT_EXPORT_TTL": "a week"}, "CHATVAULT_EXPORT_TTL"},
	} {
		_, err := resolveWith(t, tc.args, tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error = %v; want one mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestEmptyConfigFileMeansDefaults(t *testing.T) {
	cfg, err := resolveWith(t, []string{"--config", writeFile(t, "")}, nil)
	if err != nil || cfg.Listen != "127.0.0.1:8080" {
		t.Fatalf("empty file: %+v, %v", cfg, err)
	}
}
