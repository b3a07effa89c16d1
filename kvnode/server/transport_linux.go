package server

import (
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// setUnackedTimeout makes the kernel drop the connection once data sent on
// it has gone unacknowledged for d (TCP_USER_TIMEOUT).
func setUnackedTimeout(c *net.TCPConn, d time.Duration) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("tcp user timeout: %w", err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, int(d.Milliseconds()))
	}); err != nil {
		return fmt.Errorf("tcp user timeout: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("tcp user timeout: %w", serr)
	}
	return nil
}
