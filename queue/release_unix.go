//go:build unix

package queue

import (
	"os"
	"unsafe"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// releasePages drops the store file's pages from this process's resident
// memory once the file is open. Opening reads every page (bbolt rebuilds
// its list of free pages by walking the tree, see NoFreelistSync), which
// would leave a large backlog's whole file counted in the process's RSS;
// the pages stay in the kernel's page cache, and the few that later
// reads need are mapped again on demand. The mapping is read-only and
// shared, so nothing is lost.
func releasePages(db *bolt.DB, path string) {
	fi, err := os.Stat(path)
	if err != nil || fi.Size() == 0 {
		return
	}
	info := db.Info()
	base := *(*unsafe.Pointer)(unsafe.Pointer(&info.Data))
	unix.Madvise(unsafe.Slice((*byte)(base), fi.Size()), unix.MADV_DONTNEED)
}
