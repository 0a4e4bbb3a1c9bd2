package migrate

import (
	"bytes"
	"testing"
)

func TestKeyJSONRoundTrip(t *testing.T) {
	t.Parallel()
	key := []any{"org-1", int64(-42), []byte{0xff, 0x00, 'a'}, "引号 \"x\""}
	raw, err := keyJSON(key)
	if err != nil {
		t.Fatalf("keyJSON(%v) error = %v", key, err)
	}
	got, err := keyFromJSON(raw)
	if err != nil {
		t.Fatalf("keyFromJSON(%s) error = %v", raw, err)
	}
	if len(got) != len(key) || got[0] != key[0] || got[1] != key[1] || !bytes.Equal(got[2].([]byte), key[2].([]byte)) || got[3] != key[3] {
		t.Fatalf("keyFromJSON(keyJSON(%v)) = %v", key, got)
	}
	if k, err := keyFromJSON(nil); k != nil || err != nil {
		t.Fatalf("keyFromJSON(nil) = %v, %v; want nil, nil", k, err)
	}
}

func TestConvert(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   any
		typ  string
		want any
	}{
		{int64(7), "bigint", int64(7)},
		{int64(1), "integer", int64(1)},
		{float64(3), "bigint", int64(3)},
		{[]byte("héllo"), "text", "héllo"},
		{"x", "bytea", []byte("x")},
		{int64(0), "boolean", false},
		{nil, "bytea", nil},
	} {
		got, err := convert(tc.in, tc.typ)
		if err != nil {
			t.Errorf("convert(%v, %s) error = %v", tc.in, tc.typ, err)
			continue
		}
		if b, ok := tc.want.([]byte); ok {
			if !bytes.Equal(got.([]byte), b) {
				t.Errorf("convert(%v, %s) = %v; want %v", tc.in, tc.typ, got, tc.want)
			}
		} else if got != tc.want {
			t.Errorf("convert(%v, %s) = %v (%T); want %v", tc.in, tc.typ, got, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in  any
		typ string
	}{
		{[]byte{0xff}, "text"}, {1.5, "bigint"}, {"x", "jsonb"}, {"abc", "integer"},
	} {
		if got, err := convert(tc.in, tc.typ); err == nil {
			t.Errorf("convert(%v, %s) = %v; want an error", tc.in, tc.typ, got)
		}
	}
}

func TestChecksum(t *testing.T) {
	t.Parallel()
	rows := [][]any{{"a", int64(1), nil}, {"b", int64(2), []byte("x")}, {"c", int64(3), "x"}}
	var fwd, rev checksum
	for i := range rows {
		fwd.add(rows[i])
		rev.add(rows[len(rows)-1-i])
	}
	if fwd.String() != rev.String() || fwd.n != 3 {
		t.Fatalf("checksum depends on row order: %s (%d rows) vs %s", fwd.String(), fwd.n, rev.String())
	}
	for _, changed := range [][]any{
		{"a", int64(1), []byte{}}, // NULL and empty differ
		{"a", int64(10), nil},
		{"a1", int64(1), nil},
	} {
		var c checksum
		c.add(changed)
		c.add(rows[1])
		c.add(rows[2])
		if c.String() == fwd.String() {
			t.Errorf("rows with %v sum like the original", changed)
		}
	}
	// Column boundaries are part of the encoding.
	var x, y checksum
	x.add([]any{"ab", "c"})
	y.add([]any{"a", "bc"})
	if x.String() == y.String() {
		t.Error(`("ab","c") and ("a","bc") have the same checksum`)
	}
}
