package export

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// bom makes Excel read the file as UTF-8; without it Excel in a zh-CN locale reads GBK and shows
// every Chinese character as mojibake.
const bom = "\uFEFF"

type csvWriter struct {
	cw   *csv.Writer
	lang string
	info FileInfo
	rec  []string
}

// NewCSV returns a Writer of one CSV file, name, created in files at once: UTF-8 with a BOM,
// RFC 4180 quoting and CRLF line ends, one header row in lang, times in the records' zone.
func NewCSV(files Files, name, lang string, loc *time.Location) (Writer, error) {
	f, err := files.Create(name)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	if _, err := io.WriteString(f, bom); err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	w := &csvWriter{cw: csv.NewWriter(f), lang: lang, info: FileInfo{Name: name}}
	w.cw.UseCRLF = true
	head := append([]string(nil), columns[lang]...)
	head[4] = fmt.Sprintf("%s (%s)", head[4], loc)
	if err := w.cw.Write(head); err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	return w, nil
}

func (w *csvWriter) Begin(*Conversation) error { return nil }
func (w *csvWriter) End() error                { return nil }

func (w *csvWriter) Write(r *Record) error {
	for _, c := range Cells(r, w.lang) {
		w.rec = append(w.rec[:0], c.ConvID, neutralise(c.Conv), strconv.FormatInt(c.Seq, 10), c.MsgID,
			c.Time.Format(timeLayout), neutralise(c.Sender), c.SenderID, c.Kind, c.State,
			strconv.Itoa(c.Version), formatTime(c.Edited), formatSeq(c.ReplySeq), neutralise(c.Text))
		if err := w.cw.Write(w.rec); err != nil {
			return fmt.Errorf("write %s: %w", w.info.Name, err)
		}
		w.info.Rows++
	}
	return nil
}

func (w *csvWriter) Close() error {
	w.cw.Flush()
	if err := w.cw.Error(); err != nil {
		return fmt.Errorf("write %s: %w", w.info.Name, err)
	}
	return nil
}

func (w *csvWriter) Files() []FileInfo { return []FileInfo{w.info} }

// lineBreaks writes every line break as CRLF: encoding/csv in CRLF mode (RFC 4180) drops a lone
// CR, which would join two lines of a message, so a lone CR becomes a line break too.
func lineBreaks(s string) string {
	if !strings.ContainsRune(s, '\r') {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
}

// neutralise keeps a spreadsheet from running what a user typed: a cell that begins with = + - @
// (or a tab or carriage return, which Excel skips before looking) is a formula to Excel, so it
// gets a leading apostrophe, which Excel shows as text and hides.
func neutralise(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + lineBreaks(s)
	}
	return lineBreaks(s)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(timeLayout)
}

func formatSeq(n int64) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatInt(n, 10)
}
