package dockerbackend

import (
	"context"
	"errors"
	"regexp"
	"testing"

	"github.com/chaoskv/chaos/nemesis"
)

func TestRunID(t *testing.T) {
	pat := regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)
	a := RunID("/store/reg/20261124T101500.123")
	b := RunID("/store/other/20261124T101500.123")
	if a == b {
		t.Fatal("two tests in the same millisecond share a run id")
	}
	for _, id := range []string{a, b, RunID("/x/..."), RunID("/store/reg/20261124T101500.123-2")} {
		if !pat.MatchString(id) {
			t.Errorf("run id %q is not valid for docker", id)
		}
	}
}

// TestTargetRefusesClockWithoutClockSetter: a database whose adapter
// cannot shift clocks has the clock kinds refused before the test starts
// (and a stray call fails), not silently ignored.
func TestTargetRefusesClockWithoutClockSetter(t *testing.T) {
	tg := &Target{}
	for _, k := range []nemesis.Kind{nemesis.ClockBump, nemesis.ClockStrobe} {
		if err := tg.Supports(context.Background(), k); !errors.Is(err, errNoClock) {
			t.Errorf("Supports(%s) = %v, want the no-clock refusal", k, err)
		}
	}
	if err := tg.SetClockOffset(context.Background(), "n1", 1); !errors.Is(err, errNoClock) {
		t.Errorf("SetClockOffset = %v, want the no-clock refusal", err)
	}
}
