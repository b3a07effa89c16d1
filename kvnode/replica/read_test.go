package replica

import (
	"slices"
	"testing"
)

func TestReadRounds(t *testing.T) {
	var q ReadRounds
	if q.Startable() || q.Start(0) != 0 || q.InFlight() != 0 {
		t.Fatal("an empty queue starts a round")
	}
	q.Add(1, 5)
	q.Add(2, 5)
	r1 := q.Start(0)
	if r1 == 0 || q.InFlight() != r1 || q.Startable() {
		t.Fatalf("round %d, in flight %d", r1, q.InFlight())
	}
	q.Add(3, 7) // arrives during round r1: waits for the next
	if q.Start(0) != 0 {
		t.Fatal("a second round started while one is in flight")
	}
	q.Ack(r1+1, 1, 2) // a reply to some other round
	q.Release(100)
	if q.HasOutput() {
		t.Fatalf("confirmed by a reply to another round: %+v", q.Drain())
	}
	q.Ack(r1, 0, 3) // self again: still one of three
	q.Ack(r1, 1, 3)
	if q.InFlight() != r1 {
		t.Fatal("two of three confirmed a round that needs three")
	}
	q.Ack(r1, 2, 3)
	q.Release(4)
	if q.HasOutput() {
		t.Fatalf("released below the reads' index: %+v", q.Drain())
	}
	q.Release(5)
	if got, want := q.Drain(), []ReadState{{ID: 1, Index: 5}, {ID: 2, Index: 5}}; !slices.Equal(got, want) {
		t.Fatalf("released %+v, want %+v", got, want)
	}
	if !q.Startable() {
		t.Fatal("the read that waited has no round")
	}
	r2 := q.Start(1)
	if r2 <= r1 {
		t.Fatalf("round IDs must grow: %d after %d", r2, r1)
	}
	q.Ack(r1, 0, 2) // a late reply to the finished round
	if q.InFlight() != r2 {
		t.Fatal("a reply to an earlier round confirmed the current one")
	}
	q.Ack(r2, 0, 2)
	q.Release(7)
	if got, want := q.Drain(), []ReadState{{ID: 3, Index: 7}}; !slices.Equal(got, want) {
		t.Fatalf("released %+v, want %+v", got, want)
	}

	// Abort loses every read not yet released: held, in a round, waiting.
	q.Add(4, 9)
	r3 := q.Start(0)
	q.Ack(r3, 1, 2)
	q.Add(5, 9)
	r4 := q.Start(0)
	q.Add(6, 9)
	if !q.Pending() {
		t.Fatal("nothing pending")
	}
	q.Abort()
	got := q.Drain()
	slices.SortFunc(got, func(a, b ReadState) int { return int(a.ID) - int(b.ID) })
	if want := []ReadState{{ID: 4, Index: 9, Lost: true}, {ID: 5, Index: 9, Lost: true}, {ID: 6, Index: 9, Lost: true}}; !slices.Equal(got, want) {
		t.Fatalf("aborted %+v, want %+v", got, want)
	}
	if q.Pending() || q.InFlight() != 0 || q.Startable() {
		t.Fatal("reads remain after Abort")
	}
	q.Ack(r4, 1, 2)
	q.Release(100)
	if q.HasOutput() {
		t.Fatal("an aborted round confirmed reads")
	}
}
