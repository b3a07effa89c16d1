package nemesis

import (
	"slices"
	"strings"
	"testing"

	"github.com/chaoskv/chaos/history"
)

func TestParseFor(t *testing.T) {
	tests := []struct {
		in      string
		b       Backend
		want    []Kind
		wantErr string
	}{
		{"partition,kill", Docker, []Kind{Partition, Kill}, ""},
		{"partition,crash-moment", Sim, []Kind{Partition, CrashMoment}, ""},
		{"none", Sim, []Kind{}, ""},
		{"all", Sim, Sim.All(), ""},
		{"all", Docker, Docker.All(), ""},
		{"all,reconfig", Sim, append(Sim.All(), Reconfig), ""},
		{"reconfig, all", Docker, append(Docker.All(), Reconfig), ""},
		{"partition,crash-moment", Docker, nil, "crash-moment cannot be injected by chaos run: finding the instant"},
		{"dup", Docker, nil, "dup cannot be injected by chaos run"},
		{"all,kill", Sim, nil, `kill is part of "all" already`},
		{"all,all", Sim, nil, "listed twice"},
		{"all,none", Sim, nil, "cannot be combined"},
		{"all,bogus", Docker, nil, `unknown fault kind "bogus"`},
		{"kill", "podman", nil, `unknown backend "podman"`},
	}
	for _, tt := range tests {
		got, err := ParseFor(tt.in, tt.b)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseFor(%q, %s) error = %v, want it to contain %q", tt.in, tt.b, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseFor(%q, %s) = %v, %v; want %v", tt.in, tt.b, got, err, tt.want)
		}
	}
}

// TestBackendDeclarations: every kind is injectable somewhere, every
// refusal and every setup need has a reason, "all" holds only kinds the
// backend supports without setup, and the simulator supports every kind.
func TestBackendDeclarations(t *testing.T) {
	for _, k := range Kinds() {
		ok := false
		for _, b := range Backends() {
			err := b.Supported(k)
			ok = ok || err == nil
			if err != nil && !strings.Contains(err.Error(), string(k)) {
				t.Errorf("%s refuses %s without naming it: %v", b, k, err)
			}
			if slices.Contains(b.All(), k) != (err == nil && b.Needs(k) == "") {
				t.Errorf("%s: all holds %s: %v, supported %v, needs %q", b, k, slices.Contains(b.All(), k), err, b.Needs(k))
			}
		}
		if !ok {
			t.Errorf("no backend injects %s", k)
		}
		if err := Sim.Supported(k); err != nil {
			t.Errorf("the simulator refuses %s: %v", k, err)
		}
	}
	if err := Sim.Supported("bogus"); err == nil || !strings.Contains(err.Error(), "unknown fault kind") {
		t.Errorf("an unknown kind: %v", err)
	}
}

// TestNewRefusesSimulatorOnlyKinds: the real-time Nemesis, which drives a
// Target as the Docker backend does, refuses a kind only the simulator
// applies, with the reason, rather than failing at its first step.
func TestNewRefusesSimulatorOnlyKinds(t *testing.T) {
	_, err := New(newFake(3), Config{Kinds: []Kind{Partition, Disk}}, func(history.Op) {})
	if err == nil || !strings.Contains(err.Error(), "disk cannot be injected by chaos run") {
		t.Fatalf("New with disk: %v", err)
	}
}

// TestFormatFor: FormatFor writes what ParseFor reads back to the same
// kinds, using "all" where the kinds begin with the backend's all.
func TestFormatFor(t *testing.T) {
	for _, tt := range []struct {
		kinds []Kind
		b     Backend
		want  string
	}{
		{Sim.All(), Sim, "all"},
		{append(Sim.All(), Reconfig), Sim, "all,reconfig"},
		{Docker.All(), Docker, "all"},
		{Docker.All(), Sim, FormatKinds(Docker.All())},
		{[]Kind{Partition, Kill}, Sim, "partition,kill"},
		{nil, Sim, "none"},
	} {
		got := FormatFor(tt.kinds, tt.b)
		if got != tt.want {
			t.Errorf("FormatFor(%v, %s) = %q, want %q", tt.kinds, tt.b, got, tt.want)
			continue
		}
		back, err := ParseFor(got, tt.b)
		if err != nil || !slices.Equal(back, tt.kinds) && len(tt.kinds)+len(back) > 0 {
			t.Errorf("ParseFor(%q, %s) = %v, %v; want %v", got, tt.b, back, err, tt.kinds)
		}
	}
}
