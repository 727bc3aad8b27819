package queue

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// LocalStore is the embedded store: one bbolt file per queue, on local
// disk. bbolt is a copy-on-write B+tree with one writer at a time; a
// transaction that returns nil has been written and fsynced (the file,
// then its meta page), so a crash leaves the last committed state and
// nothing torn. Concurrent accepts are coalesced into one transaction
// and one fsync (group commit, see committer): durable and fast at once.
//
// Buckets, keys sorted so that "what is next" is a cursor seek, never a
// scan:
//
//	items    id -> item metadata (JSON)
//	requests id -> stored request (JSON)
//	bodies   id -> body bytes
//	due      due (8 bytes, big-endian ns) + id -> nothing   (pending, by due time)
//	pending  id -> nothing                                  (pending, oldest first)
//	dead     id -> nothing
//	retained until (8 bytes) + id -> nothing
//	meta     "stats" -> Stats (JSON)
//
// Ids sort by receive time (see NewID), so listings are oldest first.
type LocalStore struct {
	db *bolt.DB
	// mem is the counts as of the last commit, published by each write
	// transaction once it has committed: Stats, asked on every accept,
	// reads memory, not the file.
	mu  sync.Mutex
	mem Stats

	// adds feeds the committer; quit stops it (Close).
	adds      chan addReq
	quit      chan struct{}
	committed chan struct{}
}

// addReq is one accept waiting for the committer.
type addReq struct {
	fn   func(tx *bolt.Tx, st *Stats) error
	done chan error
}

// maxGroup bounds one group commit, so a flood of accepts still gets
// answers as each group lands rather than all at once.
const maxGroup = 512

var (
	bItems    = []byte("items")
	bRequests = []byte("requests")
	bBodies   = []byte("bodies")
	bDue      = []byte("due")
	bPending  = []byte("pending")
	bDead     = []byte("dead")
	bRetained = []byte("retained")
	bMeta     = []byte("meta")
	kStats    = []byte("stats")
)

// OpenLocal opens (or creates) the store file at path, its directory
// made 0700 and the file 0600: bodies rest there as they arrived.
func OpenLocal(path string) (*LocalStore, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	// The freelist is not written with each commit (NoFreelistSync): a
	// queue frees as many pages as it fills, and after a large backlog
	// drains, writing its list of free pages into every transaction
	// costs more than the transaction (4,000 accepts a second fell to a
	// few hundred). bbolt rebuilds the list when the file is opened, by
	// a scan of the pages.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, FreelistType: bolt.FreelistMapType, NoFreelistSync: true})
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bItems, bRequests, bBodies, bDue, bPending, bDead, bRetained, bMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &LocalStore{db: db, adds: make(chan addReq, maxGroup), quit: make(chan struct{}), committed: make(chan struct{})}
	db.View(func(tx *bolt.Tx) error {
		s.mem = getStats(tx)
		return nil
	})
	releasePages(db, path)
	go s.committer()
	return s, nil
}

// committer is the group commit of accepts: it takes every accept that
// arrived while the previous transaction was committing, writes them in
// one transaction and one fsync, and answers each. Nobody waits for a
// timer: an accept alone is committed at once, and under load a group
// grows to what arrived during one fsync. (bbolt's own DB.Batch waits
// MaxBatchDelay after the first writer and then splits writers that
// arrive in a trickle, as bodies read from the network do, into groups
// of their own, each paying a whole fsync.) If a group fails, each of
// its accepts is tried alone, so one that cannot be stored does not
// take the others with it.
func (s *LocalStore) committer() {
	defer close(s.committed)
	group := make([]addReq, 0, maxGroup)
	for {
		select {
		case r := <-s.adds:
			group = append(group[:0], r)
		case <-s.quit:
			return
		}
	more:
		for len(group) < maxGroup {
			select {
			case r := <-s.adds:
				group = append(group, r)
			default:
				break more
			}
		}
		err := s.write(func(tx *bolt.Tx, st *Stats) error {
			for _, r := range group {
				if err := r.fn(tx, st); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil || len(group) == 1 {
			for _, r := range group {
				r.done <- err
			}
			continue
		}
		for _, r := range group {
			r.done <- s.write(r.fn)
		}
	}
}

// batch runs fn in a group commit (see committer).
func (s *LocalStore) batch(fn func(tx *bolt.Tx, st *Stats) error) error {
	r := addReq{fn: fn, done: make(chan error, 1)}
	select {
	case s.adds <- r:
	case <-s.quit:
		return bolt.ErrDatabaseNotOpen
	}
	select {
	case err := <-r.done:
		return err
	case <-s.committed:
		// The committer answers before it stops: an answer waiting
		// means the accept was committed (or refused) after all.
		select {
		case err := <-r.done:
			return err
		default:
			return bolt.ErrDatabaseNotOpen
		}
	}
}

func timeKey(t time.Time, id string) []byte {
	k := make([]byte, 8+len(id))
	binary.BigEndian.PutUint64(k, uint64(t.UnixNano()))
	copy(k[8:], id)
	return k
}

func keyTime(k []byte) time.Time { return time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))) }

