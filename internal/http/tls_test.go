package http_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	cvhttp "github.com/chatvault/chatvault/internal/http"
)

// startTLS starts a server (no services: /healthz needs none) with cfg on 127.0.0.1:0.
func startTLS(t *testing.T, cfg cvhttp.Config) *cvhttp.Server {
	t.Helper()
	srv := cvhttp.NewServer(cvhttp.Services{}, slog.New(slog.NewTextHandler(io.Discard, nil)), cfg)
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return srv
}

// clientTrusting returns an HTTPS client that trusts only the certificate in certFile.
func clientTrusting(t *testing.T, certFile string) *http.Client {
	t.Helper()
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("no certificate in %s", certFile)
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
}

func TestTLSHandshakeAndHSTS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, err := cvhttp.SelfSigned(dir, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("self-signed key mode = %v, %v; want 0600", st.Mode().Perm(), err)
	}
	certs, err := cvhttp.LoadCert(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := startTLS(t, cvhttp.Config{TLS: certs.TLSConfig()})
	resp, err := clientTrusting(t, certFile).Get("https://" + srv.Addr() + "/healthz")
	if err != nil {
		t.Fatalf("GET over TLS = %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("GET /healthz = %d, TLS %v; want 200 over TLS 1.2+", resp.StatusCode, resp.TLS)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != cvhttp.HSTS {
		t.Fatalf("Strict-Transport-Security = %q; want %q", got, cvhttp.HSTS)
	}
	// Plain HTTP to the TLS port is not served.
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + srv.Addr() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP got 200 from the TLS listener")
		}
	}
	// The same certificate is reused on the next start.
	again, _, err := cvhttp.SelfSigned(dir, nil, time.Now())
	a, _ := os.ReadFile(certFile)
	b, _ := os.ReadFile(again)
	if err != nil || string(a) != string(b) {
		t.Fatalf("SelfSigned() made a new certificate over a valid one: %v", err)
	}
}

func TestNoHSTSWithoutTLS(t *testing.T) {
	srv := startTLS(t, cvhttp.Config{})
	resp, err := http.Get("http://" + srv.Addr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Strict-Transport-Security"); got != "" {
		t.Fatalf("Strict-Transport-Security over plain HTTP = %q; want none", got)
	}
}

func TestCertReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	first, firstKey, err := cvhttp.SelfSigned(filepath.Join(dir, "a"), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	second, secondKey, err := cvhttp.SelfSigned(filepath.Join(dir, "b"), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	install := func(cert, key string) {
		t.Helper()
		for _, p := range [][2]string{{cert, certFile}, {key, keyFile}} {
			raw, err := os.ReadFile(p[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p[1], raw, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(first, firstKey)
	certs, err := cvhttp.LoadCert(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := startTLS(t, cvhttp.Config{TLS: certs.TLSConfig()})
	url := "https://" + srv.Addr() + "/healthz"
	get := func(trust string) error {
		resp, err := clientTrusting(t, trust).Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(first); err != nil {
		t.Fatalf("before reload, trusting the first certificate: %v", err)
	}
	install(second, secondKey)
	if err := get(first); err != nil {
		t.Fatalf("files replaced but not reloaded yet: the first certificate should still serve: %v", err)
	}
	if err := certs.Reload(); err != nil { // what SIGHUP calls
		t.Fatal(err)
	}
	if err := get(second); err != nil {
		t.Fatalf("after reload, trusting the second certificate: %v", err)
	}
	if err := get(first); err == nil {
		t.Fatal("after reload the first certificate is still served")
	}
	// A broken file on reload keeps the working certificate.
	os.WriteFile(keyFile, []byte("garbage"), 0o600)
	if err := certs.Reload(); err == nil {
		t.Fatal("Reload(garbage) = nil; want an error")
	}
	if err := get(second); err != nil {
		t.Fatalf("after a failed reload: %v", err)
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:8080": true, "localhost:80": true, "127.1.2.3:1": true,
		"0.0.0.0:8080": false, ":8080": false, "10.0.0.5:443": false, "[::]:8080": false, "example.com:80": false,
	} {
		if got := cvhttp.IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v; want %v", addr, got, want)
		}
	}
}
