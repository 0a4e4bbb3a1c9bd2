// Package bench is `chatvault bench`: a deterministic generator of realistic chat data, the
// benchmark scenarios that run against it (each measuring its reference in the same run), the
// statistics they report, and the report's table and JSON forms.
package bench

import (
	"cmp"
	"fmt"
	"iter"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/google/uuid"
)

// Params are the generator's inputs. The same Params always give the same data set.
type Params struct {
	Seed     uint64
	Messages int
	// PasswordHash is stored for every generated user (hashing one password per user would
	// cost ~40 ms each). It is an input, not generated, so that output stays deterministic.
	PasswordHash string
}

// The data spans three years up to End. End is fixed, not the clock, so output is reproducible.
var (
	End   = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	Start = End.AddDate(-3, 0, 0)
)

// Org is a generated org with its users; Users[0] is its admin, named "admin".
type Org struct {
	Org   *chatvault.Org
	Users []*chatvault.User
}

// Conv is a generated conversation. Members[0] is its creator.
type Conv struct {
	*chatvault.Conversation
	Members []string
	// Messages is how many messages the generator gives it (so its last seq after loading).
	Messages int
	weight   float64
}

// Dataset is the structure of a generated data set: orgs, users, conversations and how many
// messages each conversation gets. Messages streams the messages themselves.
type Dataset struct {
	Params Params
	Orgs   []*Org
	Users  []*chatvault.User
	Convs  []*Conv

	// UserConvs lists, for each user id, the indices in Convs of the conversations they are in.
	UserConvs map[string][]int
}

// Shape of the structure, as functions of the message count.
const (
	messagesPerUser = 100  // users = messages / 100, at least 8
	usersPerOrg     = 2000 // orgs = users / 2000, at least 1, at most 64
	directPerUser   = 3    // direct conversations per user
	usersPerGroup   = 4    // one group per 4 users
)

// NewDataset builds the structure for p. It is cheap next to Messages: no message is generated.
func NewDataset(p Params) *Dataset {
	r := rand.New(rand.NewPCG(p.Seed, 0x63686174766c74))
	d := &Dataset{Params: p, UserConvs: map[string][]int{}}
	nUsers := min(max(p.Messages/messagesPerUser, 8), 2_000_000)
	nOrgs := min(max(nUsers/usersPerOrg, 1), 64)

	// Org sizes fall off as 1/rank.
	var wsum float64
	for i := range nOrgs {
		wsum += 1 / float64(i+1)
	}
	for i := range nOrgs {
		size := max(3, int(math.Round(float64(nUsers)/float64(i+1)/wsum)))
		d.Orgs = append(d.Orgs, d.newOrg(r, i, size))
	}
	for _, o := range d.Orgs {
		d.Users = append(d.Users, o.Users...)
		d.newConversations(r, o)
	}

	// Conversation activity falls off as 1/rank^0.85 over a random ranking; groups talk more.
	rank := r.Perm(len(d.Convs))
	cum := make([]float64, len(d.Convs))
	var total float64
	for i, c := range d.Convs {
		c.weight = 1 / math.Pow(float64(rank[i]+1), 0.85)
		if c.Kind == chatvault.Group {
			c.weight *= 2
		}
		total += c.weight
		cum[i] = total
	}
	for range p.Messages {
		i, _ := slices.BinarySearch(cum, r.Float64()*total)
		d.Convs[min(i, len(cum)-1)].Messages++
	}
	for i, c := range d.Convs {
		for _, u := range c.Members {
			d.UserConvs[u] = append(d.UserConvs[u], i)
		}
	}
	return d
}