func getStats(tx *bolt.Tx) Stats {
	var s Stats
	if raw := tx.Bucket(bMeta).Get(kStats); raw != nil {
		json.Unmarshal(raw, &s)
	}
	return s
}

func putStats(tx *bolt.Tx, s Stats) error {
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return tx.Bucket(bMeta).Put(kStats, raw)
}

// write runs fn in a write transaction with the counts, saves them, and
// publishes them once the transaction has committed.
func (s *LocalStore) write(fn func(tx *bolt.Tx, st *Stats) error) error {
	run := func(tx *bolt.Tx) error {
		st := getStats(tx)
		if err := fn(tx, &st); err != nil {
			return err
		}
		if err := putStats(tx, st); err != nil {
			return err
		}
		tx.OnCommit(func() {
			s.mu.Lock()
			s.mem = st
			s.mu.Unlock()
		})
		return nil
	}
	return s.db.Update(run)
}

// update is write without batching (operators' changes).
func (s *LocalStore) update(fn func(tx *bolt.Tx, st *Stats) error) error { return s.write(fn) }

func getItem(tx *bolt.Tx, id string) (*Item, error) {
	raw := tx.Bucket(bItems).Get([]byte(id))
	if raw == nil {
		return nil, ErrNotFound
	}
	it := new(Item)
	if err := json.Unmarshal(raw, it); err != nil {
		return nil, fmt.Errorf("item %s: %w", id, err)
	}
	return it, nil
}

func putItem(tx *bolt.Tx, it *Item) error {
	raw, err := json.Marshal(it)
	if err != nil {
		return err
	}
	return tx.Bucket(bItems).Put([]byte(it.ID), raw)
}

// Add implements Store: one batched, fsynced transaction.
func (s *LocalStore) Add(it *Item, req *Request, body []byte) error {
	rawReq, err := json.Marshal(req)
	if err != nil {
		return err
	}
	it.State = StatePending
	it.Size = len(body)
	// Encoded here, not in the transaction: the group commit runs one
	// transaction at a time, and whatever it does is on every accept's
	// path.
	rawItem, err := json.Marshal(it)
	if err != nil {
		return err
	}
	id, dueKey := []byte(it.ID), timeKey(it.Due, it.ID)
	return s.batch(func(tx *bolt.Tx, st *Stats) error {
		// Ids (and due times of new items) only grow: pages filled to
		// 90% instead of bbolt's half, as for appends.
		for _, name := range [][]byte{bItems, bRequests, bBodies, bDue, bPending} {
			tx.Bucket(name).FillPercent = 0.9
		}
		if err := tx.Bucket(bItems).Put(id, rawItem); err != nil {
			return err
		}
		if err := tx.Bucket(bRequests).Put(id, rawReq); err != nil {
			return err
		}
		if err := tx.Bucket(bBodies).Put(id, body); err != nil {
			return err
		}
		if err := tx.Bucket(bDue).Put(dueKey, nil); err != nil {
			return err
		}
		if err := tx.Bucket(bPending).Put(id, nil); err != nil {
			return err
		}
		st.Pending++
		st.Bytes += int64(len(body))
		if st.Oldest.IsZero() || it.Received.Before(st.Oldest) {
			st.Oldest = it.Received
		}
		return nil
	})
}

