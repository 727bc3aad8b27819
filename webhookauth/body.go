package webhookauth

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
)

// maxPooledBody is the largest buffer kept for reuse; bigger bodies are
// left to the garbage collector so that a few large deliveries do not pin
// memory.
const maxPooledBody = 4 << 20

var bodyPool = sync.Pool{New: func() any { return new(body) }}

// body is a request body read into memory so it can be verified and then
// forwarded unchanged. It goes back to the pool once both the handler and
// whatever read the forwarded body (the proxy transport, which may finish
// after the handler returns) are done with it.
type body struct {
	buf  []byte
	refs atomic.Int32
	// rest is the unread remainder of a body cut off at the limit; only
	// report mode forwards it.
	rest io.ReadCloser
}

// readBody reads r's body up to limit bytes. A body over the limit gives
// body_too_large: at once when Content-Length says so, or as soon as the
// limit is passed while reading a body of unknown length.
func readBody(r *http.Request, limit int64) (*body, *Rejection, error) {
	if r.ContentLength > limit {
		return nil, tooLarge(limit), nil
	}
	b := bodyPool.Get().(*body)
	b.refs.Store(1)
	b.rest = nil
	want := int64(512)
	if r.ContentLength >= 0 {
		want = r.ContentLength + 1 // +1 to see EOF without growing
	}
	if want > limit+1 {
		want = limit + 1
	}
	if int64(cap(b.buf)) < want {
		b.buf = make([]byte, 0, want)
	}
	b.buf = b.buf[:0]
	for {
		if len(b.buf) == cap(b.buf) {
			if int64(len(b.buf)) > limit {
				break
			}
			grow := min(int64(cap(b.buf))*2, limit+1)
			b.buf = slices.Grow(b.buf, int(grow)-len(b.buf))
		}
		n, err := r.Body.Read(b.buf[len(b.buf):cap(b.buf)])
		b.buf = b.buf[:len(b.buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			b.release()
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, tooLarge(mbe.Limit), nil
			}
			return nil, nil, err
		}
	}
	if int64(len(b.buf)) > limit {
		b.rest = r.Body
		return b, tooLarge(limit), nil
	}
	return b, nil, nil
}

func tooLarge(limit int64) *Rejection {
	return reject(ReasonBodyTooLarge, "the body is larger than the limit of "+strconv.FormatInt(limit, 10)+" bytes")
}

// attach makes r carry the buffered body, with a matching Content-Length,
// so the next handler sees exactly the bytes that arrived.
func (b *body) attach(r *http.Request) {
	b.refs.Add(1)
	fb := &forwardBody{b: b}
	r.Body = fb
	if b.rest == nil {
		r.ContentLength = int64(len(b.buf))
		r.TransferEncoding = nil
		r.Header.Set("Content-Length", strconv.Itoa(len(b.buf)))
	}
}

// release drops one reference and recycles the buffer after the last.
func (b *body) release() {
	if b.refs.Add(-1) != 0 {
		return
	}
	if cap(b.buf) <= maxPooledBody {
		b.buf = b.buf[:0]
		b.rest = nil
		bodyPool.Put(b)
	}
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
