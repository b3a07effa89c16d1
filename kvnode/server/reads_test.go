package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/chaoskv/chaos/kvnode/server/protocols"
)

// TestReadsTakeNoLogEntry: with a core that serves reads by read index, a
// get is answered with the latest write and the group's log does not grow.
func TestReadsTakeNoLogEntry(t *testing.T) {
	for _, name := range protocols.Names() {
		t.Run(name, func(t *testing.T) {
			c := testCluster(t, 3, false)
			rs := startCluster(t, c, dataDirs(t, 3), protocol(t, name))
			l := waitLeader(t, rs, 5*time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cl := newClient(t, c)
			if err := cl.Put(ctx, "k", "v"); err != nil {
				t.Fatal(err)
			}
			before := rs[l].node.Status()[1]
			for i := 0; i < 50; i++ {
				if r, err := cl.Get(ctx, "k"); err != nil || r.Value != "v" {
					t.Fatalf("get %d: %+v, %v", i, r, err)
				}
			}
			after := rs[l].node.Status()[1]
			if after.Leader != before.Leader || after.Commit != before.Commit {
				t.Fatalf("50 gets moved the leader's log from %+v to %+v", before, after)
			}
		})
	}
}
