package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"
)

func frame(t testing.TB, k Kind, payload []byte) []byte {
	b, err := AppendFrame(nil, k, func(b []byte) []byte { return append(b, payload...) })
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFrameRoundTrip(t *testing.T) {
	var stream []byte
	payloads := [][]byte{{}, []byte("x"), bytes.Repeat([]byte("ab"), 5000)}
	for i, p := range payloads {
		stream = append(stream, frame(t, Kind(1+i%3), p)...)
	}
	r := bufio.NewReader(bytes.NewReader(stream))
	var buf []byte
	for i, want := range payloads {
		k, p, nb, err := ReadFrame(r, buf)
		buf = nb
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if k != Kind(1+i%3) || !bytes.Equal(p, want) {
			t.Fatalf("frame %d: got kind %d payload %d bytes, want kind %d %d bytes", i, k, len(p), 1+i%3, len(want))
		}
	}
	if _, _, _, err := ReadFrame(r, buf); err != io.EOF {
		t.Fatalf("after last frame: got %v, want io.EOF", err)
	}
}

func TestFrameErrors(t *testing.T) {
	hdr := func(n uint32, v, k byte) []byte {
		b := binary.BigEndian.AppendUint32(nil, n)
		return append(b, v, k)
	}
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"oversized", hdr(MaxFrame+1, Version, 1), ErrTooLarge},
		{"huge", hdr(0xffffffff, Version, 1), ErrTooLarge},
		{"short length", hdr(1, Version, 1), ErrShort},
		{"bad version", hdr(2, 9, 1), ErrBadVersion},
		{"bad kind", hdr(2, Version, 0), ErrBadKind},
		{"bad kind high", hdr(2, Version, 200), ErrBadKind},
		{"truncated payload", append(hdr(10, Version, 1), 1, 2), io.ErrUnexpectedEOF},
		{"truncated length", []byte{0, 0}, io.ErrUnexpectedEOF},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, _, err := ReadFrame(bufio.NewReader(bytes.NewReader(c.in)), nil)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestAppendFrameTooLarge(t *testing.T) {
	big := make([]byte, MaxFrame)
	b, err := AppendFrame([]byte("keep"), KindPeer, func(b []byte) []byte { return append(b, big...) })
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	if string(b) != "keep" {
		t.Fatalf("buffer not restored: %d bytes", len(b))
	}
}

func TestRequestResponseRoundTrip(t *testing.T) {
	q := Request{ID: 7, Group: 3, ClientID: 1 << 60, Seq: 42, Op: []byte("op")}
	got, err := DecodeRequest(q.Append(nil))
	if err != nil || !reflect.DeepEqual(got, q) {
		t.Fatalf("request: got %+v, %v; want %+v", got, err, q)
	}
	for _, r := range []Response{
		{ID: 1, Status: StatusOK, Index: 9, Value: []byte("v")},
		{ID: 2, Status: StatusNotLeader, Leader: 3, Err: "not the leader", Value: []byte{}},
		{ID: 3, Status: StatusUnknown, Err: "", Value: []byte{}},
	} {
		got, err := DecodeResponse(r.Append(nil))
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Fatalf("response: got %+v, %v; want %+v", got, err, r)
		}
	}
	if _, err := DecodeRequest(make([]byte, 27)); !errors.Is(err, ErrShort) {
		t.Fatalf("short request: %v", err)
	}
	if _, err := DecodeResponse(make([]byte, 10)); !errors.Is(err, ErrShort) {
		t.Fatalf("short response: %v", err)
	}
	bad := (&Response{Status: 99}).Append(nil)
	if _, err := DecodeResponse(bad); err == nil {
		t.Fatal("unknown status accepted")
	}
	lie := (&Response{Err: "abc"}).Append(nil)
	lie[21] = 100 // error length beyond the payload
	if _, err := DecodeResponse(lie); err == nil {
		t.Fatal("error length beyond payload accepted")
	}
}

func TestStatusDefinite(t *testing.T) {
	for s, want := range map[Status]bool{StatusOK: false, StatusNotLeader: true, StatusNoGroup: true, StatusOverloaded: true, StatusUnknown: false} {
		if s.Definite() != want {
			t.Errorf("%v.Definite() = %v, want %v", s, !want, want)
		}
	}
}

// FuzzReadFrame feeds arbitrary bytes to the frame reader and the payload
// decoders: they may return errors but never panic, and every frame they
// accept re-encodes to the same bytes.
func FuzzReadFrame(f *testing.F) {
	f.Add(frame(f, KindPeer, AppendPeer(nil, 5)))
	f.Add(frame(f, KindRequest, (&Request{ID: 1, Group: 1, ClientID: 2, Seq: 3, Op: []byte("x")}).Append(nil)))
	f.Add(frame(f, KindResponse, (&Response{ID: 1, Err: "e", Value: []byte("v")}).Append(nil)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 1})
	f.Add([]byte{0, 0, 0, 2, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		var buf []byte
		for {
			k, p, nb, err := ReadFrame(r, buf)
			buf = nb
			if err != nil {
				return
			}
			if again := frame(t, k, p); len(again) != len(p)+6 {
				t.Fatalf("re-encoded frame has %d bytes, want %d", len(again), len(p)+6)
			}
			switch k {
			case KindPeer:
				_, _, _ = DecodePeer(p)
			case KindRequest:
				if q, err := DecodeRequest(p); err == nil && !bytes.Equal(q.Append(nil), p) {
					t.Fatalf("request does not re-encode to its input")
				}
			case KindResponse:
				_, _ = DecodeResponse(p)
			}
		}
	})
}

// FuzzSplitFrame checks that SplitFrame and ReadFrame agree on every input:
// the same frames, the same payloads, an error at the same place.
func FuzzSplitFrame(f *testing.F) {
	f.Add(frame(f, KindPeer, AppendPeer(nil, 5)))
	f.Add(append(frame(f, KindRequest, []byte("ab")), frame(f, KindResponse, nil)...))
	f.Add([]byte{0, 0, 0, 9, 1, 1})
	f.Add([]byte{0, 0, 0, 2, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		rest := in
		for len(rest) > 0 {
			k, p, next, err := SplitFrame(rest)
			rk, rp, _, rerr := ReadFrame(r, nil)
			if (err == nil) != (rerr == nil) {
				t.Fatalf("SplitFrame error %v, ReadFrame error %v", err, rerr)
			}
			if err != nil {
				return
			}
			if k != rk || !bytes.Equal(p, rp) {
				t.Fatalf("SplitFrame read %d %x, ReadFrame %d %x", k, p, rk, rp)
			}
			rest = next
		}
	})
}

func TestOneFrame(t *testing.T) {
	one, err := AppendFrame(nil, KindPeer, func(b []byte) []byte { return append(b, "abc"...) })
	if err != nil {
		t.Fatal(err)
	}
	two := append(append([]byte(nil), one...), one...)
	cases := []struct {
		name string
		b    []byte
		want Kind
		ok   bool
	}{
		{"one frame of the kind", one, KindPeer, true},
		{"another kind", one, KindRequest, false},
		{"two frames", two, KindPeer, false},
		{"cut short", one[:len(one)-1], KindPeer, false},
	}
	for _, tc := range cases {
		p, err := OneFrame(tc.b, tc.want)
		if (err == nil) != tc.ok || (tc.ok && string(p) != "abc") {
			t.Errorf("%s: payload %q, err %v", tc.name, p, err)
		}
	}
}
