package export

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/chatvault/chatvault"
	"github.com/chatvault/chatvault/internal/keyring"
)

// A job stages its records: while it reads the store it writes them to a file of sealed frames,
// and only when every record is staged does it write the package from that file. Reading is the
// part that is long and must see one snapshot; staging lets it stop anywhere (a kill, a restart)
// and go on from its last checkpoint, since the frames up to the checkpoint are kept and the rest
// cut off. Writing the package reads only the local file, so after a stop it simply runs again,
// and gives the same bytes. The frames are sealed (AES-256-GCM under a key of the job's own, kept
// in its sealed checkpoint), so the staged text is no more readable on disk than the store's.

// stageEvent is one call the exporter made of its writer.
type stageEvent struct {
	Begin *Conversation
	Rec   *stagedRecord
	End   bool
}

// stagedRecord is a Record without what the replay restores: its conversation (the last Begin)
// and its time (the message's, in the request's time zone).
type stagedRecord struct {
	Message    *chatvault.Message
	SenderName string
	Versions   []*chatvault.MessageVersion
	Reply      *Reply
}

// errStageDamaged is what a job says when its staged records cannot be read back as written.
var errStageDamaged = chatvault.Errorf(chatvault.ECONFLICT, "the export's staged records are damaged or gone: start the export again")

// maxFrame bounds a frame read back: a page of records is far smaller, and a larger length can
// only be damage.
const maxFrame = 256 << 20

// stage is the Writer a job's read writes to. Flush seals what it holds as one frame.
type stage struct {
	w      io.Writer
	key    *keyring.DataKey
	job    string
	frames int64 // frames written, the next one's number
	size   int64 // bytes written
	events []stageEvent
}

func newStage(w io.Writer, key *keyring.DataKey, job string, frames, size int64) *stage {
	return &stage{w: w, key: key, job: job, frames: frames, size: size}
}

func (s *stage) Begin(c *Conversation) error {
	s.events = append(s.events, stageEvent{Begin: c})
	return nil
}

func (s *stage) Write(r *Record) error {
	s.events = append(s.events, stageEvent{Rec: &stagedRecord{Message: r.Message, SenderName: r.SenderName, Versions: r.Versions, Reply: r.Reply}})
	return nil
}

func (s *stage) End() error {
	s.events = append(s.events, stageEvent{End: true})
	return nil
}

func (s *stage) Close() error { return s.Flush() }

// Flush writes the events held as one frame.
func (s *stage) Flush() error {
	if len(s.events) == 0 {
		return nil
	}
	if err := s.writeFrame(s.events); err != nil {
		return err
	}
	s.events = s.events[:0]
	return nil
}

// writeSnapshot writes the job's snapshot as the stage's first frame: written once, and read
// back by a resumed job, rather than kept in the checkpoint the job saves every second.
func (s *stage) writeSnapshot(snap []snapConv) error {
	if s.frames != 0 {
		return errors.New("stage: the snapshot goes first")
	}
	return s.writeFrame(snap)
}

// writeFrame writes v as one frame: a 4-byte length, then the sealed gob of v, bound to the job
// and the frame's number so frames cannot be moved between jobs or reordered.
func (s *stage) writeFrame(v any) error {
	var plain bytes.Buffer
	if err := gob.NewEncoder(&plain).Encode(v); err != nil {
		return fmt.Errorf("stage records: %w", err)
	}
	sealed := s.key.Seal(plain.Bytes(), frameAAD(s.job, s.frames))
	frame := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(sealed)), uint32(len(sealed)))
	if _, err := s.w.Write(append(frame, sealed...)); err != nil {
		return fmt.Errorf("stage records: %w", err)
	}
	s.frames++
	s.size += int64(len(frame) + len(sealed))
	return nil
}

func frameAAD(job string, n int64) []byte {
	return keyring.AAD("export-stage", job, strconv.FormatInt(n, 10))
}

// frames reads staged frames back, opened, in order.
type frames struct {
	br  *bufio.Reader
	key *keyring.DataKey
	job string
	n   int64
}

func newFrames(r io.Reader, size int64, key *keyring.DataKey, job string) *frames {
	return &frames{br: bufio.NewReaderSize(io.LimitReader(r, size), 1<<20), key: key, job: job}
}

// next decodes the next frame into v; io.EOF after the last.
func (f *frames) next(v any) error {
	var head [4]byte
	if _, err := io.ReadFull(f.br, head[:]); errors.Is(err, io.EOF) {
		return io.EOF
	} else if err != nil {
		return fmt.Errorf("%w: frame %d: %v", errStageDamaged, f.n, err)
	}
	l := binary.BigEndian.Uint32(head[:])
	if l > maxFrame {
		return fmt.Errorf("%w: frame %d: length %d", errStageDamaged, f.n, l)
	}
	sealed := make([]byte, l)
	if _, err := io.ReadFull(f.br, sealed); err != nil {
		return fmt.Errorf("%w: frame %d: %v", errStageDamaged, f.n, err)
	}
	plain, err := f.key.Open(sealed, frameAAD(f.job, f.n))
	if err != nil {
		return fmt.Errorf("%w: frame %d: %v", errStageDamaged, f.n, err)
	}
	if err := gob.NewDecoder(bytes.NewReader(plain)).Decode(v); err != nil {
		return fmt.Errorf("%w: frame %d: %v", errStageDamaged, f.n, err)
	}
	f.n++
	return nil
}

// readSnapshot reads the snapshot from the stage's first frame.
func readSnapshot(r io.Reader, size int64, key *keyring.DataKey, job string) ([]snapConv, error) {
	var snap []snapConv
	if err := newFrames(r, size, key, job).next(&snap); errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: no snapshot", errStageDamaged)
	} else if err != nil {
		return nil, err
	}
	return snap, nil
}

// replay reads the size bytes of staged frames from r (the snapshot, then the events) and gives
// the events to w, in order, then closes w. Records get their conversation and their time in loc
// back.
func replay(r io.Reader, size int64, key *keyring.DataKey, job string, loc *time.Location, w Writer) error {
	fs := newFrames(r, size, key, job)
	var snap []snapConv
	if err := fs.next(&snap); err != nil {
		return fmt.Errorf("%w: no snapshot: %v", errStageDamaged, err)
	}
	var conv *Conversation
	for {
		var events []stageEvent
		err := fs.next(&events)
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return err
		}
		for _, e := range events {
			switch {
			case e.Begin != nil:
				conv = e.Begin
				conv.Created = conv.Created.In(loc)
				err = w.Begin(conv)
			case e.Rec != nil:
				if conv == nil {
					return fmt.Errorf("%w: frame %d: a record outside any conversation", errStageDamaged, fs.n-1)
				}
				m := e.Rec.Message
				err = w.Write(&Record{Conversation: conv, Message: m, SenderName: e.Rec.SenderName, Time: m.SentAt.In(loc),
					Versions: e.Rec.Versions, Reply: e.Rec.Reply})
			case e.End:
				err = w.End()
			}
			if err != nil {
				return err
			}
		}
	}
	return w.Close()
}
