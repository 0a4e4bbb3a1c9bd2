package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// client speaks the chatvault API over keep-alive connections, with as many idle connections per
// host as there are concurrent callers, so it never dials in the measured loop.
type client struct {
	base string
	hc   *http.Client
}

func newClient(addr string, conns int) *client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2 * conns,
		MaxIdleConnsPerHost: 2 * conns,
		IdleConnTimeout:     2 * time.Minute,
		DisableCompression:  true,
	}
	return &client{base: "http://" + addr, hc: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

func (c *client) close() { c.hc.CloseIdleConnections() }

func (c *client) do(ctx context.Context, method, path, token string, body []byte, want int) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return out, fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, bytes.TrimSpace(out))
	}
	return out, nil
}

func (c *client) login(ctx context.Context, org, username, password string) (string, error) {
	body, _ := json.Marshal(map[string]string{"org": org, "username": username, "password": password, "device_name": "chatvault bench"})
	out, err := c.do(ctx, http.MethodPost, "/api/v1/auth/login", "", body, http.StatusOK)
	if err != nil {
		return "", err
	}
	var res struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.Token == "" {
		return "", fmt.Errorf("login %s/%s: no token in %q", org, username, out)
	}
	return res.Token, nil
}

type sendBody struct {
	ClientMsgID string `json:"client_msg_id"`
	Text        string `json:"text"`
}

// send posts one message and returns once the server acknowledged it (201: durable).
func (c *client) send(ctx context.Context, token, convID, clientMsgID, text string) error {
	body, _ := json.Marshal(sendBody{ClientMsgID: clientMsgID, Text: text})
	_, err := c.do(ctx, http.MethodPost, "/api/v1/conversations/"+convID+"/messages", token, body, http.StatusCreated)
	return err
}

var seqKey = []byte(`"seq":`)

// page reads one page of history and returns how many messages it held.
func (c *client) page(ctx context.Context, token, convID string, before int64, limit int) (int, error) {
	out, err := c.do(ctx, http.MethodGet, "/api/v1/conversations/"+convID+"/messages?before_seq="+
		strconv.FormatInt(before, 10)+"&limit="+strconv.Itoa(limit), token, nil, http.StatusOK)
	if err != nil {
		return 0, err
	}
	// Counting keys rather than decoding keeps the client's CPU off the server's two cores.
	return bytes.Count(out, seqKey), nil
}
