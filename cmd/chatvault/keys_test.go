package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/clocktest"
	"github.com/google/uuid"
)

// storeAMessage writes one message through the encrypted store, so the data uses a data key.
func storeAMessage(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	db, done := openLocked(t, dir)
	defer done()
	orgs, err := db.FindOrgs(ctx)
	if err != nil || len(orgs) == 0 {
		t.Fatalf("FindOrgs() = %v, %v", orgs, err)
	}
	admin, err := db.FindUserByUsername(ctx, orgs[0].ID, "admin")
	if err != nil {
		t.Fatal(err)
	}
	c := &chatvault.Conversation{OrgID: orgs[0].ID, ID: uuid.NewString(), Kind: chatvault.Group, Title: "t", CreatedBy: admin.ID, CreatedAt: time.Now()}
	if _, err := db.CreateConversation(ctx, c, nil); err != nil {
		t.Fatal(err)
	}
	m := &chatvault.Message{OrgID: c.OrgID, ID: uuid.NewString(), ConversationID: c.ID, SenderID: admin.ID, Kind: chatvault.KindText, Text: "秘密 secret", SentAt: time.Now()}
	if _, err := db.AppendMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
}

func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	return out.String() + errOut.String(), err
}

func TestKeysLifecycle(t *testing.T) {
	t.Setenv("CHATVAULT_KEK", "")
	t.Setenv("CHATVAULT_KEK_FILE", "")
	dir := t.TempDir()
	_, _, stop := serveInProcess(t, dir)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "keys", "kek.json")
	st, err := os.Stat(keyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("first start: key file %s: %v, mode %v; want 0600", keyFile, err, st.Mode().Perm())
	}
	storeAMessage(t, dir)

	out, err := runCmd(t, "keys", "status", "--data", dir)
	// One message: its conversation's data key, its org's search index key and audit key.
	if err != nil || !regexp.MustCompile(`kek-\S+\s+\S+\s+primary\s+3\n`).MatchString(out) {
		t.Fatalf("keys status = %v\n%s\nwant one primary KEK wrapping a data key, an index key and an audit key", err, out)
	}
	oldID := regexp.MustCompile(`kek-\S+`).FindString(out)
	out, err = runCmd(t, "keys", "rotate", "--data", dir)
	if err != nil || !strings.Contains(out, "re-wrapped 3 keys") || !regexp.MustCompile(oldID+`\s+\S+\s+active\s+0\n`).MatchString(out) {
		t.Fatalf("keys rotate = %v\n%s", err, out)
	}
	out, err = runCmd(t, "keys", "retire", "--data", dir, oldID)
	if err != nil || !strings.Contains(out, "retired KEK "+oldID) {
		t.Fatalf("keys retire = %v\n%s", err, out)
	}
	out, _ = runCmd(t, "keys", "status", "--data", dir)
	if !strings.Contains(out, "retired") {
		t.Fatalf("keys status after retire:\n%s", out)
	}
	// The data still opens with the rotated key file.
	storeAMessage(t, dir)

	// Without the key file the server refuses to start, names the file, and makes no new one.
	saved, _ := os.ReadFile(keyFile)
	os.Remove(keyFile)
	_, err = runCmd(t, "serve", "--data", dir, "--listen", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), keyFile) || !strings.Contains(err.Error(), "restore") {
		t.Fatalf("serve without its key file = %v; want an error naming %s", err, keyFile)
	}
	if _, err := os.Stat(keyFile); err == nil {
		t.Fatal("serve made a new key file over encrypted data")
	}
	// A key from the environment that is not the right one is refused too, naming the variable.
	t.Setenv("CHATVAULT_KEK", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
	_, err = runCmd(t, "serve", "--data", dir, "--listen", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), "CHATVAULT_KEK") {
		t.Fatalf("serve with a wrong CHATVAULT_KEK = %v", err)
	}
	t.Setenv("CHATVAULT_KEK", "")
	os.WriteFile(keyFile, saved, 0o600)
	storeAMessage(t, dir)
}

func TestServeSelfSignedTLS(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--data", dir, "--listen", "127.0.0.1:0", "--tls-self-signed"}, io.Discard, logs)
	}()
	defer func() { cancel(); <-done }()
	var addr string
	clocktest.Poll(t, "serve listening", func() error {
		if m := listenLine.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
			return nil
		}
		return fmt.Errorf("serve did not start:\n%s", logs)
	})
	if !strings.Contains(logs.String(), "tls=true") {
		t.Fatalf("the listening line does not say TLS is on:\n%s", logs)
	}
	pemBytes, err := os.ReadFile(filepath.Join(dir, "tls", "self-signed.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Get("https://" + addr + "/readyz")
	if err != nil {
		t.Fatalf("HTTPS GET = %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Fatalf("GET /readyz = %d, HSTS %q; want 200 with HSTS", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}
}

func TestConfigRefusesPlainHTTPOffLoopback(t *testing.T) {
	for _, k := range []string{"CHATVAULT_TLS_CERT", "CHATVAULT_TLS_KEY", "CHATVAULT_TLS_SELF_SIGNED", "CHATVAULT_ALLOW_INSECURE_HTTP"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	_, err := resolveWith(t, []string{"--listen", "0.0.0.0:8080"}, nil)
	if err == nil || !strings.Contains(err.Error(), "TLS is off") || !strings.Contains(err.Error(), "--tls-cert") || !strings.Contains(err.Error(), "allow_insecure_http") {
		t.Fatalf("resolve(0.0.0.0 without TLS) = %v; want a refusal that says how to fix it", err)
	}
	for _, args := range [][]string{
		{"--listen", "0.0.0.0:8080", "--allow-insecure-http"},
		{"--listen", "0.0.0.0:8080", "--tls-self-signed"},
		{"--listen", "0.0.0.0:8080", "--tls-cert", "c.pem", "--tls-key", "k.pem"},
		{"--listen", "[::1]:8080"},
	} {
		if _, err := resolveWith(t, args, nil); err != nil {
			t.Errorf("resolve(%q) = %v; want nil", args, err)
		}
	}
	if _, err := resolveWith(t, nil, map[string]string{"CHATVAULT_LISTEN": ":8080", "CHATVAULT_ALLOW_INSECURE_HTTP": "true"}); err != nil {
		t.Errorf("resolve(env allow) = %v; want nil", err)
	}
	if _, err := resolveWith(t, []string{"--tls-cert", "c.pem"}, nil); err == nil || !strings.Contains(err.Error(), "set both") {
		t.Errorf("resolve(cert without key) = %v; want an error", err)
	}
	if _, err := resolveWith(t, []string{"--config", writeFile(t, "listen: 0.0.0.0:9\ntls_self_signed: true\nkey_file: /k.json\n")}, nil); err != nil {
		t.Errorf("resolve(YAML TLS settings) = %v; want nil", err)
	}
}
