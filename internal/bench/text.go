package bench

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// The shape of generated message bodies, as shares of all messages. Tests hold the generator to
// the bounds stated next to each (measured on 20,000 messages).
const (
	// Language: Chinese 55%, English 22%, mixed 23% (Chinese with Latin terms). Messages with any
	// Han character: 65-85%.
	shareChinese = 0.55
	shareEnglish = 0.22

	// Length: 30% canned replies ("好的", "收到", "ok"), 45% short (1-6 words), 20% medium (7-30),
	// 4% long (31-120), 1% very long (150-600 words, pasted notes). At least half of all bodies
	// are 12 runes or fewer; 0.5-4% are over 200 runes.
	shareReply  = 0.30
	shareShort  = 0.45
	shareMedium = 0.20
	shareLong   = 0.04

	// Extras: emoji in 8-20% of messages, a URL in 2-6%, an amount or contract/order number in
	// 5-12%.
	shareEmoji  = 0.12
	shareURL    = 0.035
	shareNumber = 0.08
)

// table draws entries by weight: a cumulative sum and a binary search.
type table struct {
	texts []string
	cum   []int
}

func newTable(ws []weighted) *table {
	t := &table{texts: make([]string, len(ws)), cum: make([]int, len(ws))}
	sum := 0
	for i, w := range ws {
		sum += w.weight
		t.texts[i], t.cum[i] = w.text, sum
	}
	return t
}

func (t *table) pick(r *rand.Rand) string {
	x := r.IntN(t.cum[len(t.cum)-1])
	i, _ := slices.BinarySearch(t.cum, x+1)
	return t.texts[i]
}

type vocab struct {
	zh, zhReplies, en, enReplies, mix, emoji, hosts *table
}

var vocabulary = sync.OnceValue(func() *vocab {
	return &vocab{zh: newTable(zhWords), zhReplies: newTable(zhReplies), en: newTable(enWords),
		enReplies: newTable(enReplies), mix: newTable(mixTerms), emoji: newTable(emoji), hosts: newTable(urlHosts)}
})

type lang int

const (
	langZH lang = iota
	langEN
	langMixed
)

// Body returns one message body drawn from r.
func Body(r *rand.Rand) string {
	v := vocabulary()
	var l lang
	switch x := r.Float64(); {
	case x < shareChinese:
		l = langZH
	case x < shareChinese+shareEnglish:
		l = langEN
	default:
		l = langMixed
	}
	var b strings.Builder
	switch x := r.Float64(); {
	case x < shareReply:
		switch l {
		case langZH:
			b.WriteString(v.zhReplies.pick(r))
		case langEN:
			b.WriteString(v.enReplies.pick(r))
		default:
			b.WriteString(v.mix.pick(r))
			b.WriteString(pick(r, " ", ""))
			b.WriteString(v.zhReplies.pick(r))
		}
	case x < shareReply+shareShort:
		sentences(&b, r, v, l, 1+r.IntN(6))
	case x < shareReply+shareShort+shareMedium:
		sentences(&b, r, v, l, 7+r.IntN(24))
	case x < shareReply+shareShort+shareMedium+shareLong:
		sentences(&b, r, v, l, 31+r.IntN(90))
	default:
		sentences(&b, r, v, l, 150+r.IntN(451))
	}
	if r.Float64() < shareNumber {
		b.WriteString(numberPhrase(r, l))
	}
	if r.Float64() < shareURL {
		b.WriteString(" https://")
		b.WriteString(v.hosts.pick(r))
		b.WriteString(urlPaths[r.IntN(len(urlPaths))])
		b.WriteString(token(r, 6+r.IntN(10)))
		if r.IntN(3) == 0 {
			fmt.Fprintf(&b, "?id=%d", r.IntN(1000000))
		}
	}
	if r.Float64() < shareEmoji {
		e := v.emoji.pick(r)
		for n := 1 + r.IntN(3); n > 0; n-- {
			if r.IntN(4) == 0 {
				e = v.emoji.pick(r)
			}
			b.WriteString(e)
		}
	}
	return b.String()
}

