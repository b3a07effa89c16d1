package results

import "time"

// Timings records how long a run's fixed phases took, in seconds (rounded
// to milliseconds), measured from the harness's start of the run. A phase
// that never happened is left out.
type Timings struct {
	// Setup runs until the cluster is up and healthy.
	Setup float64 `json:"setup,omitempty"`
	// FirstOp runs until the first client operation was invoked.
	FirstOp float64 `json:"first-op,omitempty"`
	// Teardown is how long collecting node files and removing the cluster
	// took, on its own.
	Teardown float64 `json:"teardown,omitempty"`
}

// Seconds converts d to the unit Timings uses.
func Seconds(d time.Duration) float64 {
	return float64(d.Round(time.Millisecond)) / float64(time.Second)
}