// Due implements Store.
func (s *LocalStore) Due(now time.Time, n int, skip func(string) bool) ([]Item, error) {
	var out []Item
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bDue).Cursor()
		limit := uint64(now.UnixNano())
		for k, _ := c.First(); k != nil && len(out) < n; k, _ = c.Next() {
			if binary.BigEndian.Uint64(k[:8]) > limit {
				break
			}
			id := string(k[8:])
			if skip != nil && skip(id) {
				continue
			}
			it, err := getItem(tx, id)
			if err != nil {
				return err
			}
			out = append(out, *it)
		}
		return nil
	})
	return out, err
}

// NextDue implements Store.
func (s *LocalStore) NextDue() (time.Time, bool, error) {
	var t time.Time
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bDue).Cursor().First(); k != nil {
			t, ok = keyTime(k), true
		}
		return nil
	})
	return t, ok, err
}

// Load implements Store.
func (s *LocalStore) Load(id string) (*Item, *Request, []byte, error) {
	var it *Item
	req := new(Request)
	var body []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		if it, err = getItem(tx, id); err != nil {
			return err
		}
		raw := tx.Bucket(bRequests).Get([]byte(id))
		if raw == nil {
			return fmt.Errorf("item %s has no stored request", id)
		}
		if err := json.Unmarshal(raw, req); err != nil {
			return err
		}
		body = bytes.Clone(tx.Bucket(bBodies).Get([]byte(id)))
		return nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return it, req, body, nil
}

// unlink removes an item from the index of its state and the counts.
func unlink(tx *bolt.Tx, it *Item, st *Stats) error {
	switch it.State {
	case StatePending:
		st.Pending--
		st.Bytes -= int64(it.Size)
		if err := tx.Bucket(bPending).Delete([]byte(it.ID)); err != nil {
			return err
		}
		return tx.Bucket(bDue).Delete(timeKey(it.Due, it.ID))
	case StateDead:
		st.Dead--
		st.Bytes -= int64(it.Size)
		return tx.Bucket(bDead).Delete([]byte(it.ID))
	case StateRetained:
		st.Retained--
		return tx.Bucket(bRetained).Delete(timeKey(it.Due, it.ID))
	}
	return nil
}

// link puts an item in the index of its state and the counts.
func link(tx *bolt.Tx, it *Item, st *Stats) error {
	switch it.State {
	case StatePending:
		st.Pending++
		st.Bytes += int64(it.Size)
		if err := tx.Bucket(bPending).Put([]byte(it.ID), nil); err != nil {
			return err
		}
		return tx.Bucket(bDue).Put(timeKey(it.Due, it.ID), nil)
	case StateDead:
		st.Dead++
		st.Bytes += int64(it.Size)
		return tx.Bucket(bDead).Put([]byte(it.ID), nil)
	case StateRetained:
		st.Retained++
		return tx.Bucket(bRetained).Put(timeKey(it.Due, it.ID), nil)
	}
	return nil
}

// remove deletes an item and its request and body.
func remove(tx *bolt.Tx, id string) error {
	for _, b := range [][]byte{bItems, bRequests, bBodies} {
		if err := tx.Bucket(b).Delete([]byte(id)); err != nil {
			return err
		}
	}
	return nil
}

// refreshOldest sets the oldest pending receive time after the oldest
// may have left: the first id of the pending index (ids sort by receive
// time), a cursor seek.
func refreshOldest(tx *bolt.Tx, st *Stats, left *Item) {
	if left != nil && left.Received.After(st.Oldest) && st.Pending > 0 {
		return
	}
	st.Oldest = time.Time{}
	if k, _ := tx.Bucket(bPending).Cursor().First(); k != nil {
		st.Oldest, _ = idTime(string(k))
	}
}

// Finish implements Store: one transaction for all the outcomes.
func (s *LocalStore) Finish(done []Finished) error {
	if len(done) == 0 {
		return nil
	}
	return s.update(func(tx *bolt.Tx, st *Stats) error {
		for _, f := range done {
			if err := finishOne(tx, st, f.ID, f.Outcome); err != nil {
				return err
			}
		}
		return nil
	})
}

