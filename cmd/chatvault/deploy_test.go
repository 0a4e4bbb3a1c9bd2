package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"filippo.io/age"
	"gopkg.in/yaml.v3"
)

// The files in deploy/ are what operators copy; these tests keep them working with this binary.
const deployDir = "../../deploy"

// TestSampleConfigParses: deploy/chatvault.yaml loads with the real loader (strict: an unknown or
// misspelt key fails), validates once its placeholder recipient is replaced, and has every key
// the configuration knows, so it stays the complete, commented reference.
func TestSampleConfigParses(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(deployDir, "chatvault.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), "AGE_RECIPIENT") {
		t.Fatal("deploy/chatvault.yaml has no AGE_RECIPIENT placeholder to replace")
	}
	path := filepath.Join(t.TempDir(), "chatvault.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(raw), "AGE_RECIPIENT", id.Recipient().String())), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	if err := loadConfigFile(path, &cfg); err != nil {
		t.Fatalf("loadConfigFile(deploy/chatvault.yaml) = %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("deploy/chatvault.yaml does not validate: %v", err)
	}
	if cfg.MetricsListen == "" || cfg.Data != "/var/lib/chatvault" {
		t.Errorf("sample config: metrics_listen %q, data %q; want metrics on and data in /var/lib/chatvault", cfg.MetricsListen, cfg.Data)
	}

	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	yamlKeys(doc.Content[0], "", have)
	var want []string
	structKeys(reflect.TypeFor[Config](), "", &want)
	for _, k := range want {
		if !have[k] {
			t.Errorf("deploy/chatvault.yaml lacks %s: add it, with a comment", k)
		}
	}
}

// yamlKeys collects the key paths of a YAML mapping: "backup.keep.daily", list items as
// "targets[]" (key_targets and targets share their item type, so both count as "targets[]").
func yamlKeys(n *yaml.Node, prefix string, out map[string]bool) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := prefix + n.Content[i].Value
			out[normalizeKey(k)] = true
			yamlKeys(n.Content[i+1], k+".", out)
		}
	case yaml.SequenceNode:
		for _, item := range n.Content {
			yamlKeys(item, strings.TrimSuffix(prefix, ".")+"[].", out)
		}
	}
}

// structKeys lists the yaml key paths of a config struct type, in the same form.
func structKeys(t reflect.Type, prefix string, out *[]string) {
	for f := range t.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		k := prefix + tag
		if !slices.Contains(*out, normalizeKey(k)) {
			*out = append(*out, normalizeKey(k))
		}
		switch ft := f.Type; {
		case ft.Kind() == reflect.Struct && ft.PkgPath() != "time":
			structKeys(ft, k+".", out)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			structKeys(ft.Elem(), k+"[].", out)
		}
	}
}

func normalizeKey(k string) string { return strings.ReplaceAll(k, "key_targets[]", "targets[]") }

// TestSystemdUnitVerifies runs `systemd-analyze verify` on deploy/chatvault.service, pointed at
// the binary this test built, and checks that the sandboxing the docs promise is there.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze is missing: .ci/run installs systemd for this test")
		}
		t.Skip("systemd-analyze is not installed (Debian: apt-get install systemd); deploy/chatvault.service is not checked")
	}
	raw, err := os.ReadFile(filepath.Join(deployDir, "chatvault.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := string(raw)
	for _, d := range []string{"DynamicUser=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/chatvault", "NoNewPrivileges=yes",
		"CapabilityBoundingSet=\n", "PrivateTmp=yes", "ProtectHome=yes", "SystemCallFilter=@system-service",
		"ExecStart=/usr/local/bin/chatvault serve --config /etc/chatvault/chatvault.yaml"} {
		if !strings.Contains(unit, d) {
			t.Errorf("deploy/chatvault.service lacks %q", strings.TrimSpace(d))
		}
	}
	// verify checks that ExecStart's program exists and is executable: point it at this build.
	bin := chatvaultBinary(t)
	path := filepath.Join(t.TempDir(), "chatvault.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/chatvault", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify chatvault.service = %v\n%s\nwant exit 0 and no warnings", err, out)
	}
}
