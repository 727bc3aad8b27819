package webhookauth

import (
	"errors"
	"io"
	"math/bits"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
)

// Body buffers come from pools of power-of-two size classes, from
// 512 bytes to 4 MiB; larger ones are left to the garbage collector so
// that a few large deliveries do not pin memory.
const (
	minClassShift = 9  // 512 B
	maxClassShift = 22 // 4 MiB
	// firstChunk is the most a buffer starts with, whatever the request
	// declares: memory follows the bytes that arrive, never the
	// Content-Length a sender claims.
	firstChunk = 64 << 10
)

var (
	bufPools [maxClassShift - minClassShift + 1]sync.Pool
	bodyPool = sync.Pool{New: func() any { return new(body) }}
)

// classOf returns the size class that holds n bytes.
func classOf(n int) int {
	if n <= 1<<minClassShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minClassShift
}

// getBuf returns a buffer with room for at least n bytes, empty. The
// pointer goes back with putBuf, so recycling allocates nothing.
func getBuf(n int) *[]byte {
	c := classOf(n)
	if c >= len(bufPools) {
		b := make([]byte, 0, n)
		return &b
	}
	if p, ok := bufPools[c].Get().(*[]byte); ok {
		*p = (*p)[:0]
		return p
	}
	b := make([]byte, 0, 1<<(c+minClassShift))
	return &b
}

// putBuf recycles a buffer from getBuf; one outside the classes is left
// to the garbage collector.
func putBuf(p *[]byte) {
	n := cap(*p)
	if n < 1<<minClassShift || n > 1<<maxClassShift || n&(n-1) != 0 {
		return
	}
	*p = (*p)[:0]
	bufPools[classOf(n)].Put(p)
}

// body is a request body read into memory so it can be verified and then
// forwarded unchanged. It goes back to the pool once both the handler and
// whatever read the forwarded body (the proxy transport, which may finish
// after the handler returns) are done with it.
type body struct {
	buf []byte
	// bufp is where buf came from (getBuf), to give it back.
	bufp  *[]byte
	probe [1]byte
	refs  atomic.Int32
	// rest is the unread remainder of a body cut off at the limit; only
	// report mode forwards it.
	rest io.ReadCloser
}

// readBody reads r's body up to limit bytes. A body over the limit gives
// body_too_large: at once when Content-Length says so, or as soon as the
// limit is passed while reading. The buffer starts small and at most
// doubles as bytes arrive, so a sender that declares a large body and
// sends little holds little memory. A read that passes the connection's
// read deadline gives body_timeout.
func readBody(r *http.Request, limit int64) (*body, *Rejection, error) {
	if r.ContentLength > limit {
		return nil, tooLarge(limit), nil
	}
	declared := r.ContentLength // -1 when unknown
	b := bodyPool.Get().(*body)
	b.refs.Store(1)
	b.rest = nil
	first := int64(4 << 10)
	if declared >= 0 {
		first = min(declared, firstChunk)
	}
	b.bufp = getBuf(int(min(first, limit+1)))
	b.buf = *b.bufp
	for {
		if len(b.buf) == cap(b.buf) {
			if int64(len(b.buf)) > limit {
				break
			}
			if int64(len(b.buf)) == declared {
				// Everything declared has arrived: one tiny read
				// to see EOF rather than a buffer twice the size.
				n, err := r.Body.Read(b.probe[:])
				if n == 0 {
					if rej, rerr := b.readFailed(err); rej != nil || rerr != nil {
						return nil, rej, rerr
					}
					break
				}
				b.grow(limit, -1)
				b.buf = append(b.buf, b.probe[0])
				declared = -1
				continue
			}
			b.grow(limit, declared)
		}
		n, err := r.Body.Read(b.buf[len(b.buf):cap(b.buf)])
		b.buf = b.buf[:len(b.buf)+n]
		if err != nil {
			if rej, rerr := b.readFailed(err); rej != nil || rerr != nil {
				return nil, rej, rerr
			}
			break
		}
	}
	if int64(len(b.buf)) > limit {
		b.rest = r.Body
		return b, tooLarge(limit), nil
	}
	return b, nil, nil
}