func finishOne(tx *bolt.Tx, st *Stats, id string, o Outcome) error {
	it, err := getItem(tx, id)
	if errors.Is(err, ErrNotFound) {
		return nil // dropped by an operator meanwhile
	}
	if err != nil {
		return err
	}
	if it.State != StatePending {
		return nil // moved by an operator meanwhile
	}
	if err := unlink(tx, it, st); err != nil {
		return err
	}
	it.Attempts++
	it.LastStatus, it.LastError = o.Status, o.Error
	switch {
	case o.Delivered && o.RetainUntil.IsZero():
		if err := remove(tx, id); err != nil {
			return err
		}
		refreshOldest(tx, st, it)
		return nil
	case o.Delivered:
		it.State, it.Due = StateRetained, o.RetainUntil
	case o.Dead:
		it.State = StateDead
	default:
		it.Due = o.Next
	}
	if err := link(tx, it, st); err != nil {
		return err
	}
	if err := putItem(tx, it); err != nil {
		return err
	}
	refreshOldest(tx, st, it)
	return nil
}

// List implements Store.
func (s *LocalStore) List(state State, after string, limit int) ([]Item, error) {
	var out []Item
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bItems).Cursor()
		var k, v []byte
		if after == "" {
			k, v = c.First()
		} else {
			k, v = c.Seek([]byte(after))
			if k != nil && string(k) == after {
				k, v = c.Next()
			}
		}
		for ; k != nil && len(out) < limit; k, v = c.Next() {
			var it Item
			if err := json.Unmarshal(v, &it); err != nil {
				return err
			}
			if state == "" || it.State == state {
				out = append(out, it)
			}
		}
		return nil
	})
	return out, err
}

// Retry implements Store.
func (s *LocalStore) Retry(id string, now time.Time) error {
	return s.update(func(tx *bolt.Tx, st *Stats) error {
		it, err := getItem(tx, id)
		if err != nil {
			return err
		}
		if it.State == StatePending {
			return ErrWrongState
		}
		return requeue(tx, st, it, now)
	})
}

func requeue(tx *bolt.Tx, st *Stats, it *Item, now time.Time) error {
	if err := unlink(tx, it, st); err != nil {
		return err
	}
	it.State, it.Due, it.Attempts = StatePending, now, 0
	if err := link(tx, it, st); err != nil {
		return err
	}
	if st.Oldest.IsZero() || it.Received.Before(st.Oldest) {
		st.Oldest = it.Received
	}
	return putItem(tx, it)
}

// Redrive implements Store.
func (s *LocalStore) Redrive(now time.Time) (int, error) {
	n := 0
	err := s.update(func(tx *bolt.Tx, st *Stats) error {
		n = 0
		var ids []string
		tx.Bucket(bDead).ForEach(func(k, _ []byte) error {
			ids = append(ids, string(k))
			return nil
		})
		for _, id := range ids {
			it, err := getItem(tx, id)
			if err != nil {
				return err
			}
			if err := requeue(tx, st, it, now); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// Drop implements Store.
func (s *LocalStore) Drop(id string) error {
	return s.update(func(tx *bolt.Tx, st *Stats) error {
		it, err := getItem(tx, id)
		if err != nil {
			return err
		}
		if err := unlink(tx, it, st); err != nil {
			return err
		}
		if err := remove(tx, id); err != nil {
			return err
		}
		refreshOldest(tx, st, it)
		return nil
	})
}

// Expire implements Store.
func (s *LocalStore) Expire(now time.Time) (int, error) {
	n := 0
	err := s.update(func(tx *bolt.Tx, st *Stats) error {
		n = 0
		c := tx.Bucket(bRetained).Cursor()
		var keys [][]byte
		for k, _ := c.First(); k != nil && !keyTime(k).After(now) && len(keys) < 10000; k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			if err := tx.Bucket(bRetained).Delete(k); err != nil {
				return err
			}
			if err := remove(tx, string(k[8:])); err != nil {
				return err
			}
			st.Retained--
			n++
		}
		return nil
	})
	return n, err
}

// SetPaused implements Store.
func (s *LocalStore) SetPaused(p bool) error {
	return s.update(func(tx *bolt.Tx, st *Stats) error {
		st.Paused = p
		return nil
	})
}

// Stats implements Store.
func (s *LocalStore) Stats() (Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mem, nil
}

// Close implements Store.
func (s *LocalStore) Close() error {
	select {
	case <-s.quit:
	default:
		close(s.quit)
	}
	<-s.committed
	return s.db.Close()
}
