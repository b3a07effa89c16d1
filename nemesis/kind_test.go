package nemesis

import (
	"slices"
	"strings"
	"testing"
)

func TestParseKinds(t *testing.T) {
	tests := []struct {
		in      string
		want    []Kind
		wantErr string
	}{
		{"partition", []Kind{Partition}, ""},
		{"partition,kill", []Kind{Partition, Kill}, ""},
		{" pause , loss ,latency", []Kind{Pause, Loss, Latency}, ""},
		{"partition-one,partition-majorities-ring,partition-bridge,partition-leader", []Kind{PartitionOne, PartitionMajoritiesRing, PartitionBridge, PartitionLeader}, ""},
		{"none", []Kind{}, ""},
		{"", nil, "empty list"},
		{"partition,", nil, "empty entry"},
		{"partition,bogus", nil, `unknown fault kind "bogus"`},
		{"kill,kill", nil, "listed twice"},
		{"none,kill", nil, "cannot be combined"},
		{"Partition", nil, "unknown fault kind"},
	}
	for _, tt := range tests {
		got, err := ParseKinds(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseKinds(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseKinds(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestUnknownKindErrorListsValidKinds(t *testing.T) {
	_, err := ParseKinds("chaos-monkey")
	if err == nil {
		t.Fatal("want an error")
	}
	for _, k := range Kinds() {
		if !strings.Contains(err.Error(), string(k)) {
			t.Errorf("error %q does not list valid kind %q", err, k)
		}
	}
}

func FuzzParseKinds(f *testing.F) {
	for _, s := range []string{"partition", "partition,kill", "none", "", ",", "loss, latency", "kill,kill", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kinds, err := ParseKinds(s)
		if err != nil {
			if kinds != nil {
				t.Fatalf("ParseKinds(%q) returned kinds %v with error %v", s, kinds, err)
			}
			return
		}
		seen := make(map[Kind]bool)
		for _, k := range kinds {
			if !k.Valid() || seen[k] {
				t.Fatalf("ParseKinds(%q) = %v: invalid or repeated %q", s, kinds, k)
			}
			seen[k] = true
		}
		// The canonical rendering parses back to the same list.
		parts := make([]string, len(kinds))
		for i, k := range kinds {
			parts[i] = string(k)
		}
		canon := strings.Join(parts, ",")
		if len(kinds) == 0 {
			canon = "none"
		}
		again, err := ParseKinds(canon)
		if err != nil || !slices.Equal(again, kinds) {
			t.Fatalf("round trip of %q via %q = %v, %v", s, canon, again, err)
		}
	})
}
