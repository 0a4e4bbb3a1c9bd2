package wsloop

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Opcodes of RFC 6455, section 5.2.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// Close codes the loop itself sends (RFC 6455, section 7.4.1); callers pass their own.
const (
	StatusNormalClosure = 1000
	StatusGoingAway     = 1001
	StatusProtocolError = 1002
	StatusNoStatus      = 1005
	StatusMessageTooBig = 1009
)

// appendFrame appends one unmasked, unfragmented server frame.
func appendFrame(dst []byte, op byte, payload []byte) []byte {
	dst = append(dst, 0x80|op)
	switch n := len(payload); {
	case n <= 125:
		dst = append(dst, byte(n))
	case n <= 0xFFFF:
		dst = append(dst, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	return append(dst, payload...)
}

// AppendText appends a text frame carrying payload.
func AppendText(dst, payload []byte) []byte { return appendFrame(dst, opText, payload) }

// AppendClose appends a close frame; the reason is cut to fit a control frame's 125 bytes
// without splitting a UTF-8 sequence.
func AppendClose(dst []byte, code int, reason string) []byte {
	if code == StatusNoStatus {
		return appendFrame(dst, opClose, nil)
	}
	if len(reason) > 123 {
		reason = reason[:123]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	return appendFrame(dst, opClose, append(p, reason...))
}

// header is a parsed frame header.
type header struct {
	fin    bool
	op     byte
	length int64
	mask   [4]byte
	size   int // bytes of the header itself
}

var errShort = errors.New("incomplete frame header")

// protocolError is a frame the peer must not send; the connection closes with 1002.
type protocolError string

func (e protocolError) Error() string { return string(e) }

// parseHeader reads a client frame's header from b; errShort means more bytes are needed.
func parseHeader(b []byte) (header, error) {
	var h header
	if len(b) < 2 {
		return h, errShort
	}
	if b[0]&0x70 != 0 {
		return h, protocolError("reserved bits set: no extension was negotiated")
	}
	h.fin = b[0]&0x80 != 0
	h.op = b[0] & 0x0F
	if b[1]&0x80 == 0 {
		return h, protocolError("client frame not masked")
	}
	h.size = 2
	switch n := b[1] & 0x7F; n {
	case 126:
		if len(b) < 4 {
			return h, errShort
		}
		h.length = int64(binary.BigEndian.Uint16(b[2:]))
		h.size = 4
	case 127:
		if len(b) < 10 {
			return h, errShort
		}
		u := binary.BigEndian.Uint64(b[2:])
		if u > 1<<62 {
			return h, protocolError("frame length out of range")
		}
		h.length = int64(u)
		h.size = 10
	default:
		h.length = int64(n)
	}
	if len(b) < h.size+4 {
		return h, errShort
	}
	copy(h.mask[:], b[h.size:])
	h.size += 4
	switch h.op {
	case opContinuation, opText, opBinary:
	case opClose, opPing, opPong:
		if !h.fin || h.length > 125 {
			return h, protocolError("control frame fragmented or longer than 125 bytes")
		}
	default:
		return h, protocolError(fmt.Sprintf("unknown opcode %d", h.op))
	}
	return h, nil
}

func unmask(b []byte, mask [4]byte) {
	for i := range b {
		b[i] ^= mask[i&3]
	}
}

// parseClose reads a close frame's payload: code and reason.
func parseClose(p []byte) (int, string, error) {
	if len(p) == 0 {
		return StatusNoStatus, "", nil
	}
	if len(p) == 1 {
		return 0, "", protocolError("close payload of 1 byte")
	}
	code := int(binary.BigEndian.Uint16(p))
	if !validCloseCode(code) {
		return 0, "", protocolError(fmt.Sprintf("invalid close code %d", code))
	}
	return code, string(p[2:]), nil
}

func validCloseCode(c int) bool {
	switch {
	case c >= 3000 && c <= 4999:
		return true
	case c >= 1000 && c <= 1014:
		return c != 1004 && c != 1005 && c != 1006
	}
	return false
}

// AcceptKey is the Sec-WebSocket-Accept answer to a client's Sec-WebSocket-Key.
func AcceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write([]byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}
