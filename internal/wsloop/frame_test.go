package wsloop

import (
	"encoding/binary"
	"testing"
	"unicode/utf8"
)

func TestParseHeader(t *testing.T) {
	t.Parallel()
	masked := func(b0 byte, lenBytes ...byte) []byte {
		b := append([]byte{b0}, lenBytes...)
		b[1] |= 0x80
		return append(b, 1, 2, 3, 4)
	}
	for _, tc := range []struct {
		name    string
		in      []byte
		wantErr string // "" ok, "short", "protocol"
		length  int64
		size    int
	}{
		{"small text", masked(0x81, 5), "", 5, 6},
		{"16-bit length", masked(0x81, 126, 0x01, 0x00), "", 256, 8},
		{"64-bit length", masked(0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0), "", 65536, 14},
		{"needs more", []byte{0x81}, "short", 0, 0},
		{"mask key cut off", []byte{0x81, 0x85, 1, 2}, "short", 0, 0},
		{"unmasked", []byte{0x81, 0x05}, "protocol", 0, 0},
		{"reserved bit", masked(0xC1, 5), "protocol", 0, 0},
		{"reserved opcode", masked(0x83, 5), "protocol", 0, 0},
		{"fragmented ping", masked(0x09, 0), "protocol", 0, 0},
		{"long close", masked(0x88, 126, 0, 200), "protocol", 0, 0},
	} {
		h, err := parseHeader(tc.in)
		switch {
		case tc.wantErr == "short" && err != errShort,
			tc.wantErr == "protocol" && func() bool { _, ok := err.(protocolError); return !ok }(),
			tc.wantErr == "" && (err != nil || h.length != tc.length || h.size != tc.size):
			t.Errorf("%s: header %+v, error %v; want %q, length %d, size %d", tc.name, h, err, tc.wantErr, tc.length, tc.size)
		}
	}
}

// A close reason longer than a control frame allows is cut on a character boundary.
func TestAppendCloseCutsReasonOnACharacter(t *testing.T) {
	t.Parallel()
	reason := ""
	for len(reason) < 200 {
		reason += "慢消费者"
	}
	f := AppendClose(nil, 4008, reason)
	if f[0] != 0x88 || int(f[1]) != len(f)-2 || f[1] > 125 {
		t.Fatalf("frame header % x for %d bytes", f[:2], len(f))
	}
	if code := binary.BigEndian.Uint16(f[2:]); code != 4008 {
		t.Fatalf("code %d", code)
	}
	if !utf8.Valid(f[4:]) {
		t.Fatalf("reason %q split a character", f[4:])
	}
}

// FuzzParseHeader: any bytes from a client parse as a header that fits in them, ask for more,
// or are refused as a protocol error; never a panic, a negative length or an oversized control
// frame. A close payload parses or is refused the same way.
func FuzzParseHeader(f *testing.F) {
	for _, seed := range [][]byte{
		{0x81, 0x85, 1, 2, 3, 4, 'h', 'e', 'l', 'l', 'o'},
		{0x81, 0xFE, 0x01, 0x00, 1, 2, 3, 4},
		{0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4},
		{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8},
		{0x89, 0xFE, 0x00, 0x7E, 1, 2, 3, 4},
		{0x81, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4},
		{0x01},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHeader(b)
		if err != nil {
			if err != errShort {
				if _, ok := err.(protocolError); !ok {
					t.Fatalf("parseHeader(% x) = %v: neither incomplete nor a protocol error", b, err)
				}
			}
			return
		}
		if h.size > len(b) || h.size < 6 || h.length < 0 {
			t.Fatalf("parseHeader(% x) = %+v: header outside the input", b, h)
		}
		if h.op >= opClose && (h.length > 125 || !h.fin) {
			t.Fatalf("parseHeader(% x) = %+v: a control frame longer than 125 bytes or fragmented", b, h)
		}
		payload := b[h.size:]
		if int64(len(payload)) > h.length {
			payload = payload[:h.length]
		}
		p := append([]byte(nil), payload...)
		unmask(p, h.mask)
		if h.op == opClose {
			if code, _, err := parseClose(p); err == nil && !validCloseCode(code) && code != StatusNoStatus {
				t.Fatalf("parseClose(% x) accepted close code %d", p, code)
			}
		}
	})
}
