//go:build !unix

package queue

import bolt "go.etcd.io/bbolt"

// releasePages is a no-op where madvise is not available.
func releasePages(*bolt.DB, string) {}
