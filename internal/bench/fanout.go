package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/account"
	"github.com/coder/websocket"
	"github.com/google/uuid"
)

// FanoutSizes sizes the fanout scenario.
type FanoutSizes struct {
	// Users are all online, each with Devices WebSocket connections (Users × Devices in all).
	Users   int
	Devices int
	// Group is how many users (all online) are in the group whose delivery latency is measured.
	Group int
	// Rate is how many messages per second are sent in all, over HTTP; GroupRate of them go to the
	// group, the rest to direct conversations between online users.
	Rate      int
	GroupRate int
	// Settle is how long the connections sit idle before the server's RSS is read.
	Settle time.Duration
}

// DefaultFanoutSizes are the sizes of the targets.
func DefaultFanoutSizes() FanoutSizes {
	return FanoutSizes{Users: 2500, Devices: 4, Group: 500, Rate: 1000, GroupRate: 10, Settle: 5 * time.Second}
}

func (s FanoutSizes) validate() error {
	if s.Users < 2 || s.Devices < 1 || s.Group < 2 || s.Group > s.Users || s.GroupRate < 1 || s.Rate < s.GroupRate || s.Settle < 0 {
		return errors.New("fanout sizes: users at least 2, devices at least 1, group 2-users, group rate at least 1 and at most rate")
	}
	return nil
}

// wsClient is one online device of the fanout scenario.
type wsClient struct {
	user int // index in the scenario's users
	conn *websocket.Conn
}

// Fanout measures live delivery: Fanout.Users × Fanout.Devices idle WebSocket connections to a
// child chatvault serve (the server's memory per connection: its RSS before and after opening
// them, divided by their number), then, while Fanout.Rate messages per second are sent over HTTP
// (Fanout.GroupRate of them to a group of Fanout.Group online members, the rest to direct
// conversations between online users), the time from each group message's send request start to
// its "message" frame arriving on each connection of the group's members, measured in this process
// with one clock.
func Fanout(ctx context.Context, cfg Config) (*Report, error) {
	sz := cfg.Fanout
	if err := sz.validate(); err != nil {
		return nil, err
	}
	ds, rep, err := cfg.start("fanout")
	if err != nil {
		return nil, err
	}
	rep.Figures = map[string]float64{}
	nconn := sz.Users * sz.Devices
	for k, v := range map[string]any{"users": sz.Users, "devices_per_user": sz.Devices, "connections": nconn, "group_members": sz.Group,
		"rate": sz.Rate, "group_rate": sz.GroupRate, "senders": cfg.Senders, "settle": sz.Settle.String()} {
		rep.Settings[k] = v
	}
	// Both processes hold one descriptor per connection; the server inherits this limit.
	need := uint64(nconn + 4*cfg.Senders + 256)
	limit, err := raiseOpenFiles(need)
	if err != nil {
		return nil, fmt.Errorf("raise the open-file limit: %w", err)
	}
	rep.Figures["open_file_limit"] = float64(limit)
	rep.Figures["open_files_needed_per_process"] = float64(need)
	if limit < need {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the open-file limit is %d, below the %d each process needs: connections past it fail and are counted", limit, need))
	}

	dir, err := cfg.workCopy(ds, "fanout")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	l, err := openSealed(dir, cfg.Logf)
	if err != nil {
		return nil, err
	}
	if rep.Durability, err = durability(ctx, l.db); err != nil {
		l.db.Close()
		return nil, err
	}
	t0 := time.Now()
	fo, err := buildFanout(ctx, l, ds, sz)
	if err != nil {
		l.db.Close()
		return nil, err
	}
	if err := l.db.Close(); err != nil {
		return nil, err
	}
	cfg.Logf("fanout: org with %d users, a group of %d, %d direct conversations and %d devices made in %.1fs",
		sz.Users, sz.Group, len(fo.pairs), nconn, time.Since(t0).Seconds())

	err = cfg.withServer(ctx, dir, func(srv *server) error {
		return cfg.fanout(ctx, srv, rep, fo)
	})
	if err != nil {
		return nil, err
	}
	rep.Notes = append(rep.Notes,
		"group_delivery latency is per receiving connection: from the start of the send request (POST .../messages) to the arrival of the \"message\" frame, both read from this process's monotonic clock; every online device of every member counts, the sender's own included",
		fmt.Sprintf("load: %d messages/s paced over %d HTTP senders, %d/s to the group of %d, the rest to %d direct conversations between online users (each delivered to both users' %d devices); a send the pacer could not hand to an idle sender is counted in sends_missed",
			sz.Rate, cfg.Senders, sz.GroupRate, sz.Group, len(fo.pairs), sz.Devices),
		"server_bytes_per_connection is (VmRSS after opening the connections and letting them sit idle for the settle time − VmRSS before) / connections opened: everything the server holds per idle connection (goroutines, buffers, subscription), as the OS sees it",
		"no engine reference for fanout: delivery reads nothing from the store beyond the append; the send path's own reference is `chatvault bench ingest`")
	return rep, nil
}

