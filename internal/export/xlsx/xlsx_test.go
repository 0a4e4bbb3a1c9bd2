package xlsx

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/export"
	"github.com/xuri/excelize/v2"
)

type buf struct{ bytes.Buffer }

func (b *buf) Create(string) (io.Writer, error) { return b, nil }

// Past the row limit the messages go on a new sheet, each with its header and frozen top row,
// and none is lost.
func TestSheetContinuesPastRowLimit(t *testing.T) {
	var out buf
	w, err := newWriter(&out, "m.xlsx", export.LangEN, time.UTC, 4) // a header and 3 rows a sheet
	if err != nil {
		t.Fatal(err)
	}
	conv := &export.Conversation{ID: "c", Kind: chatvault.Group, Title: "g"}
	for i := range 7 {
		m := &chatvault.Message{ID: "m", Seq: int64(i + 1), Kind: chatvault.KindText, State: chatvault.StateLive, Version: 1,
			Text: "=1+1", SentAt: time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC)}
		if err := w.Write(&export.Record{Conversation: conv, Message: m, Time: m.SentAt}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := excelize.OpenReader(&out)
	if err != nil {
		t.Fatalf("OpenReader() = %v", err)
	}
	sheets := f.GetSheetList()
	if len(sheets) != 3 || sheets[0] != "Messages" || sheets[2] != "Messages 3" {
		t.Fatalf("sheets = %q; want Messages, Messages 2, Messages 3", sheets)
	}
	total := 0
	for _, s := range sheets {
		rows, err := f.GetRows(s)
		if err != nil {
			t.Fatal(err)
		}
		if rows[0][0] != "conversation_id" {
			t.Errorf("sheet %s starts with %q; want the header", s, rows[0])
		}
		total += len(rows) - 1
		if f, _ := f.GetCellFormula(s, "M2"); f != "" {
			t.Errorf("sheet %s M2 has formula %q; want text", s, f)
		}
	}
	if total != 7 {
		t.Errorf("rows across sheets = %d; want 7", total)
	}
}
