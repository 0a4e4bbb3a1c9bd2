package export

import (
	"bufio"
	"encoding/json"
	"fmt"
	"time"

	"github.com/chatvault/chatvault"
)

// The JSONL format (docs/export-jsonl.md documents it field by field). One JSON object a line;
// "type" says which: a conversation line, then that conversation's messages in seq order.
// Times are RFC 3339 with milliseconds, in the export's time zone with its offset, so each is
// both the exact instant and the wall time the reader asked for.

type jsonlConversation struct {
	Type      string                     `json:"type"` // "conversation"
	ID        string                     `json:"id"`
	Kind      chatvault.ConversationKind `json:"kind"`
	Title     string                     `json:"title,omitempty"`
	CreatedAt string                     `json:"created_at"`
	LastSeq   int64                      `json:"last_seq"`
}

type jsonlMessage struct {
	Type           string                 `json:"type"` // "message"
	ConversationID string                 `json:"conversation_id"`
	Seq            int64                  `json:"seq"`
	ID             string                 `json:"id"`
	SenderID       string                 `json:"sender_id"`
	SenderName     string                 `json:"sender_name"`
	ClientMsgID    string                 `json:"client_msg_id,omitempty"`
	Kind           chatvault.MessageKind  `json:"kind"`
	State          chatvault.MessageState `json:"state"`
	Text           string                 `json:"text"`
	ReplyTo        string                 `json:"reply_to,omitempty"`
	ReplyToSeq     int64                  `json:"reply_to_seq,omitempty"`
	SentAt         string                 `json:"sent_at"`
	Version        int                    `json:"version"`
	EditedAt       string                 `json:"edited_at,omitempty"`
	StateChangedAt string                 `json:"state_changed_at,omitempty"`
	Important      bool                   `json:"important"`
	Versions       []jsonlVersion         `json:"versions,omitempty"`
}

type jsonlVersion struct {
	Version   int    `json:"version"`
	Text      string `json:"text"`
	CreatedAt string `json:"created_at"`
}

// jsonTime is the format of every time in the JSONL.
const jsonTime = "2006-01-02T15:04:05.000Z07:00"

type jsonlWriter struct {
	bw   *bufio.Writer
	enc  *json.Encoder
	loc  *time.Location
	info FileInfo
	msg  jsonlMessage
}

// NewJSONL returns a Writer of one JSONL file, name, created in files at once.
func NewJSONL(files Files, name string, loc *time.Location) (Writer, error) {
	f, err := files.Create(name)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	w := &jsonlWriter{bw: bufio.NewWriterSize(f, 64<<10), loc: loc, info: FileInfo{Name: name}}
	w.enc = json.NewEncoder(w.bw)
	w.enc.SetEscapeHTML(false)
	return w, nil
}

func (w *jsonlWriter) Begin(c *Conversation) error {
	return w.encode(jsonlConversation{Type: "conversation", ID: c.ID, Kind: c.Kind, Title: c.Title,
		CreatedAt: c.Created.In(w.loc).Format(jsonTime), LastSeq: c.LastSeq})
}

func (w *jsonlWriter) End() error { return nil }

func (w *jsonlWriter) Write(r *Record) error {
	m := r.Message
	w.msg = jsonlMessage{Type: "message", ConversationID: m.ConversationID, Seq: m.Seq, ID: m.ID, SenderID: m.SenderID,
		SenderName: r.SenderName, ClientMsgID: m.ClientMsgID, Kind: m.Kind, State: m.State, Text: m.Text,
		ReplyTo: m.ReplyTo, SentAt: w.time(&m.SentAt), Version: m.Version, EditedAt: w.time(m.EditedAt),
		StateChangedAt: w.time(m.StateAt), Important: m.Important}
	if r.Reply != nil {
		w.msg.ReplyToSeq = r.Reply.Seq
	}
	for _, v := range r.Versions {
		w.msg.Versions = append(w.msg.Versions, jsonlVersion{Version: v.Version, Text: v.Text, CreatedAt: w.time(&v.CreatedAt)})
	}
	if err := w.encode(&w.msg); err != nil {
		return err
	}
	w.info.Rows++
	return nil
}

func (w *jsonlWriter) time(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.In(w.loc).Format(jsonTime)
}

func (w *jsonlWriter) encode(v any) error {
	if err := w.enc.Encode(v); err != nil {
		return fmt.Errorf("write %s: %w", w.info.Name, err)
	}
	return nil
}

func (w *jsonlWriter) Close() error {
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", w.info.Name, err)
	}
	return nil
}

func (w *jsonlWriter) Files() []FileInfo { return []FileInfo{w.info} }