// fanoutData is what buildFanout made.
type fanoutData struct {
	users  []*chatvault.User
	tokens [][]string // per user, per device
	group  string
	pairs  []fanoutPair
}

type fanoutPair struct {
	conv string
	a, b int
}

// buildFanout adds an org with sz.Users users, the group, one direct conversation per two users
// and every device, through the store.
func buildFanout(ctx context.Context, l *local, ds *dataset, sz FanoutSizes) (*fanoutData, error) {
	hash, err := account.HashPassword(ds.password)
	if err != nil {
		return nil, err
	}
	now := chatvault.SystemClock{}.Now()
	org := &chatvault.Org{ID: uuid.Must(uuid.NewV7()).String(), Slug: "fanout-bench", Name: "Fanout bench", CreatedAt: now}
	fo := &fanoutData{users: make([]*chatvault.User, sz.Users)}
	for i := range fo.users {
		roles := []chatvault.Role{chatvault.RoleMember}
		if i == 0 {
			roles = append(roles, chatvault.RoleOrgAdmin)
		}
		name := fmt.Sprintf("fanout%05d", i)
		fo.users[i] = &chatvault.User{OrgID: org.ID, ID: uuid.Must(uuid.NewV7()).String(), Username: name, DisplayName: name,
			Roles: roles, CreatedAt: now, PasswordHash: hash}
	}
	if err := l.db.CreateOrg(ctx, org, fo.users[0]); err != nil {
		return nil, err
	}
	if err := parallel(ctx, sz.Users-1, func(i int) error { return l.db.CreateUser(ctx, fo.users[i+1]) }); err != nil {
		return nil, err
	}
	g := &chatvault.Conversation{OrgID: org.ID, ID: uuid.Must(uuid.NewV7()).String(), Kind: chatvault.Group, Title: "全员通知群",
		CreatedBy: fo.users[0].ID, CreatedAt: now}
	var members []string
	for _, u := range fo.users[1:sz.Group] {
		members = append(members, u.ID)
	}
	if _, err := l.db.CreateConversation(ctx, g, members); err != nil {
		return nil, fmt.Errorf("create the group: %w", err)
	}
	fo.group = g.ID
	half := sz.Users / 2
	fo.pairs = make([]fanoutPair, half)
	err = parallel(ctx, half, func(i int) error {
		a, b := fo.users[i], fo.users[i+half]
		pair := []string{a.ID, b.ID}
		slices.Sort(pair)
		c := &chatvault.Conversation{OrgID: org.ID, ID: uuid.Must(uuid.NewV7()).String(), Kind: chatvault.Direct, CreatedBy: a.ID,
			CreatedAt: now, DirectKey: strings.Join(pair, ":")}
		if _, err := l.db.CreateConversation(ctx, c, []string{b.ID}); err != nil {
			return err
		}
		fo.pairs[i] = fanoutPair{conv: c.ID, a: i, b: i + half}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create direct conversations: %w", err)
	}
	var who []*chatvault.User
	for range sz.Devices {
		who = append(who, fo.users...)
	}
	toks, err := SignIn(ctx, l.db, who, "chatvault bench fanout")
	if err != nil {
		return nil, err
	}
	fo.tokens = make([][]string, sz.Users)
	for i, t := range toks {
		fo.tokens[i%sz.Users] = append(fo.tokens[i%sz.Users], t)
	}
	return fo, nil
}

// latencies collects latencies from many goroutines.
type latencies struct {
	mu sync.Mutex
	ds []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.ds = append(l.ds, d)
	l.mu.Unlock()
}

func (l *latencies) take() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ds)
}

