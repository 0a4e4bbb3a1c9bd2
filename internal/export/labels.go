package export

import "time"

// columns are the headings of the CSV and XLSX columns, by language, in column order.
var columns = map[string][]string{
	LangEN: {"conversation_id", "conversation", "seq", "message_id", "time", "sender", "sender_id",
		"kind", "state", "version", "edited_at", "reply_to_seq", "text"},
	LangZhCN: {"会话ID", "会话", "序号", "消息ID", "时间", "发送者", "发送者ID",
		"类型", "状态", "版本", "编辑时间", "回复序号", "内容"},
}

// stateSuperseded marks the row of an earlier text of an edited message.
const stateSuperseded = "superseded"

// words are the few words the writers show besides data, by language.
var words = map[string]map[string]string{
	LangEN: {
		"text": "text", "file": "file", "system": "system",
		"live": "live", "recalled": "recalled", stateSuperseded: "earlier version",
		"edited": "edited", "recalled_note": "message recalled", "reply": "reply to",
		"messages": "messages", "exported": "exported", "time_zone": "time zone",
		"earlier": "earlier versions",
	},
	LangZhCN: {
		"text": "文本", "file": "文件", "system": "系统",
		"live": "正常", "recalled": "已撤回", stateSuperseded: "历史版本",
		"edited": "已编辑", "recalled_note": "消息已撤回", "reply": "回复",
		"messages": "条消息", "exported": "导出于", "time_zone": "时区",
		"earlier": "历史版本",
	},
}

func word(lang, key string) string {
	if w, ok := words[lang][key]; ok {
		return w
	}
	return key
}

// timeLayout is how CSV and HTML show times: a form Excel reads as a date in every locale.
const timeLayout = "2006-01-02 15:04:05"

// Row is one message (and, with edits, each earlier text) as spreadsheet cells, before any
// format's own treatment.
type Row struct {
	ConvID, Conv string
	Seq          int64
	MsgID        string
	Time         time.Time
	Sender       string
	SenderID     string
	Kind, State  string
	Version      int
	Edited       time.Time // zero: not edited
	ReplySeq     int64     // 0: not a reply, or to a message the exporter may not see
	Text         string
}

// Columns returns the column headings in lang, in column order.
func Columns(lang string) []string { return columns[lang] }

// Cells turns a record into its spreadsheet rows: the earlier versions first, then the message
// as it is.
func Cells(r *Record, lang string) []Row {
	m := r.Message
	base := Row{ConvID: r.Conversation.ID, Conv: r.Conversation.Name(), Seq: m.Seq, MsgID: m.ID,
		Time: r.Time, Sender: r.SenderName, SenderID: m.SenderID,
		Kind: word(lang, string(m.Kind)), State: word(lang, string(m.State)), Version: m.Version, Text: m.Text}
	if m.EditedAt != nil {
		base.Edited = m.EditedAt.In(r.Time.Location())
	}
	if r.Reply != nil {
		base.ReplySeq = r.Reply.Seq
	}
	out := make([]Row, 0, len(r.Versions)+1)
	for _, v := range r.Versions {
		c := base
		c.State, c.Version, c.Text = word(lang, stateSuperseded), v.Version, v.Text
		c.Edited = v.CreatedAt.In(r.Time.Location())
		if v.Version == 1 {
			c.Edited = time.Time{}
		}
		out = append(out, c)
	}
	return append(out, base)
}
