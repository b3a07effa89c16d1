package docker

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TableName is the nftables table this package owns in every container's
// network namespace. Only this table is ever added or deleted: the rest of
// the ruleset (Docker's embedded-DNS rules) is left alone.
const TableName = "chaos"

// ErrNoNetem is returned by latency faults on kernels without the netem
// queueing discipline.
var ErrNoNetem = errors.New("latency needs the netem qdisc, which this kernel lacks (CONFIG_NET_SCH_NETEM)")

// netRules is the complete fault state of one node's network namespace.
type netRules struct {
	Drop        []netip.Addr // sources whose packets are dropped
	LossPercent int          // random drop of all other incoming packets
}

func (r netRules) empty() bool { return len(r.Drop) == 0 && r.LossPercent == 0 }

// nsPath is where the host sees a process's network namespace.
func nsPath(pid int) string { return fmt.Sprintf("/proc/%d/ns/net", pid) }

// openNetNS opens the network namespace of pid, with an error that says
// what to do when the host's /proc does not show the container.
func openNetNS(pid int) (*os.File, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("no process (pid %d): the container is not running", pid)
	}
	f, err := os.Open(nsPath(pid))
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w (network faults are written from the Docker host: "+
			"run chaos as root on the machine that runs the engine)", nsPath(pid), err)
	}
	return f, nil
}

// checkOwner makes sure that pid, as this process sees it, is the main
// process of container id. When chaos runs in a pid namespace other than
// the engine's (inside a container, say), the engine's pids name other
// processes or none, and writing rules through them would hurt the wrong
// namespace; this turns that into a clear error instead.
func checkOwner(pid int, id string) error {
	path := fmt.Sprintf("/proc/%d/cgroup", pid)
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w (network faults are written from the Docker host: "+
			"run chaos as root on the machine that runs the engine, in its pid namespace)", path, err)
	}
	if !strings.Contains(string(b), id) {
		return fmt.Errorf("process %d is not container %.12s as seen from here (%s names other cgroups): "+
			"chaos must run in the Docker host's pid namespace to reach the nodes' network namespaces", pid, id, path)
	}
	return nil
}

// applyRules replaces our table in pid's network namespace with one that
// enforces r, in a single atomic batch; for empty rules the table is just
// removed. Adding the table before deleting it makes the delete valid
// whether or not a previous table exists.
func applyRules(pid int, r netRules) error {
	f, err := openNetNS(pid)
	if err != nil {
		return err
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		return fmt.Errorf("nftables in %s: %w", nsPath(pid), err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName}
	c.AddTable(t)
	c.DelTable(t)
	if !r.empty() {
		if err := buildTable(c, r); err != nil {
			return err
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("write nftables table %q in %s: %w", TableName, nsPath(pid), err)
	}
	return nil
}

// buildTable queues our table: an input chain that drops packets from the
// sources in set "blocked" and then, if asked, a random share of the rest
// (loopback excepted).
func buildTable(c *nftables.Conn, r netRules) error {
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName})
	policy := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{
		Name: "input", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &policy,
	})
	// A fixed set id (it only has to be unique within this batch) keeps
	// the library from drawing one from its unsynchronised global counter,
	// which races when several namespaces are written at once.
	set := &nftables.Set{Table: t, ID: 1, Name: "blocked", KeyType: nftables.TypeIPAddr}
	var elems []nftables.SetElement
	for _, a := range r.Drop {
		b := a.As4()
		elems = append(elems, nftables.SetElement{Key: b[:]})
	}
	if err := c.AddSet(set, elems); err != nil {
		return fmt.Errorf("nftables set: %w", err)
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		// ip saddr @blocked drop
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if r.LossPercent > 0 {
		lo := make([]byte, unix.IFNAMSIZ)
		copy(lo, "lo")
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			// iifname != "lo" numgen random mod 100 < p drop. numgen
			// yields a host-order number and cmp compares bytes, so the
			// number is turned to network order first, as nft does.
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: lo},
			&expr.Numgen{Register: 1, Modulus: 100, Type: unix.NFT_NG_RANDOM},
			&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4},
			&expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: binaryutil.BigEndian.PutUint32(uint32(r.LossPercent))},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
	}
	return nil
}

// readTable reports whether our table exists in pid's namespace and the
// addresses in its blocked set. Tests use it to check re-application.
func readTable(pid int) (bool, []netip.Addr, error) {
	f, err := openNetNS(pid)
	if err != nil {
		return false, nil, err
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		return false, nil, err
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return false, nil, fmt.Errorf("list tables in %s: %w", nsPath(pid), err)
	}
	i := slices.IndexFunc(tables, func(t *nftables.Table) bool { return t.Name == TableName })
	if i < 0 {
		return false, nil, nil
	}
	set, err := c.GetSetByName(tables[i], "blocked")
	if err != nil {
		return true, nil, fmt.Errorf("read set blocked: %w", err)
	}
	elems, err := c.GetSetElements(set)
	if err != nil {
		return true, nil, fmt.Errorf("read set blocked: %w", err)
	}
	var out []netip.Addr
	for _, e := range elems {
		if a, ok := netip.AddrFromSlice(e.Key); ok {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return true, out, nil
}

// setLatency puts a netem root qdisc with the given delay on the
// namespace's eth0, or removes ours when delay and jitter are zero. A
// kernel without netem yields ErrNoNetem.
func setLatency(pid int, delay, jitter time.Duration) error {
	f, err := openNetNS(pid)
	if err != nil {
		return err
	}
	defer f.Close()
	h, err := netlink.NewHandleAt(netns.NsHandle(int(f.Fd())))
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", nsPath(pid), err)
	}
	defer h.Close()
	link, err := h.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("find eth0 in %s: %w", nsPath(pid), err)
	}
	attrs := netlink.QdiscAttrs{LinkIndex: link.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT}
	if delay == 0 && jitter == 0 {
		qs, err := h.QdiscList(link)
		if err != nil {
			return fmt.Errorf("list qdiscs in %s: %w", nsPath(pid), err)
		}
		for _, q := range qs {
			if q.Type() == "netem" && q.Attrs().Parent == netlink.HANDLE_ROOT {
				if err := h.QdiscDel(q); err != nil {
					return fmt.Errorf("remove netem qdisc in %s: %w", nsPath(pid), err)
				}
			}
		}
		return nil
	}
	q := netlink.NewNetem(attrs, netlink.NetemQdiscAttrs{
		Latency: uint32(delay / time.Microsecond),
		Jitter:  uint32(jitter / time.Microsecond),
	})
	if err := h.QdiscReplace(q); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("%w: adding it in %s failed with %v", ErrNoNetem, nsPath(pid), err)
		}
		return fmt.Errorf("add netem qdisc in %s: %w", nsPath(pid), err)
	}
	return nil
}
