// Package xlsx writes exports as Excel workbooks with excelize's stream writer. It is apart from
// internal/export because excelize imports net/http (for http.DetectContentType on pictures),
// which the domain packages may not; callers get every format through NewWriter here.
package xlsx

import (
	"archive/zip"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/chatvault/chatvault/internal/export"
	"github.com/xuri/excelize/v2"
)

// excelMaxRows is Excel's row limit per sheet, the header row included.
const excelMaxRows = 1_048_576

// xlsxWidths are the column widths, in characters, in columns' order.
var xlsxWidths = []float64{38, 24, 8, 38, 20, 16, 38, 8, 12, 8, 20, 10, 80}

type xlsxWriter struct {
	files     export.Files
	name      string
	lang      string
	loc       *time.Location
	f         *excelize.File
	sw        *excelize.StreamWriter
	sheet     int // sheets written so far
	row       int // rows on the current sheet, header included
	maxRows   int
	dateStyle int
	textStyle int
	info      export.FileInfo
	vals      []any
}

// New returns a Writer of one XLSX workbook, name, created in files when the writer is
// closed: a sheet of messages with a frozen header row, set widths and times as date cells,
// continued on a further sheet each time Excel's row limit is reached. excelize's stream writer
// keeps rows in a temporary file past a few megabytes, so memory stays flat.
func New(files export.Files, name, lang string, loc *time.Location) (export.Writer, error) {
	return newWriter(files, name, lang, loc, excelMaxRows)
}

func newWriter(files export.Files, name, lang string, loc *time.Location, maxRows int) (*xlsxWriter, error) {
	f := excelize.NewFile()
	w := &xlsxWriter{files: files, name: name, lang: lang, loc: loc, f: f, maxRows: maxRows, info: export.FileInfo{Name: name}}
	var err error
	if w.dateStyle, err = f.NewStyle(&excelize.Style{NumFmt: 22}); err != nil { // m/d/yy h:mm, shown in the reader's locale
		return nil, fmt.Errorf("xlsx style: %w", err)
	}
	if w.textStyle, err = f.NewStyle(&excelize.Style{Alignment: &excelize.Alignment{WrapText: true, Vertical: "top"}}); err != nil {
		return nil, fmt.Errorf("xlsx style: %w", err)
	}
	if err := w.nextSheet(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *xlsxWriter) sheetName(n int) string {
	base := "Messages"
	if w.lang == export.LangZhCN {
		base = "消息"
	}
	if n == 1 {
		return base
	}
	return fmt.Sprintf("%s %d", base, n)
}

// nextSheet finishes the current sheet and starts the next with its header.
func (w *xlsxWriter) nextSheet() error {
	if w.sw != nil {
		if err := w.sw.Flush(); err != nil {
			return fmt.Errorf("xlsx flush: %w", err)
		}
	}
	w.sheet++
	name := w.sheetName(w.sheet)
	if w.sheet == 1 {
		if err := w.f.SetSheetName("Sheet1", name); err != nil {
			return fmt.Errorf("xlsx sheet: %w", err)
		}
	} else if _, err := w.f.NewSheet(name); err != nil {
		return fmt.Errorf("xlsx sheet: %w", err)
	}
	sw, err := w.f.NewStreamWriter(name)
	if err != nil {
		return fmt.Errorf("xlsx stream: %w", err)
	}
	w.sw, w.row = sw, 0
	for i, width := range xlsxWidths {
		if err := sw.SetColWidth(i+1, i+1, width); err != nil {
			return fmt.Errorf("xlsx width: %w", err)
		}
	}
	if err := sw.SetPanes(&excelize.Panes{Freeze: true, YSplit: 1, TopLeftCell: "A2", ActivePane: "bottomLeft"}); err != nil {
		return fmt.Errorf("xlsx panes: %w", err)
	}
	head := export.Columns(w.lang)
	vals := make([]any, len(head))
	for i, h := range head {
		vals[i] = h
	}
	vals[4] = fmt.Sprintf("%s (%s)", head[4], w.loc)
	return w.setRow(vals)
}

func (w *xlsxWriter) setRow(vals []any) error {
	w.row++
	cell, err := excelize.CoordinatesToCellName(1, w.row)
	if err != nil {
		return err
	}
	if err := w.sw.SetRow(cell, vals); err != nil {
		return fmt.Errorf("xlsx row: %w", err)
	}
	return nil
}

func (w *xlsxWriter) Begin(*export.Conversation) error { return nil }
func (w *xlsxWriter) End() error                       { return nil }

func (w *xlsxWriter) Write(r *export.Record) error {
	for _, c := range export.Cells(r, w.lang) {
		if w.row >= w.maxRows {
			if err := w.nextSheet(); err != nil {
				return err
			}
		}
		// Strings go in as strings, never as formulas: a cell starting with "=" stays text.
		w.vals = append(w.vals[:0], c.ConvID, c.Conv, c.Seq, c.MsgID,
			excelize.Cell{StyleID: w.dateStyle, Value: c.Time}, c.Sender, c.SenderID, c.Kind, c.State, c.Version,
			w.timeValue(c.Edited), seqValue(c.ReplySeq), excelize.Cell{StyleID: w.textStyle, Value: c.Text})
		if err := w.setRow(w.vals); err != nil {
			return err
		}
		w.info.Rows++
	}
	return nil
}

func (w *xlsxWriter) timeValue(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return excelize.Cell{StyleID: w.dateStyle, Value: t}
}

func seqValue(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}

// Close writes the workbook. excelize's own Write gathers the whole compressed file in memory
// first, so the zip it writes is pointed straight at the destination instead.
func (w *xlsxWriter) Close() error {
	defer w.f.Close()
	if err := w.sw.Flush(); err != nil {
		return fmt.Errorf("xlsx flush: %w", err)
	}
	out, err := w.files.Create(w.name)
	if err != nil {
		return fmt.Errorf("create %s: %w", w.name, err)
	}
	w.f.SetZipWriter(func(io.Writer) excelize.ZipWriter { return zip.NewWriter(out) })
	if _, err := w.f.WriteToBuffer(); err != nil {
		return fmt.Errorf("write %s: %w", w.name, err)
	}
	return nil
}

func (w *xlsxWriter) Files() []export.FileInfo { return []export.FileInfo{w.info} }

// NewWriter returns the writer for req's format over files: XLSX here, the others from
// export.NewWriter. name is the file's name for the single-file formats (without extension).
func NewWriter(files export.Files, req *export.Request, name string) (export.Writer, error) {
	if req.Format != export.XLSX {
		return export.NewWriter(files, req, name)
	}
	return New(files, strings.TrimSuffix(name, ".xlsx")+".xlsx", req.Lang, req.Location())
}
