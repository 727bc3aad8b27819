package queue

import (
	"errors"
	"net/http"
	"time"
)

// State is where an item is in its life.
type State string

const (
	// StatePending: waiting for its next attempt (now or later).
	StatePending State = "pending"
	// StateDead: ended without being delivered (a status that is not
	// retried, max_attempts or max_age); kept until redriven or dropped.
	StateDead State = "dead"
	// StateRetained: delivered, kept for `retain` for replay.
	StateRetained State = "retained"
)

// Item is a stored delivery's metadata: everything the operator's view
// shows, never a body or a header value.
type Item struct {
	ID       string    `json:"id"`
	State    State     `json:"state"`
	Received time.Time `json:"received"`
	// Due is when the next attempt may start (pending), or until when a
	// retained item is kept.
	Due        time.Time `json:"due"`
	Attempts   int       `json:"attempts"`
	LastStatus int       `json:"last_status,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
	Provider   string    `json:"provider,omitempty"`
	DeliveryID string    `json:"delivery_id,omitempty"`
	Event      string    `json:"event,omitempty"`
	Size       int       `json:"size"`
}

// Request is the stored request: what an attempt rebuilds, byte for byte.
type Request struct {
	Method     string      `json:"method"`
	URI        string      `json:"uri"`
	Host       string      `json:"host"`
	Proto      string      `json:"proto"`
	RemoteAddr string      `json:"remote_addr"`
	TLS        bool        `json:"tls,omitempty"`
	Header     http.Header `json:"header"`
}

// Stats are a queue's counts, kept by the store in the same transactions
// as the items, so they are right after a crash.
type Stats struct {
	Pending  int64 `json:"pending"`
	Dead     int64 `json:"dead"`
	Retained int64 `json:"retained"`
	// Bytes are the bodies of the pending and dead items.
	Bytes  int64 `json:"bytes"`
	Paused bool  `json:"paused"`
	// Oldest is the receive time of the oldest pending item (zero: none).
	Oldest time.Time `json:"oldest"`
	// InFlight, for a shared store, is how many items the whole fleet
	// has taken and not finished (a local queue counts its own leases).
	InFlight int64 `json:"-"`
}

// Outcome is what an attempt ends in.
type Outcome struct {
	// Delivered, or else Dead, or else retry at Next.
	Delivered bool
	Dead      bool
	Next      time.Time
	Status    int
	Error     string
	// RetainUntil, for a delivered item kept for replay (zero: dropped).
	RetainUntil time.Time
}

// Finished is one attempt's outcome, for Store.Finish.
type Finished struct {
	ID      string
	Outcome Outcome
}

// Store is where a queue's items live: the embedded store on local disk
// (store local) or Redis Streams (store redis, the fleet's). Every method
// that changes an item is durable when it returns nil: the sender's 2xx
// waits for Add.
type Store interface {
	// Add stores a new pending item, due now, with its request and body.
	Add(it *Item, req *Request, body []byte) error
	// Due returns up to n pending items due at now, oldest due first,
	// skipping those for which skip is true.
	Due(now time.Time, n int, skip func(id string) bool) ([]Item, error)
	// NextDue is when the earliest pending item is due (false: none).
	NextDue() (time.Time, bool, error)
	// Load returns an item's request and body.
	Load(id string) (*Item, *Request, []byte, error)
	// Finish records the outcomes of attempts, all in one write. It
	// need not be durable at once (a crash that loses it makes the items
	// due again: delivered at least once), so a runtime gathers the
	// outcomes of many attempts into each call.
	Finish(done []Finished) error
	// List returns up to limit items in a state, from the oldest
	// received, after the id after ("" from the start).
	List(state State, after string, limit int) ([]Item, error)
	// Retry makes one item (dead or retained) pending, due now.
	Retry(id string, now time.Time) error
	// Redrive makes every dead item pending, due now, and says how many.
	Redrive(now time.Time) (int, error)
	// Drop removes an item in any state.
	Drop(id string) error
	// Expire drops retained items kept past their time.
	Expire(now time.Time) (int, error)
	// SetPaused records whether delivery is paused.
	SetPaused(bool) error
	// Stats returns the counts.
	Stats() (Stats, error)
	Close() error
}

// Errors a store returns.
var (
	ErrNotFound = errors.New("no such item")
	// ErrWrongState: the item is not in a state the operation applies
	// to (retrying a pending item).
	ErrWrongState = errors.New("the item is not in a state that allows this")
)
