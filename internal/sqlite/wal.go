package sqlite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// SQLite recovers a write-ahead log by reading its frames while their checksums hold and stops at
// the first that fails: after a crash that is the torn tail of the last write, and what is cut
// off was never acknowledged. A frame that fails in the middle of frames written after it with
// the same salts is something else: the log was damaged on disk, and the commits from that frame
// on, acknowledged, would be dropped without a word. checkWAL tells the two apart before the
// store opens (and checkpoints the log, destroying the evidence). The format is SQLite's
// (https://www.sqlite.org/fileformat2.html#walformat).

const (
	walHeaderSize      = 32
	walFrameHeaderSize = 24
	walMagicLE         = 0x377f0682 // checksums over little-endian words
	walMagicBE         = 0x377f0683 // over big-endian words
)

// checkWAL reads path's write-ahead log, if it has one, and returns what is wrong with it: nothing
// for a log that is sound or only torn at its end.
func checkWAL(path string) ([]string, error) {
	wal, err := os.ReadFile(path + "-wal")
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(wal) < walHeaderSize) {
		return nil, nil // no log, or one never written past its start: nothing to recover
	}
	if err != nil {
		return nil, fmt.Errorf("read %s-wal: %w", path, err)
	}
	be := binary.BigEndian
	var order binary.ByteOrder
	switch be.Uint32(wal[0:4]) {
	case walMagicLE:
		order = binary.LittleEndian
	case walMagicBE:
		order = binary.BigEndian
	default:
		return []string{fmt.Sprintf("%s-wal does not start as a write-ahead log", path)}, nil
	}
	pageSize := int(be.Uint32(wal[8:12]))
	if pageSize == 1 {
		pageSize = 65536
	}
	if pageSize < 512 || pageSize&(pageSize-1) != 0 {
		return []string{fmt.Sprintf("%s-wal names a page size of %d", path, pageSize)}, nil
	}
	salt1, salt2 := be.Uint32(wal[16:20]), be.Uint32(wal[20:24])
	s0, s1 := walChecksum(order, wal[0:24], 0, 0)
	if s0 != be.Uint32(wal[24:28]) || s1 != be.Uint32(wal[28:32]) {
		return nil, nil // a header that fails its own checksum: SQLite starts a new log, as after a crash while writing it
	}
	frameSize := walFrameHeaderSize + pageSize
	frames := (len(wal) - walHeaderSize) / frameSize
	for i := range frames {
		f := wal[walHeaderSize+i*frameSize : walHeaderSize+(i+1)*frameSize]
		if be.Uint32(f[8:12]) != salt1 || be.Uint32(f[12:16]) != salt2 {
			return nil, nil // the end of this log; what follows is an earlier one's
		}
		s0, s1 = walChecksum(order, f[0:8], s0, s1)
		s0, s1 = walChecksum(order, f[walFrameHeaderSize:], s0, s1)
		if s0 == be.Uint32(f[16:20]) && s1 == be.Uint32(f[20:24]) {
			continue
		}
		// Frame i fails. A torn tail has nothing of this log after it.
		for j := i + 1; j < frames; j++ {
			g := wal[walHeaderSize+j*frameSize : walHeaderSize+(j+1)*frameSize]
			if be.Uint32(g[8:12]) == salt1 && be.Uint32(g[12:16]) == salt2 {
				return []string{fmt.Sprintf("%s-wal: frame %d of %d fails its checksum while frames after it belong to the same log: "+
					"the log is damaged, and the commits from frame %d on would be lost", path, i+1, frames, i+1)}, nil
			}
		}
		return nil, nil
	}
	return nil, nil
}

// walChecksum continues SQLite's WAL checksum (s0, s1) over b, read as pairs of 32-bit words.
func walChecksum(order binary.ByteOrder, b []byte, s0, s1 uint32) (uint32, uint32) {
	for i := 0; i+8 <= len(b); i += 8 {
		s0 += order.Uint32(b[i:]) + s1
		s1 += order.Uint32(b[i+4:]) + s0
	}
	return s0, s1
}