// grow moves the buffer to one twice as large (never past what is
// declared, when that is known, nor past limit+1).
func (b *body) grow(limit, declared int64) {
	want := max(int64(cap(b.buf))*2, 512)
	if declared > int64(len(b.buf)) {
		want = min(want, declared)
	}
	want = min(want, limit+1)
	np := getBuf(int(want))
	*np = append(*np, b.buf...)
	b.giveBack()
	b.bufp, b.buf = np, *np
}

// giveBack returns the buffer to its pool.
func (b *body) giveBack() {
	if b.bufp != nil {
		*b.bufp = b.buf[:0]
		putBuf(b.bufp)
	}
	b.bufp, b.buf = nil, nil
}

// readFailed sorts out a read error: EOF ends the body (nil, nil);
// anything else releases the buffer and becomes a rejection or an error.
func (b *body) readFailed(err error) (*Rejection, error) {
	if err == io.EOF {
		return nil, nil
	}
	b.release()
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge(mbe.Limit), nil
	}
	if isTimeout(err) {
		return bodyTimeout, nil
	}
	return nil, err
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func tooLarge(limit int64) *Rejection {
	return reject(ReasonBodyTooLarge, "the body is larger than the limit of "+strconv.FormatInt(limit, 10)+" bytes")
}

// bodyTimeout is the rejection of a body that did not arrive within
// read_timeout. The connection cannot be read from any more, so it is
// closed after the answer.
var bodyTimeout = func() *Rejection {
	rej := reject(ReasonBodyTimeout, "the body did not arrive within the read timeout")
	rej.SetHeader("Connection", "close")
	return rej
}()

// attach makes r carry the buffered body, with a matching Content-Length,
// so the next handler sees exactly the bytes that arrived.
func (b *body) attach(r *http.Request) {
	b.refs.Add(1)
	fb := &forwardBody{b: b}
	r.Body = fb
	if b.rest == nil {
		n := int64(len(b.buf))
		r.ContentLength = n
		r.TransferEncoding = nil
		// The proxy writes Content-Length from the field; the header is
		// for handlers and placeholders that read it, and is already
		// right unless the body came chunked.
		if cl := r.Header["Content-Length"]; len(cl) != 1 || !declares(cl[0], n) {
			r.Header.Set("Content-Length", strconv.FormatInt(n, 10))
		}
	}
}

// declares reports whether the Content-Length value v is exactly n.
func declares(v string, n int64) bool {
	if v == "" || len(v) > 1 && v[0] == '0' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	got, err := strconv.ParseInt(v, 10, 64)
	return err == nil && got == n
}

// release drops one reference and recycles the buffer after the last.
func (b *body) release() {
	if b.refs.Add(-1) != 0 {
		return
	}
	b.giveBack()
	b.rest = nil
	bodyPool.Put(b)
}

// forwardBody reads a buffered body (then, in report mode, the rest of an
// oversized one) and releases the buffer when closed.
type forwardBody struct {
	b      *body
	off    int
	closed atomic.Bool
}

func (f *forwardBody) Read(p []byte) (int, error) {
	if f.closed.Load() {
		return 0, http.ErrBodyReadAfterClose
	}
	if f.off < len(f.b.buf) {
		n := copy(p, f.b.buf[f.off:])
		f.off += n
		return n, nil
	}
	if f.b.rest != nil {
		return f.b.rest.Read(p)
	}
	return 0, io.EOF
}

func (f *forwardBody) Close() error {
	if f.closed.Swap(true) {
		return nil
	}
	var err error
	if f.b.rest != nil {
		err = f.b.rest.Close()
	}
	f.b.release()
	return err
}
