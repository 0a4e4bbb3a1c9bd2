package export

import (
	"bufio"
	"fmt"
	"html/template"
	"time"

	"github.com/chatvault/chatvault"
)

// The HTML transcript: one self-contained page per conversation (styles inline, no scripts, no
// external resources), which reads like the chat and prints cleanly. html/template escapes
// everything a user wrote.

var htmlHead = template.Must(template.New("head").Parse(`<!DOCTYPE html>
<html lang="{{.Lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Conv.Name}}</title>
<style>
body { font-family: system-ui, "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif; max-width: 48rem; margin: 2rem auto; padding: 0 1rem; color: #1a1a1a; }
header { border-bottom: 1px solid #ccc; margin-bottom: 1rem; }
h1 { font-size: 1.4rem; margin: 0 0 .3rem; }
header p { color: #666; font-size: .85rem; margin: 0 0 .8rem; }
.day { text-align: center; color: #666; font-size: .8rem; margin: 1.2rem 0 .6rem; }
.msg { margin: 0 0 .8rem; page-break-inside: avoid; }
.meta { font-size: .8rem; color: #555; }
.meta b { color: #1a1a1a; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; margin-top: .15rem; }
.reply { border-left: 3px solid #bbb; padding-left: .5rem; color: #555; font-size: .85rem; margin-top: .2rem; }
.note { color: #888; font-style: italic; }
.earlier { font-size: .8rem; color: #666; margin: .2rem 0 0 1rem; white-space: pre-wrap; }
.system { color: #666; font-size: .85rem; text-align: center; }
</style>
</head>
<body>
<header>
<h1 dir="auto">{{.Conv.Name}}</h1>
<p>{{.Conv.ID}} · {{.Kind}} · {{.TZLabel}} {{.TZ}}</p>
</header>
<main>
`))

// Names and message text are isolated (<bdi>, dir="auto"): a right-to-left override or other
// bidi control a user typed stays inside its own text and cannot reorder the names, times and
// labels around it (DESIGN: message text is kept as sent; display isolates it).
var htmlMessage = template.Must(template.New("msg").Parse(`{{if .Day}}<div class="day">{{.Day}}</div>
{{end}}<div class="msg{{if .System}} system{{end}}" id="seq-{{.Seq}}">
<div class="meta"><b><bdi>{{.Sender}}</bdi></b> {{.Time}} · #{{.Seq}}{{if .Edited}} · {{.EditedLabel}}{{end}}</div>
{{- if .Reply}}
<div class="reply">{{.ReplyLabel}} #{{.Reply.Seq}} <bdi>{{.Reply.Sender}}</bdi>{{if .Reply.Text}}: <bdi>{{.Reply.Text}}</bdi>{{end}}</div>
{{- end}}
{{- if .Recalled}}
<div class="text note">{{.RecalledLabel}}{{if .Text}}: <bdi>{{.Text}}</bdi>{{end}}</div>
{{- else}}
<div class="text" dir="auto">{{.Text}}</div>
{{- end}}
{{- range .Earlier}}
<div class="earlier">v{{.Version}} {{.Time}}: <bdi>{{.Text}}</bdi></div>
{{- end}}
</div>
`))

const htmlFoot = "</main>\n</body>\n</html>\n"

type htmlWriter struct {
	files Files
	lang  string
	loc   *time.Location
	conv  *Conversation
	bw    *bufio.Writer
	day   string
	infos []FileInfo
}

// NewHTML returns a Writer of one HTML transcript per conversation that has rows, each named
// after the conversation's id.
func NewHTML(files Files, lang string, loc *time.Location) Writer {
	return &htmlWriter{files: files, lang: lang, loc: loc}
}

func (w *htmlWriter) Begin(c *Conversation) error {
	w.conv, w.bw, w.day = c, nil, ""
	return nil
}

// open creates the conversation's page on its first row, so conversations the filter empties
// leave no empty pages.
func (w *htmlWriter) open() error {
	name := w.conv.ID + ".html"
	f, err := w.files.Create(name)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	w.bw = bufio.NewWriterSize(f, 32<<10)
	w.infos = append(w.infos, FileInfo{Name: name})
	return htmlHead.Execute(w.bw, map[string]any{"Lang": w.lang, "Conv": w.conv, "Kind": string(w.conv.Kind),
		"TZLabel": word(w.lang, "time_zone"), "TZ": w.loc.String()})
}

type htmlEarlier struct {
	Version int
	Time    string
	Text    string
}

func (w *htmlWriter) Write(r *Record) error {
	if w.bw == nil {
		if err := w.open(); err != nil {
			return err
		}
	}
	m := r.Message
	day := r.Time.Format("2006-01-02")
	data := map[string]any{"Seq": m.Seq, "Sender": r.SenderName, "Time": r.Time.Format("15:04:05"),
		"Edited": m.EditedAt != nil, "EditedLabel": word(w.lang, "edited"), "Reply": r.Reply, "ReplyLabel": word(w.lang, "reply"),
		"Recalled": m.State != chatvault.StateLive, "RecalledLabel": word(w.lang, "recalled_note"), "Text": m.Text,
		"System": m.Kind == chatvault.KindSystem}
	if day != w.day {
		data["Day"], w.day = day, day
	}
	var earlier []htmlEarlier
	for _, v := range r.Versions {
		earlier = append(earlier, htmlEarlier{Version: v.Version, Time: v.CreatedAt.In(w.loc).Format(timeLayout), Text: v.Text})
	}
	data["Earlier"] = earlier
	if err := htmlMessage.Execute(w.bw, data); err != nil {
		return fmt.Errorf("write %s: %w", w.infos[len(w.infos)-1].Name, err)
	}
	w.infos[len(w.infos)-1].Rows++
	return nil
}

func (w *htmlWriter) End() error {
	if w.bw == nil {
		return nil
	}
	name := w.infos[len(w.infos)-1].Name
	if _, err := w.bw.WriteString(htmlFoot); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	w.bw = nil
	return nil
}

func (w *htmlWriter) Close() error { return nil }

func (w *htmlWriter) Files() []FileInfo { return w.infos }
