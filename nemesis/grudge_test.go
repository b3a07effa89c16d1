package nemesis

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

func nodeNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("n%d", i+1)
	}
	return out
}

// symmetric reports whether a drops b exactly when b drops a.
func symmetric(g Grudge, nodes []string) bool {
	for _, a := range nodes {
		for _, b := range nodes {
			if g.Drops(a, b) != g.Drops(b, a) {
				return false
			}
		}
	}
	return true
}

func TestHalves(t *testing.T) {
	for n := 2; n <= 9; n++ {
		for seed := range uint64(20) {
			nodes := nodeNames(n)
			comps, err := Halves(nodes, rand.New(rand.NewPCG(seed, 1)))
			if err != nil {
				t.Fatalf("n=%d seed=%d: %v", n, seed, err)
			}
			if len(comps) != 2 || len(comps[0]) != n/2 || len(comps[1]) != n-n/2 {
				t.Fatalf("n=%d seed=%d: halves %v are not halves", n, seed, comps)
			}
			all := append(slices.Clone(comps[0]), comps[1]...)
			sort.Strings(all)
			want := slices.Clone(nodes)
			sort.Strings(want)
			if !slices.Equal(all, want) {
				t.Fatalf("n=%d seed=%d: halves %v do not cover %v exactly", n, seed, comps, nodes)
			}
			g := Complete(comps...)
			if err := g.Validate(nodes); err != nil {
				t.Fatal(err)
			}
			if !symmetric(g, nodes) {
				t.Fatalf("halves grudge not symmetric: %v", g)
			}
			for _, a := range comps[0] {
				for _, b := range comps[1] {
					if !g.Drops(a, b) || !g.Drops(b, a) {
						t.Fatalf("%s and %s on different sides still hear each other: %v", a, b, g)
					}
				}
				for _, b := range comps[0] {
					if g.Drops(a, b) {
						t.Fatalf("%s drops %s on its own side: %v", a, b, g)
					}
				}
			}
		}
	}
}

func TestOneIsolatesExactlyOne(t *testing.T) {
	nodes := nodeNames(5)
	for seed := range uint64(30) {
		comps, err := One(nodes, rand.New(rand.NewPCG(seed, 2)))
		if err != nil {
			t.Fatal(err)
		}
		if len(comps) != 2 || len(comps[0]) != 1 || len(comps[1]) != 4 {
			t.Fatalf("seed %d: %v is not one node against four", seed, comps)
		}
		g := Complete(comps...)
		lone := comps[0][0]
		if len(g[lone]) != 4 {
			t.Fatalf("isolated %s hears someone: %v", lone, g)
		}
		for _, n := range comps[1] {
			if !slices.Equal(g[n], []string{lone}) {
				t.Fatalf("%s should drop only %s: %v", n, lone, g[n])
			}
		}
	}
}

func TestIsolate(t *testing.T) {
	nodes := nodeNames(6)
	tests := []struct {
		isolated []string
		want     [][]string
		wantErr  bool
	}{
		{[]string{"n2"}, [][]string{{"n2"}, {"n1", "n3", "n4", "n5", "n6"}}, false},
		{[]string{"n1", "n4"}, [][]string{{"n1"}, {"n4"}, {"n2", "n3", "n5", "n6"}}, false},
		{[]string{"n1", "n1"}, [][]string{{"n1"}, {"n2", "n3", "n4", "n5", "n6"}}, false},
		{[]string{"n9"}, nil, true},
		{nil, nil, true},
	}
	for _, tt := range tests {
		got, err := Isolate(nodes, tt.isolated)
		if (err != nil) != tt.wantErr {
			t.Fatalf("Isolate(%v): err %v, want error %v", tt.isolated, err, tt.wantErr)
		}
		if !tt.wantErr && fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Fatalf("Isolate(%v) = %v, want %v", tt.isolated, got, tt.want)
		}
	}
	if _, err := Isolate([]string{"n1"}, []string{"n1"}); err == nil {
		t.Fatal("isolating the only node should be an error: it cuts nothing")
	}
}

