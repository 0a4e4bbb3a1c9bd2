package export_test

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/export"
)

// Any text a user can send comes back out of the CSV as the one cell it went in as: the same
// text after encoding/csv reads it, except that a formula-like start gets its apostrophe and every
// line break (CRLF, or a lone CR, which encoding/csv would drop) reads back as LF.
func FuzzCSVCell(f *testing.F) {
	for _, s := range []string{"plain", "=cmd|' /C calc'!A0", "a,b", "\"quoted\"", "line\r\nbreak", "你好 🙂", "+1", "@all", "-5", "\tx", "\r", " lead"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if !utf8.ValidString(text) || strings.ContainsRune(text, 0) {
			return // the send path refuses these
		}
		var files memFiles
		w, err := export.NewCSV(&files, "m.csv", export.LangEN, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		m := &chatvault.Message{ID: "id", Seq: 1, Kind: chatvault.KindText, State: chatvault.StateLive, Version: 1, Text: text}
		if err := w.Write(&export.Record{Conversation: &export.Conversation{ID: "c"}, Message: m, SenderName: text}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		data := bytes.TrimPrefix(files.data["m.csv"].Bytes(), []byte("\ufeff"))
		recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
		if err != nil || len(recs) != 2 {
			t.Fatalf("CSV of %q = %d records, %v; want a header and one row", text, len(recs), err)
		}
		want := strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\r", "\n")
		if text != "" && strings.ContainsRune("=+-@\t\r", rune(text[0])) {
			want = "'" + want
		}
		if got := recs[1][12]; got != want {
			t.Fatalf("text cell of %q = %q; want %q", text, got, want)
		}
		if got := recs[1][5]; got != want {
			t.Fatalf("sender cell of %q = %q; want %q", text, got, want)
		}
	})
}

// ParseTime never panics, and what it accepts is a UTC time.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-03-01", "2026-03-01 09:00", "2026-03-01T09:00:00+08:00", "yesterday", "", "2026-13-01", "9999-12-31T23:59:59Z"} {
		f.Add(s)
	}
	loc, _ := time.LoadLocation("Asia/Shanghai")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := export.ParseTime("from", s, loc)
		if err != nil {
			if chatvault.ErrorField(err) != "from" {
				t.Fatalf("ParseTime(%q) error %v does not name the field", s, err)
			}
			return
		}
		if s != "" && got.Location() != time.UTC {
			t.Fatalf("ParseTime(%q) = %v; want UTC", s, got)
		}
	})
}
