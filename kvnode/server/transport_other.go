//go:build !linux

package server

import (
	"errors"
	"net"
	"time"
)

// setUnackedTimeout is not available here: a link cut by a partition
// recovers at the pace of TCP's retransmission backoff.
func setUnackedTimeout(*net.TCPConn, time.Duration) error {
	return errors.New("tcp user timeout: not supported on this system")
}
