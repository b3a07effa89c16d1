package docker

import (
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
)

// subnetPool is where run networks come from: the /24s of 10.100.0.0/14
// .. 10.199.255.0/24, a corner of the private 10/8 range that Docker's own
// default pools (172.17-31/16, 192.168/20) do not use.
const (
	poolFirst = 100 // second octet of the first candidate
	poolLast  = 199 // second octet of the last candidate
	poolSize  = (poolLast - poolFirst + 1) * 256
)

// candidate returns the i-th /24 of the pool.
func candidate(i int) netip.Prefix {
	i %= poolSize
	a := netip.AddrFrom4([4]byte{10, byte(poolFirst + i/256), byte(i % 256), 0})
	return netip.PrefixFrom(a, 24)
}

// startIndex spreads runs over the pool by their id, so concurrent runs
// rarely race for the same subnet.
func startIndex(runID string) int {
	h := fnv.New32a()
	h.Write([]byte(runID))
	return int(h.Sum32() % poolSize)
}

// freeSubnets returns up to n candidate /24s, starting at the run's own
// place in the pool, that overlap none of used.
func freeSubnets(runID string, used []netip.Prefix, n int) []netip.Prefix {
	var out []netip.Prefix
	start := startIndex(runID)
	for i := 0; i < poolSize && len(out) < n; i++ {
		c := candidate(start + i)
		clash := false
		for _, u := range used {
			if u.Overlaps(c) {
				clash = true
				break
			}
		}
		if !clash {
			out = append(out, c)
		}
	}
	return out
}

// hostPrefixes returns the prefixes of the host's own interfaces, which a
// new network must not shadow. The engine is assumed local, which the
// netns faults need anyway.
func hostPrefixes() []netip.Prefix {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
			out = append(out, p.Masked())
		}
	}
	return out
}

// nodeAddr returns the address of node id (1-based) in subnet: .11, .12, ...
// leaving .1 for the gateway and the rest of the low range free.
func nodeAddr(subnet netip.Prefix, id int) (netip.Addr, error) {
	a := subnet.Masked().Addr().As4()
	host := 10 + id
	size := 1 << (32 - subnet.Bits())
	if host >= size-1 {
		return netip.Addr{}, fmt.Errorf("subnet %s has no room for node %d", subnet, id)
	}
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v += uint32(host)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), nil
}

// gatewayAddr returns the first host address of subnet.
func gatewayAddr(subnet netip.Prefix) netip.Addr {
	return subnet.Masked().Addr().Next()
}