var (
	surnames   = []string{"王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "林", "罗", "高"}
	surnamesPY = []string{"wang", "li", "zhang", "liu", "chen", "yang", "huang", "zhao", "wu", "zhou", "xu", "sun", "ma", "zhu", "hu", "guo", "he", "lin", "luo", "gao"}
	givens     = []string{"伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "涛", "明", "超", "秀英", "霞", "平", "刚", "晓东", "思远", "雨桐", "子涵"}
	givensPY   = []string{"wei", "fang", "na", "min", "jing", "li", "qiang", "lei", "jun", "yang", "yong", "yan", "jie", "tao", "ming", "chao", "xiuying", "xia", "ping", "gang", "xiaodong", "siyuan", "yutong", "zihan"}
	firstNames = []string{"Alice", "Ben", "Chloe", "David", "Emma", "Frank", "Grace", "Henry", "Ivy", "Jack", "Kate", "Leo", "Mia", "Noah", "Olivia", "Paul"}
	lastNames  = []string{"Smith", "Brown", "Lee", "Wong", "Taylor", "Martin", "Clark", "Lewis", "Walker", "Young"}
	groupNames = []string{"项目组", "销售部", "客户群", "技术支持", "财务对接", "周报", "产品讨论", "华东区", "采购", "Team", "Ops", "年会筹备", "新人群", "市场部", "供应链"}
)

func (d *Dataset) newOrg(r *rand.Rand, i, size int) *Org {
	created := Start.AddDate(0, 0, -30)
	slug, name := "default", "Default organisation"
	if i > 0 {
		slug, name = fmt.Sprintf("org-%02d", i+1), fmt.Sprintf("Bench Org %d", i+1)
	}
	o := &Org{Org: &chatvault.Org{ID: newUUID(r, created), Slug: slug, Name: name, CreatedAt: created}}
	for j := range size {
		u := &chatvault.User{OrgID: o.Org.ID, ID: newUUID(r, created), Roles: []chatvault.Role{chatvault.RoleMember},
			PasswordHash: d.Params.PasswordHash, CreatedAt: created.Add(time.Duration(j) * time.Second)}
		switch {
		case j == 0:
			u.Username, u.DisplayName = "admin", "Admin"
			// As an org's first admin: org_admin and security_admin (who grants the privileged roles).
			u.Roles = append(u.Roles, chatvault.RoleOrgAdmin, chatvault.RoleSecurityAdmin)
		case r.IntN(5) == 0:
			f, l := r.IntN(len(firstNames)), r.IntN(len(lastNames))
			u.Username = fmt.Sprintf("%s.%s%d", lower(firstNames[f]), lower(lastNames[l]), j)
			u.DisplayName = firstNames[f] + " " + lastNames[l]
		default:
			s, g := r.IntN(len(surnames)), r.IntN(len(givens))
			u.Username = fmt.Sprintf("%s.%s%d", surnamesPY[s], givensPY[g], j)
			u.DisplayName = surnames[s] + givens[g]
		}
		o.Users = append(o.Users, u)
	}
	return o
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// newConversations gives an org its direct conversations (between users drawn by activity, which
// falls off as 1/rank^0.8) and its groups (sizes Zipf-like from 3 up to 500).
func (d *Dataset) newConversations(r *rand.Rand, o *Org) {
	n := len(o.Users)
	rank := r.Perm(n)
	cum := make([]float64, n)
	var total float64
	for i := range n {
		total += 1 / math.Pow(float64(rank[i]+1), 0.8)
		cum[i] = total
	}
	pickUser := func() int {
		i, _ := slices.BinarySearch(cum, r.Float64()*total)
		return min(i, n-1)
	}
	span := End.Sub(Start) - 24*time.Hour
	startAt := func() time.Time {
		// Older conversations are more common than newer ones among those that still exist.
		return Start.Add(time.Duration(math.Pow(r.Float64(), 1.5) * float64(span))).Truncate(time.Millisecond)
	}
	nDirect := min(directPerUser*n, n*(n-1)/2)
	seen := map[[2]int]bool{}
	for attempts := 0; len(seen) < nDirect && attempts < 20*nDirect; attempts++ {
		a, b := pickUser(), pickUser()
		if a == b {
			continue
		}
		key := [2]int{min(a, b), max(a, b)}
		if seen[key] {
			continue
		}
		seen[key] = true
		ua, ub := o.Users[a], o.Users[b]
		pair := []string{ua.ID, ub.ID}
		slices.Sort(pair)
		at := startAt()
		d.Convs = append(d.Convs, &Conv{Conversation: &chatvault.Conversation{OrgID: o.Org.ID, ID: newUUID(r, at),
			Kind: chatvault.Direct, CreatedBy: ua.ID, CreatedAt: at, DirectKey: pair[0] + ":" + pair[1]},
			Members: []string{ua.ID, ub.ID}})
	}
	if n < 3 {
		return
	}
	zipf := rand.NewZipf(r, 1.3, 2, uint64(min(497, n-3)))
	for g := range max(1, n/usersPerGroup) {
		size := 3 + int(zipf.Uint64())
		members := []int{pickUser()}
		in := map[int]bool{members[0]: true}
		for attempts := 0; len(members) < size && attempts < 50*size; attempts++ {
			if u := pickUser(); !in[u] {
				in[u] = true
				members = append(members, u)
			}
		}
		ids := make([]string, len(members))
		for i, m := range members {
			ids[i] = o.Users[m].ID
		}
		at := startAt()
		d.Convs = append(d.Convs, &Conv{Conversation: &chatvault.Conversation{OrgID: o.Org.ID, ID: newUUID(r, at),
			Kind: chatvault.Group, Title: fmt.Sprintf("%s %d", groupNames[g%len(groupNames)], g+1), CreatedBy: ids[0],
			CreatedAt: at, HistoryVisibleToNewMembers: r.IntN(3) == 0}, Members: ids})
	}
}

// hourWeights is how chat is spread over the hours of a day in China (UTC+8), index = local hour.
var hourWeights = [24]float64{1, 0.5, 0.3, 0.2, 0.2, 0.3, 1, 3, 6, 9, 10, 9, 6, 8, 10, 10, 9, 8, 6, 5, 5, 4, 3, 2}

// Messages streams every message of the data set in the order they were sent, with seqs gap-free
// per conversation. Messages come in bursts (a few messages tens of seconds apart) at the hours
// people work, less on weekends. Each call yields the same messages, each a fresh value.
func (d *Dataset) Messages() iter.Seq[*chatvault.Message] {
	return func(yield func(*chatvault.Message) bool) {
		r := rand.New(rand.NewPCG(d.Params.Seed, 0x6d657373616765))
		type slot struct {
			at   int64 // Unix ms
			conv int32
		}
		slots := make([]slot, 0, d.Params.Messages)
		var hourCum [24]float64
		var hsum float64
		for h, w := range hourWeights {
			hsum += w
			hourCum[h] = hsum
		}
		end := End.UnixMilli()
		for ci, c := range d.Convs {
			from := c.CreatedAt.UnixMilli()
			days := max(1, (end-from)/86_400_000)
			for left := c.Messages; left > 0; {
				var day int64
				for {
					day = from/86_400_000 + r.Int64N(days)
					wd := time.UnixMilli(day * 86_400_000).Weekday()
					if wd != time.Saturday && wd != time.Sunday || r.Float64() < 0.35 {
						break
					}
				}
				h, _ := slices.BinarySearch(hourCum[:], r.Float64()*hsum)
				at := day*86_400_000 + int64(h-8)*3_600_000 + r.Int64N(3_600_000)
				burst := min(left, 1+int(r.ExpFloat64()*4))
				for range burst {
					at += int64(r.ExpFloat64() * 40_000)
					slots = append(slots, slot{at: min(max(at, from+1), end-1), conv: int32(ci)})
				}
				left -= burst
			}
		}
		slices.SortFunc(slots, func(a, b slot) int {
			return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.conv, b.conv))
		})
		lastSeq := make([]int64, len(d.Convs))
		lastSender := make([]int32, len(d.Convs))
		lastID := make([]string, len(d.Convs))
		for _, s := range slots {
			c := d.Convs[s.conv]
			lastSeq[s.conv]++
			sender := lastSender[s.conv]
			switch {
			case lastSeq[s.conv] == 1:
				sender = 0
			case c.Kind == chatvault.Direct:
				if r.Float64() >= 0.6 {
					sender = 1 - sender
				}
			case r.Float64() >= 0.45:
				// A few members of a group do most of the talking.
				sender = int32(float64(len(c.Members)) * math.Pow(r.Float64(), 2.5))
			}
			lastSender[s.conv] = sender
			sent := time.UnixMilli(s.at).UTC()
			m := &chatvault.Message{OrgID: c.OrgID, ID: newUUID(r, sent), ConversationID: c.ID, Seq: lastSeq[s.conv],
				SenderID: c.Members[sender], ClientMsgID: newUUID(r, sent), Kind: chatvault.KindText, Text: Body(r),
				SentAt: sent, Version: 1, State: chatvault.StateLive}
			m.ID = chatvault.ClientMessageID(m.OrgID, m.ConversationID, m.SenderID, m.ClientMsgID) // as AppendMessage names it
			if lastID[s.conv] != "" && r.IntN(33) == 0 {
				m.ReplyTo = lastID[s.conv]
			}
			lastID[s.conv] = m.ID
			if !yield(m) {
				return
			}
		}
	}
}

// newUUID returns a version 7 UUID for time at whose random bits come from r, so generated ids
// are time-ordered like the server's and reproducible.
func newUUID(r *rand.Rand, at time.Time) string {
	var u uuid.UUID
	ms := uint64(at.UnixMilli())
	for i := range 6 {
		u[i] = byte(ms >> (40 - 8*i))
	}
	hi, lo := r.Uint64(), r.Uint64()
	for i := range 2 {
		u[6+i] = byte(hi >> (8 * i))
	}
	for i := range 8 {
		u[8+i] = byte(lo >> (8 * i))
	}
	u[6] = u[6]&0x0f | 0x70
	u[8] = u[8]&0x3f | 0x80
	return u.String()
}