// sentences writes about n words in language l, with the punctuation chat actually has: commas
// now and then, an end mark only sometimes.
func sentences(b *strings.Builder, r *rand.Rand, v *vocab, l lang, n int) {
	untilComma := 4 + r.IntN(6)
	untilStop := 8 + r.IntN(14)
	startOfSentence := true
	prevLatin := false
	for i := 0; i < n; i++ {
		var w string
		latin := false
		switch {
		case l == langEN:
			w, latin = v.en.pick(r), true
		case l == langMixed && r.IntN(6) == 0:
			w, latin = v.mix.pick(r), true
		default:
			w = v.zh.pick(r)
		}
		switch {
		case l == langEN:
			if !startOfSentence {
				b.WriteByte(' ')
			} else if i > 0 {
				b.WriteByte(' ')
			}
			if startOfSentence && r.IntN(2) == 0 {
				w = capitalize(w)
			}
		case latin || prevLatin:
			if i > 0 && !startOfSentence && r.IntN(2) == 0 {
				b.WriteByte(' ')
			}
		}
		b.WriteString(w)
		prevLatin, startOfSentence = latin, false
		if i == n-1 {
			break
		}
		untilComma--
		untilStop--
		switch {
		case untilStop == 0:
			b.WriteString(stop(l, r))
			startOfSentence, untilStop, untilComma = true, 8+r.IntN(14), 4+r.IntN(6)
		case untilComma == 0:
			if l == langEN {
				b.WriteByte(',')
			} else {
				b.WriteString("，")
			}
			untilComma = 4 + r.IntN(6)
		}
	}
	switch x := r.IntN(10); {
	case x < 3:
		b.WriteString(stop(l, r))
	case x < 4:
		if l == langEN {
			b.WriteByte('?')
		} else {
			b.WriteString("？")
		}
	case x < 5 && l != langEN:
		b.WriteString(pick(r, "！", "～", "哈"))
	}
}

func stop(l lang, r *rand.Rand) string {
	if l == langEN {
		return pick(r, ".", ".", "!", "?")
	}
	return pick(r, "。", "。", "！", "？")
}

func capitalize(w string) string {
	c, n := utf8.DecodeRuneInString(w)
	return string(unicode.ToUpper(c)) + w[n:]
}

func pick(r *rand.Rand, options ...string) string { return options[r.IntN(len(options))] }

// numberPhrase is an amount, a contract or order number, a quantity or a time, as people type them.
func numberPhrase(r *rand.Rand, l lang) string {
	zh := l != langEN
	switch r.IntN(7) {
	case 0:
		amount := groupThousands(int64(10 * (1 + r.ExpFloat64()*2000)))
		if zh {
			return pick(r, "，金额¥", " 合计 ¥", "，总价") + amount + pick(r, ".00", "", "元")
		}
		return pick(r, " total $", ", amount: $", " for $") + amount + pick(r, ".00", "", ".50")
	case 1:
		id := fmt.Sprintf("HT-%d-%04d", 2023+r.IntN(4), r.IntN(10000))
		if zh {
			return pick(r, " 合同号", "，合同编号：", " ") + id
		}
		return pick(r, " contract ", " re ", " (") + id + pick(r, "", "", ")")
	case 2:
		id := fmt.Sprintf("PO%d%02d%02d-%04d", 2023+r.IntN(4), 1+r.IntN(12), 1+r.IntN(28), r.IntN(10000))
		if zh {
			return pick(r, " 订单号 ", "，单号", " ") + id
		}
		return pick(r, " order ", " PO# ", " ") + id
	case 3:
		if zh {
			return fmt.Sprintf(" %d%s", 1+r.IntN(500), pick(r, "件", "个", "箱", "份", "台"))
		}
		return fmt.Sprintf(" %d %s", 1+r.IntN(500), pick(r, "pcs", "units", "boxes", "seats"))
	case 4:
		if zh {
			return fmt.Sprintf(" %s%d点%s", pick(r, "上午", "下午", "晚上", "明天"), 1+r.IntN(11), pick(r, "", "半", "前"))
		}
		return fmt.Sprintf(" at %d:%02d", 8+r.IntN(11), 15*r.IntN(4))
	case 5:
		return fmt.Sprintf(" %.1f%%", r.Float64()*100)
	default:
		if zh {
			return fmt.Sprintf(" %.1f万", 0.5+r.ExpFloat64()*30)
		}
		return fmt.Sprintf(" %dk", 1+r.IntN(900))
	}
}

func groupThousands(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func token(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = base62[r.IntN(len(base62))]
	}
	return string(b)
}
