package kvnodedb

import (
	"encoding/json"
	"testing"
	"time"
)

// TestClockOffsetAppliedAndReset shifts a node's clock through its admin
// endpoint, checks that /status shows it (and another node's does not),
// that a restart keeps it, and that setting 0 resets it.
func TestClockOffsetAppliedAndReset(t *testing.T) {
	lc := launch(t, dockerOrSkip(t), Options{Binary: buildKvnode(t), Nodes: 3, Replicas: 3, Protocol: "paxos"})
	ctx, b, tg := lc.ctx, lc.b, lc.target
	c := &conn{http: lc.db.http}
	status := func(node string) (offset, skew time.Duration) {
		t.Helper()
		var st struct {
			Time        time.Time     `json:"time"`
			ClockOffset time.Duration `json:"clock_offset"`
		}
		for _, n := range lc.file.Nodes {
			if n.Name == node {
				body, err := c.adminAPI().Status(ctx, n.AdminAddr)
				if err == nil {
					err = json.Unmarshal(body, &st)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		return st.ClockOffset, time.Until(st.Time)
	}
	near := func(got, want time.Duration) bool { return got > want-5*time.Second && got < want+5*time.Second }

	const shift = -90 * time.Second
	if err := tg.SetClockOffset(ctx, "n2", shift); err != nil {
		t.Fatal(err)
	}
	if off, skew := status("n2"); off != shift || !near(skew, shift) {
		t.Fatalf("n2 after a %v shift: offset %v, clock %v off", shift, off, skew)
	}
	if off, skew := status("n1"); off != 0 || !near(skew, 0) {
		t.Fatalf("n1 was not shifted, yet: offset %v, clock %v off", off, skew)
	}
	if err := tg.Kill(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if err := tg.Start(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if off, _ := status("n2"); off != shift {
		t.Fatalf("n2 after a restart: offset %v, want %v again", off, shift)
	}
	if err := tg.SetClockOffset(ctx, "n2", 0); err != nil {
		t.Fatal(err)
	}
	if off, skew := status("n2"); off != 0 || !near(skew, 0) {
		t.Fatalf("n2 after the reset: offset %v, clock %v off", off, skew)
	}
	// A node frozen or down when its clock changes gets the change when
	// it comes back, and the change itself does not fail.
	if err := tg.Pause(ctx, "n3"); err != nil {
		t.Fatal(err)
	}
	if err := tg.SetClockOffset(ctx, "n3", shift); err != nil {
		t.Fatalf("shift of a paused node: %v", err)
	}
	if err := tg.Resume(ctx, "n3"); err != nil {
		t.Fatal(err)
	}
	if off, _ := status("n3"); off != shift {
		t.Fatalf("n3 after the resume: offset %v, want %v", off, shift)
	}
	if err := tg.Kill(ctx, "n3"); err != nil {
		t.Fatal(err)
	}
	if err := tg.SetClockOffset(ctx, "n3", 0); err != nil {
		t.Fatalf("reset of a killed node: %v", err)
	}
	if err := tg.Start(ctx, "n3"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	if off, _ := status("n3"); off != 0 {
		t.Fatalf("n3 restarted after its reset: offset %v, want 0", off)
	}
}