func TestMajoritiesRing(t *testing.T) {
	for n := 3; n <= 9; n++ {
		nodes := nodeNames(n)
		for seed := range uint64(20) {
			g, err := MajoritiesRing(nodes, rand.New(rand.NewPCG(seed, 3)))
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Validate(nodes); err != nil {
				t.Fatal(err)
			}
			seen := make(map[string]string)
			for _, node := range nodes {
				hears := g.Hears(node, nodes)
				if len(hears) != majority(n) {
					t.Fatalf("n=%d seed=%d: %s hears %v, not exactly a majority", n, seed, node, hears)
				}
				if !slices.Contains(hears, node) {
					t.Fatalf("%s does not hear itself", node)
				}
				key := fmt.Sprint(hears)
				if other, dup := seen[key]; dup {
					t.Fatalf("n=%d seed=%d: %s and %s hear the same majority %v", n, seed, node, other, hears)
				}
				seen[key] = node
			}
			if majority(n)%2 == 1 && !symmetric(g, nodes) {
				t.Fatalf("n=%d: ring grudge with an odd majority should be symmetric: %v", n, g)
			}
		}
	}
	if _, err := MajoritiesRing(nodeNames(2), rand.New(rand.NewPCG(1, 1))); err == nil {
		t.Fatal("2 nodes cannot form distinct majorities; want an error")
	}
}

func TestBridge(t *testing.T) {
	for n := 3; n <= 9; n++ {
		nodes := nodeNames(n)
		for seed := range uint64(20) {
			g, bridge, err := Bridge(nodes, rand.New(rand.NewPCG(seed, 4)))
			if err != nil {
				t.Fatal(err)
			}
			if len(g[bridge]) != 0 {
				t.Fatalf("bridge %s drops %v", bridge, g[bridge])
			}
			var sides [2][]string
			for _, node := range nodes {
				if node == bridge {
					continue
				}
				if g.Drops(node, bridge) {
					t.Fatalf("%s drops the bridge %s", node, bridge)
				}
				// Each non-bridge node hears its side plus the bridge.
				hears := g.Hears(node, nodes)
				if len(sides[0]) == 0 || slices.Contains(g.Hears(sides[0][0], nodes), node) {
					sides[0] = append(sides[0], node)
				} else {
					sides[1] = append(sides[1], node)
				}
				if len(hears) == n {
					t.Fatalf("n=%d: %s hears everyone; no cut", n, node)
				}
			}
			if len(sides[1]) == 0 || len(sides[0])+len(sides[1]) != n-1 || max(len(sides[0]), len(sides[1]))-min(len(sides[0]), len(sides[1])) > 1 {
				t.Fatalf("n=%d: sides %v are not halves around bridge %s", n, sides, bridge)
			}
			for _, a := range sides[0] {
				for _, b := range sides[1] {
					if !g.Drops(a, b) || !g.Drops(b, a) {
						t.Fatalf("%s and %s on opposite sides hear each other", a, b)
					}
				}
			}
			if !symmetric(g, nodes) {
				t.Fatalf("bridge grudge not symmetric: %v", g)
			}
		}
	}
	if _, _, err := Bridge(nodeNames(2), rand.New(rand.NewPCG(1, 1))); err == nil {
		t.Fatal("bridge of 2 nodes should be an error")
	}
}

func TestGrudgeValidate(t *testing.T) {
	nodes := nodeNames(3)
	tests := []struct {
		g  Grudge
		ok bool
	}{
		{Grudge{"n1": {"n2"}}, true},
		{Grudge{}, true},
		{nil, true},
		{Grudge{"n4": {"n1"}}, false},
		{Grudge{"n1": {"n7"}}, false},
		{Grudge{"n1": {"n1"}}, false},
	}
	for _, tt := range tests {
		if err := tt.g.Validate(nodes); (err == nil) != tt.ok {
			t.Errorf("Validate(%v) = %v, want ok=%v", tt.g, err, tt.ok)
		}
	}
}

func TestGrudgeValueSortedAndSkipsEmpty(t *testing.T) {
	v := Grudge{"n1": {"n3", "n2"}, "n2": nil}.Value()
	if len(v) != 1 || fmt.Sprint(v["n1"]) != "[n2 n3]" {
		t.Fatalf("Value() = %v", v)
	}
}
