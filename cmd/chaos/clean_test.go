package main

import (
	"strings"
	"testing"
)

func TestCleanBadArgs(t *testing.T) {
	if code, stderr := runCLI(t, "clean", "everything"); code != exitBadArgs || !strings.Contains(stderr, "no arguments") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if code, _ := runCLI(t, "clean", "--images=maybe"); code != exitBadArgs {
		t.Fatalf("exit %d for a malformed bool flag", code)
	}
}

func TestCleanDocker(t *testing.T) {
	dockerOrSkip(t)
	// A run id no run has: the command must succeed and remove nothing,
	// while leaving every other run's containers alone.
	code, stderr := runCLI(t, "clean", "--run", "chaos-clean-test-no-such-run")
	if code != exitValid {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}
