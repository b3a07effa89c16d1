package session

import (
	"bytes"
	"errors"
	"testing"
)

func TestCheckRecord(t *testing.T) {
	tab := NewTable()
	tab.Record(1, 5, []byte("five"))
	tab.Record(2, 1, nil)
	cases := []struct {
		name   string
		client uint64
		seq    uint64
		want   Status
		cached string
	}{
		{"unknown client", 9, 1, New, ""},
		{"unknown client seq 0", 9, 0, New, ""},
		{"next seq", 1, 6, New, ""},
		{"far ahead", 1, 100, New, ""},
		{"retry of last", 1, 5, Duplicate, "five"},
		{"older", 1, 4, Stale, ""},
		{"nil result duplicate", 2, 1, Duplicate, ""},
		{"zero below one", 2, 0, Stale, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, st := tab.Check(c.client, c.seq)
			if st != c.want || string(got) != c.cached {
				t.Fatalf("Check(%d,%d) = %q,%v; want %q,%v", c.client, c.seq, got, st, c.cached, c.want)
			}
		})
	}
}

func TestRecordNeverMovesBack(t *testing.T) {
	tab := NewTable()
	tab.Record(1, 5, []byte("a"))
	tab.Record(1, 3, []byte("b"))
	if seq, _ := tab.Last(1); seq != 5 {
		t.Fatalf("last = %d, want 5", seq)
	}
	tab.Record(1, 7, []byte("c"))
	if got, st := tab.Check(1, 7); st != Duplicate || string(got) != "c" {
		t.Fatalf("Check = %q %v", got, st)
	}
	if tab.Len() != 1 {
		t.Fatalf("len = %d, want one entry per client", tab.Len())
	}
}

func TestEncodeDeterministicRoundTrip(t *testing.T) {
	a, b := NewTable(), NewTable()
	for i := uint64(1); i <= 50; i++ {
		a.Record(i*7919%101, i, []byte{byte(i)})
	}
	for i := uint64(50); i >= 1; i-- {
		b.Record(i*7919%101, i, []byte{byte(i)})
	}
	ea, _ := a.MarshalBinary()
	eb, _ := b.MarshalBinary()
	if !bytes.Equal(ea, eb) {
		t.Fatal("same contents, different encodings")
	}
	var c Table
	if err := c.UnmarshalBinary(ea); err != nil {
		t.Fatal(err)
	}
	ec, _ := c.MarshalBinary()
	if !bytes.Equal(ea, ec) {
		t.Fatal("round trip changed the encoding")
	}
	if got, st := c.Check(7919%101, 1); st != Duplicate || !bytes.Equal(got, []byte{1}) {
		t.Fatalf("decoded Check = %v %v", got, st)
	}
	// Decode reports how much it consumed, so tables can be embedded.
	withTail := append(append([]byte{}, ea...), 0xAA)
	if _, n, err := Decode(withTail); err != nil || n != len(ea) {
		t.Fatalf("Decode embedded: n=%d err=%v", n, err)
	}
	if err := c.UnmarshalBinary(withTail); err == nil {
		t.Fatal("UnmarshalBinary accepted trailing bytes")
	}
}

func TestDecodeRejects(t *testing.T) {
	good, _ := func() *Table { x := NewTable(); x.Record(1, 2, []byte("r")); x.Record(3, 4, nil); return x }().MarshalBinary()
	cases := map[string][]byte{
		"empty":          {},
		"bad version":    {9, 0},
		"no count":       {1},
		"huge count":     {1, 0xff, 0xff, 0xff, 0x0f},
		"truncated":      good[:len(good)-2],
		"result too big": {1, 1, 1, 1, 50, 'x'},
		"unsorted":       {1, 2, 5, 1, 0, 3, 1, 0},
		"duplicate":      {1, 2, 5, 1, 0, 5, 1, 0},
	}
	for name, in := range cases {
		if _, _, err := Decode(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestMergeAndSubset(t *testing.T) {
	a, b := NewTable(), NewTable()
	a.Record(1, 5, []byte("a5"))
	a.Record(2, 1, []byte("a1"))
	b.Record(1, 3, []byte("b3"))
	b.Record(2, 4, []byte("b4"))
	b.Record(3, 1, []byte("b1"))
	a.Merge(b)
	want := map[uint64]string{1: "a5", 2: "b4", 3: "b1"}
	for c, w := range want {
		seq, _ := a.Last(c)
		if got, st := a.Check(c, seq); st != Duplicate || string(got) != w {
			t.Errorf("client %d: %q %v, want %q", c, got, st, w)
		}
	}
	odd := a.Subset(func(c uint64) bool { return c%2 == 1 })
	if odd.Len() != 2 {
		t.Fatalf("subset len %d", odd.Len())
	}
	if _, ok := odd.Last(2); ok {
		t.Fatal("subset kept client 2")
	}
}

func FuzzDecode(f *testing.F) {
	x := NewTable()
	x.Record(1, 2, []byte("r"))
	x.Record(300, 1<<40, bytes.Repeat([]byte("z"), 200))
	enc, _ := x.MarshalBinary()
	f.Add(enc)
	f.Add([]byte{1, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		tab, n, err := Decode(b)
		if err != nil {
			return
		}
		again, _ := tab.MarshalBinary()
		if !bytes.Equal(again, b[:n]) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, b[:n])
		}
	})
}

func TestApplyRunsEachRequestOnce(t *testing.T) {
	tb := NewTable()
	runs := 0
	apply := func(result string) func() []byte {
		return func() []byte { runs++; return []byte(result) }
	}
	steps := []struct {
		seq      uint64
		result   string
		want     string
		wantRuns int
	}{
		{seq: 1, result: "a", want: "a", wantRuns: 1}, // new: runs
		{seq: 1, result: "b", want: "a", wantRuns: 1}, // retry: stored result
		{seq: 2, result: "c", want: "c", wantRuns: 2}, // next: runs
		{seq: 1, result: "d", want: "", wantRuns: 2},  // stale: nothing
		{seq: 5, result: "e", want: "e", wantRuns: 3}, // gaps are fine
	}
	for i, s := range steps {
		got := tb.Apply(7, s.seq, apply(s.result))
		if string(got) != s.want || runs != s.wantRuns {
			t.Fatalf("step %d (seq %d): got %q after %d runs, want %q after %d", i, s.seq, got, runs, s.want, s.wantRuns)
		}
	}
	if seq, _ := tb.Last(7); seq != 5 {
		t.Fatalf("last seq %d, want 5", seq)
	}
}
