package docker

import (
	"archive/tar"
	"bytes"
	"io"
	"net/netip"
	"os"
	"strings"
	"testing"
)

func TestFreeSubnetsAvoidUsedOnes(t *testing.T) {
	first := freeSubnets("run-a", nil, 1)[0]
	if !first.Addr().Is4() || first.Bits() != 24 || first.Addr().As4()[0] != 10 {
		t.Fatalf("candidate %v is not a /24 in 10/8", first)
	}
	// Mark the first candidate, and a /16 around the next ones, as used.
	next := freeSubnets("run-a", nil, 3)
	used := []netip.Prefix{first, netip.PrefixFrom(next[1].Addr(), 16).Masked()}
	got := freeSubnets("run-a", used, 5)
	if len(got) != 5 {
		t.Fatalf("got %d candidates, want 5", len(got))
	}
	for _, g := range got {
		for _, u := range used {
			if g.Overlaps(u) {
				t.Fatalf("candidate %v overlaps used %v", g, u)
			}
		}
	}
	// The whole pool used: nothing left.
	if got := freeSubnets("run-a", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, 3); len(got) != 0 {
		t.Fatalf("got %v from a fully used pool", got)
	}
	// Different runs start at different places.
	if freeSubnets("run-a", nil, 1)[0] == freeSubnets("run-b", nil, 1)[0] {
		t.Log("run-a and run-b hash to the same start; unlikely but allowed")
	}
}

func TestNodeAddr(t *testing.T) {
	s := netip.MustParsePrefix("10.150.7.0/24")
	tests := []struct {
		id   int
		want string
		err  bool
	}{
		{1, "10.150.7.11", false},
		{5, "10.150.7.15", false},
		{244, "10.150.7.254", false},
		{245, "", true},
	}
	for _, tt := range tests {
		got, err := nodeAddr(s, tt.id)
		if (err != nil) != tt.err || (!tt.err && got.String() != tt.want) {
			t.Errorf("nodeAddr(%v, %d) = %v, %v; want %s (error %v)", s, tt.id, got, err, tt.want, tt.err)
		}
	}
	if g := gatewayAddr(s); g.String() != "10.150.7.1" {
		t.Errorf("gateway = %v", g)
	}
}

func TestImageLayerHoldsBinaryAndDirs(t *testing.T) {
	layer, err := imageLayer("kvnode", []byte("\x7fELFbinary"))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(layer))
	got := map[string]*tar.Header{}
	var body []byte
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h
		if h.Name == "kvnode" {
			body, _ = io.ReadAll(tr)
		}
	}
	if len(got) != 3 || got["tmp/"] == nil || got["data/"] == nil || got["kvnode"] == nil {
		t.Fatalf("layer entries %v", got)
	}
	if got["kvnode"].Mode&0o111 == 0 || string(body) != "\x7fELFbinary" {
		t.Fatalf("binary entry mode %o body %q", got["kvnode"].Mode, body)
	}
	if got["tmp/"].Mode != 0o1777 {
		t.Errorf("/tmp mode %o, want 1777", got["tmp/"].Mode)
	}
	again, _ := imageLayer("kvnode", []byte("\x7fELFbinary"))
	if !bytes.Equal(layer, again) {
		t.Error("the layer is not a function of the binary alone")
	}
}

func TestCheckOwnerRejectsForeignProcess(t *testing.T) {
	// This test process is in no container, so it cannot pass for one.
	err := checkOwner(os.Getpid(), "0123456789abcdef0123456789abcdef")
	if err == nil || !strings.Contains(err.Error(), "pid namespace") {
		t.Fatalf("checkOwner(self) = %v, want an error about the pid namespace", err)
	}
	if err := checkOwner(1<<30, "x"); err == nil {
		t.Fatal("checkOwner of a missing pid succeeded")
	}
}