var (
	messageFrame = []byte(`{"type":"message"`)
	clientMsgKey = []byte(`"client_msg_id":"`)
)

// fanout runs the measurements against srv.
func (cfg *Config) fanout(ctx context.Context, srv *server, rep *Report, fo *fanoutData) error {
	sz := cfg.Fanout
	c := newClient(srv.addr, cfg.Senders)
	defer c.close()
	// One request first, so the server's start-up allocations are not counted per connection.
	if _, err := c.do(ctx, http.MethodGet, "/api/v1/sync", fo.tokens[0][0], nil, http.StatusOK); err != nil {
		return err
	}
	time.Sleep(time.Second)
	srvBefore, benchBefore := currentRSS(srv.pid()), currentRSS(os.Getpid())

	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	var (
		starts      sync.Map // client_msg_id of a group message -> time.Time its send started
		firsts      sync.Map // client_msg_id of a group message -> time.Time its first frame arrived anywhere
		groupLats   latencies
		spreadLats  latencies
		otherFrames atomic.Int64
		dropped     atomic.Int64
		readers     sync.WaitGroup
	)
	read := func(cl *wsClient) {
		defer readers.Done()
		for {
			_, data, err := cl.conn.Read(readCtx)
			now := time.Now()
			if err != nil {
				if readCtx.Err() == nil {
					dropped.Add(1)
				}
				return
			}
			if !bytes.HasPrefix(data, messageFrame) {
				continue
			}
			i := bytes.Index(data, clientMsgKey)
			if i < 0 {
				continue
			}
			id := data[i+len(clientMsgKey):]
			if j := bytes.IndexByte(id, '"'); j >= 0 {
				id = id[:j]
			}
			if !bytes.HasPrefix(id, []byte("g-")) {
				otherFrames.Add(1)
				continue
			}
			if t0, ok := starts.Load(string(id)); ok {
				groupLats.add(now.Sub(t0.(time.Time)))
				first, _ := firsts.LoadOrStore(string(id), now)
				spreadLats.add(now.Sub(first.(time.Time)))
			}
		}
	}

	// Open every connection: dial, read the first (sync) frame, then keep reading.
	nconn := sz.Users * sz.Devices
	clients := make([]*wsClient, nconn)
	var connLats latencies
	var dialFails atomic.Int64
	var dialErr error
	var dialErrOnce sync.Once
	cfg.Logf("fanout: opening %d WebSocket connections to chatvault serve (pid %d)", nconn, srv.pid())
	sm, bm := startMeter(srv.pid()), startMeter(os.Getpid())
	openStart := time.Now()
	url := "ws://" + srv.addr + "/api/v1/ws"
	parallel(ctx, nconn, func(i int) error {
		user, dev := i%sz.Users, i/sz.Users
		t0 := time.Now()
		cl, err := dialWS(ctx, url, fo.tokens[user][dev])
		if err != nil {
			dialFails.Add(1)
			dialErrOnce.Do(func() { dialErr = err })
			return nil
		}
		connLats.add(time.Since(t0))
		cl.user = user
		clients[i] = cl
		readers.Add(1)
		go read(cl)
		return nil
	})
	openElapsed := time.Since(openStart)
	peak, scpu := sm.stop()
	_, bcpu := bm.stop()
	opened := 0
	groupConns := 0
	for _, cl := range clients {
		if cl != nil {
			opened++
			if cl.user < sz.Group {
				groupConns++
			}
		}
	}
	r := result("WebSocket dial to /api/v1/ws (Bearer token) + the first (sync) frame, 64 dialing at once", "connections",
		"one connection opened and synced", connLats.take(), int(dialFails.Load()), dialErr, openElapsed)
	r.PeakRSSBytes, r.RSSOf = peak, sm.rssNote(fmt.Sprintf("the chatvault serve process, pid %d", srv.pid()))
	r.ServerCPUSecs, r.BenchCPUSecs = round1(scpu.Seconds()), round1(bcpu.Seconds())
	rep.add("connect", r)
	cfg.Logf("fanout: %d connections open (%d failed) in %.1fs; idle for %s", opened, dialFails.Load(), openElapsed.Seconds(), sz.Settle)
	time.Sleep(sz.Settle)
	srvAfter, benchAfter := currentRSS(srv.pid()), currentRSS(os.Getpid())
	rep.Figures["connections_opened"] = float64(opened)
	rep.Figures["server_rss_before_bytes"] = float64(srvBefore)
	rep.Figures["server_rss_after_bytes"] = float64(srvAfter)
	if opened > 0 {
		rep.Figures["server_bytes_per_connection"] = math.Round(float64(srvAfter-srvBefore) / float64(opened))
		rep.Figures["bench_bytes_per_connection"] = math.Round(float64(benchAfter-benchBefore) / float64(opened))
	}
	rep.Figures["dropped_while_idle"] = float64(dropped.Load())

	// Load: paced sends over HTTP, group messages timed to every receipt.
	cfg.Logf("fanout: sending %d messages/s (%d/s to the group of %d, %d connections), %d senders", sz.Rate, sz.GroupRate, sz.Group, groupConns, cfg.Senders)
	type job struct {
		group bool
		n     int64
	}
	jobs := make(chan job, 4*cfg.Senders)
	var (
		ackLats    latencies
		sendFails  atomic.Int64
		sendErr    error
		sendOnce   sync.Once
		groupAcked atomic.Int64
		missed     int64
		senders    sync.WaitGroup
	)
	for w := range cfg.Senders {
		senders.Add(1)
		go func() {
			defer senders.Done()
			r := rand.New(rand.NewPCG(cfg.Seed, 0x666f7574+uint64(w)))
			for j := range jobs {
				var user int
				var conv, id string
				if j.group {
					user, conv, id = r.IntN(sz.Group), fo.group, "g-"+strconv.FormatInt(j.n, 10)
				} else {
					p := fo.pairs[r.IntN(len(fo.pairs))]
					user, conv, id = p.a, p.conv, "b-"+strconv.FormatInt(j.n, 10)
					if r.IntN(2) == 1 {
						user = p.b
					}
				}
				text := Body(r)
				t0 := time.Now()
				if j.group {
					starts.Store(id, t0)
				}
				if err := c.send(ctx, fo.tokens[user][0], conv, id, text); err != nil {
					sendFails.Add(1)
					sendOnce.Do(func() { sendErr = err })
					continue
				}
				ackLats.add(time.Since(t0))
				if j.group {
					groupAcked.Add(1)
				}
			}
		}()
	}
	sm, bm = startMeter(srv.pid()), startMeter(os.Getpid())
	loadStart := time.Now()
	tick := time.NewTicker(2 * time.Millisecond)
	var nGroup, nOther int64
	otherRate := float64(sz.Rate - sz.GroupRate)
	for ctx.Err() == nil {
		el := time.Since(loadStart)
		if cfg.Count > 0 && nGroup+nOther >= int64(cfg.Count) || cfg.Count <= 0 && el >= cfg.Duration {
			break
		}
		dueGroup := int64(el.Seconds()*float64(sz.GroupRate)) + 1
		dueOther := int64(el.Seconds() * otherRate)
		for nGroup < dueGroup || nOther < dueOther {
			j := job{group: nGroup < dueGroup && (nOther >= dueOther || float64(nGroup)/float64(sz.GroupRate) <= float64(nOther)/otherRate)}
			if j.group {
				j.n, nGroup = nGroup, nGroup+1
			} else {
				j.n, nOther = nOther, nOther+1
			}
			select {
			case jobs <- j:
			default:
				missed++
			}
			if cfg.Count > 0 && nGroup+nOther >= int64(cfg.Count) {
				break
			}
		}
		<-tick.C
	}
	tick.Stop()
	close(jobs)
	senders.Wait()
	loadElapsed := time.Since(loadStart)
	// Let the last deliveries arrive: until every expected receipt came, or none for 3s.
	expected := int(groupAcked.Load()) * groupConns
	lastN, lastChange := -1, time.Now()
	for drainStart := time.Now(); time.Since(drainStart) < 30*time.Second; time.Sleep(50 * time.Millisecond) {
		n := len(groupLats.take())
		if n >= expected {
			break
		}
		if n != lastN {
			lastN, lastChange = n, time.Now()
		} else if time.Since(lastChange) > 3*time.Second {
			break
		}
	}
	peak, scpu = sm.stop()
	_, bcpu = bm.stop()
	acked := ackLats.take()
	r = result(fmt.Sprintf("POST /api/v1/conversations/{id}/messages paced at %d/s by %d senders, while %d connections are open", sz.Rate, cfg.Senders, opened),
		"messages", "one acknowledged message (201)", acked, int(sendFails.Load()), sendErr, loadElapsed)
	r.PeakRSSBytes, r.RSSOf = peak, sm.rssNote(fmt.Sprintf("the chatvault serve process, pid %d", srv.pid()))
	r.ServerCPUSecs, r.BenchCPUSecs = round1(scpu.Seconds()), round1(bcpu.Seconds())
	r.Note = "CPU seconds cover the sending and the deliveries"
	rep.add("send", r)
	gl := groupLats.take()
	r = result(fmt.Sprintf("group message delivered to each of the %d connections of the %d online group members", groupConns, sz.Group),
		"deliveries", "send request start to the message frame's arrival, per connection", gl, max(0, expected-len(gl)), nil, loadElapsed)
	r.PeakRSSBytes, r.RSSOf = peak, sm.rssNote(fmt.Sprintf("the chatvault serve process, pid %d", srv.pid()))
	r.ServerCPUSecs, r.BenchCPUSecs = round1(scpu.Seconds()), round1(bcpu.Seconds())
	r.Note = fmt.Sprintf("%d group messages acknowledged × %d connections = %d receipts expected, %d arrived (errors = missing)", groupAcked.Load(), groupConns, expected, len(gl))
	rep.add("group_delivery", r)
	// The fan-out alone: how long after the first member's connection got a group message each
	// other connection got it. It leaves out the send's own commit, which group_delivery includes.
	sl := spreadLats.take()
	r = result(fmt.Sprintf("group message delivered to each of the %d connections, from its first arrival at any of them", groupConns),
		"deliveries", "first connection's receipt to this connection's, per connection", sl, 0, nil, loadElapsed)
	r.Note = "the fan-out alone: the commit and the send's acknowledgement are before the first receipt"
	rep.add("group_spread", r)
	rep.Figures["group_messages_acked"] = float64(groupAcked.Load())
	rep.Figures["sends_missed"] = float64(missed)
	rep.Figures["achieved_send_rate"] = math.Round(float64(len(acked)) / loadElapsed.Seconds())
	rep.Figures["direct_message_frames_received"] = float64(otherFrames.Load())
	rep.Figures["connections_dropped"] = float64(dropped.Load())

	stopReading()
	for _, cl := range clients {
		if cl != nil {
			cl.conn.CloseNow()
		}
	}
	readers.Wait()
	return nil
}

// dialWS opens a WebSocket as the device with token and reads its first frame, which must be the
// sync frame.
func dialWS(ctx context.Context, url, token string) (*wsClient, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		return nil, err
	}
	conn.SetReadLimit(16 << 20)
	_, data, err := conn.Read(ctx)
	if err != nil {
		conn.CloseNow()
		return nil, fmt.Errorf("read the first frame: %w", err)
	}
	if !bytes.HasPrefix(data, []byte(`{"type":"sync"`)) {
		conn.CloseNow()
		return nil, fmt.Errorf("first frame = %.80s, want a sync frame", data)
	}
	return &wsClient{conn: conn}, nil
}

// currentRSS returns VmRSS of process pid in bytes (0 when unknown).
func currentRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// raiseOpenFiles raises this process's soft open-file limit to its hard limit when it is below
// need (child processes inherit it) and returns the limit in force.
func raiseOpenFiles(need uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	// Set it even when it is high enough: only an explicit Setrlimit makes Go pass this process's
	// limit, not the one it started with, to child processes.
	lim.Cur = max(lim.Cur, min(need, lim.Max))
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}
