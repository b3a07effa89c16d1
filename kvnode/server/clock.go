package server

import (
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// ClockOffsetEnv names the environment variable that sets the node's clock
// offset (a Go duration such as "-250ms"), for clock-skew faults.
const ClockOffsetEnv = "KVNODE_CLOCK_OFFSET"

var clockOffset atomic.Int64

// SetClockOffset shifts every wall-clock reading of the node by d.
func SetClockOffset(d time.Duration) { clockOffset.Store(int64(d)) }

// ClockOffset returns the shift SetClockOffset last set.
func ClockOffset() time.Duration { return time.Duration(clockOffset.Load()) }

// MaxClockOffset bounds the offset the admin endpoint accepts.
const MaxClockOffset = 24 * time.Hour

// ClockOffsetFromEnv parses ClockOffsetEnv; unset means zero.
func ClockOffsetFromEnv() (time.Duration, error) {
	v := os.Getenv(ClockOffsetEnv)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", ClockOffsetEnv, err)
	}
	return d, nil
}

// Now is the node's only wall-clock reading: time.Now shifted by the clock
// offset. Protocol timing does not use it (ticks come from a monotonic
// ticker); log timestamps and /status do, so a skewed node shows it.
func Now() time.Time { return time.Now().Add(time.Duration(clockOffset.Load())) }

// SkewedTime is a slog ReplaceAttr function that stamps records with Now.
func SkewedTime(groups []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey && len(groups) == 0 && clockOffset.Load() != 0 {
		a.Value = slog.TimeValue(Now())
	}
	return a
}
