package redistest

import "testing"

// TestTopologiesStart: the helpers bring up a 3+3 Cluster whose masters
// serve every slot and a Sentinel set that reports the master it was
// given.
func TestTopologiesStart(t *testing.T) {
	c := StartCluster(t, 3, 1)
	if n := len(c.Masters()); n != 3 {
		t.Fatalf("%d masters, want 3", n)
	}
	s := StartSentinel(t)
	if got := s.MasterAddr(); got != s.Master.Addr {
		t.Fatalf("the Sentinels report master %q, want %q", got, s.Master.Addr)
	}
}
