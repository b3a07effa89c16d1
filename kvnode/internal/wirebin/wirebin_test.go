package wirebin

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

var errTest = errors.New("test: malformed encoding")

func TestAppend(t *testing.T) {
	b := AppendBool(nil, true)
	b = AppendBool(b, false)
	b = AppendUvarint(b, 300)
	b = AppendBytes(b, []byte("ab"))
	b = AppendBytes(b, nil)
	b = AppendString(b, "xyz")
	want := []byte{1, 0, 0xac, 0x02, 2, 'a', 'b', 0, 3, 'x', 'y', 'z'}
	if !bytes.Equal(b, want) {
		t.Fatalf("got %x, want %x", b, want)
	}
	d := NewDecoder(b, errTest)
	if !d.Bool("t") || d.Bool("f") || d.Uvarint("n") != 300 || string(d.Bytes("p")) != "ab" || d.Bytes("e") != nil || d.String("s") != "xyz" {
		t.Fatal("round trip mismatch")
	}
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}
}

// read runs one named read and renders its result.
func read(d *Decoder, op string) string {
	switch op {
	case "byte":
		return fmt.Sprint(d.Byte("x"))
	case "bool":
		return fmt.Sprint(d.Bool("x"))
	case "uvarint":
		return fmt.Sprint(d.Uvarint("x"))
	case "suffix":
		return fmt.Sprint(d.UvarintSuffix("x", " count"))
	case "uint32":
		return fmt.Sprint(d.Uint32("x"))
	case "count2":
		return fmt.Sprint(d.Count("x count", 2))
	case "bytes":
		return fmt.Sprintf("%q", d.Bytes("x"))
	case "string":
		return fmt.Sprintf("%q", d.String("x"))
	case "skip1":
		d.Skip(1)
		return ""
	}
	panic(op)
}

func TestDecoder(t *testing.T) {
	for _, tc := range []struct {
		in        []byte
		ops       []string
		noOffsets bool
		want      []string // rendered results
		err       string   // "" for success
	}{
		{in: []byte{7}, ops: []string{"byte"}, want: []string{"7"}},
		{in: nil, ops: []string{"byte"}, want: []string{"0"}, err: "test: malformed encoding: missing x"},
		{in: []byte{1, 0}, ops: []string{"bool", "bool"}, want: []string{"true", "false"}},
		{in: []byte{2}, ops: []string{"bool"}, want: []string{"false"}, err: "test: malformed encoding: bad x byte 2"},
		{in: []byte{0xac, 0x02}, ops: []string{"uvarint"}, want: []string{"300"}},
		{in: []byte{5, 0x80, 0x00}, ops: []string{"byte", "uvarint"}, want: []string{"5", "0"}, err: "test: malformed encoding: bad x at byte 1"},
		{in: []byte{0x80, 0x00}, ops: []string{"uvarint"}, noOffsets: true, want: []string{"0"}, err: "test: malformed encoding: bad x"},
		{in: []byte{0x80}, ops: []string{"suffix"}, want: []string{"0"}, err: "test: malformed encoding: bad x count at byte 0"},
		{in: []byte{0x80}, ops: []string{"suffix"}, noOffsets: true, want: []string{"0"}, err: "test: malformed encoding: bad x count"},
		{in: bytes.Repeat([]byte{0xff}, 11), ops: []string{"uvarint"}, want: []string{"0"}, err: "test: malformed encoding: bad x at byte 0"},
		{in: binary.AppendUvarint(nil, 1<<32-1), ops: []string{"uint32"}, want: []string{"4294967295"}},
		{in: binary.AppendUvarint(nil, 1<<32), ops: []string{"uint32"}, want: []string{"0"}, err: "test: malformed encoding: x 4294967296 out of range"},
		{in: []byte{2, 0, 0, 0, 0}, ops: []string{"count2", "skip1", "skip1", "skip1", "skip1"}, want: []string{"2", "", "", "", ""}},
		{in: []byte{3, 0, 0, 0, 0}, ops: []string{"count2"}, want: []string{"0"}, err: "test: malformed encoding: x count 3 exceeds input"},
		{in: []byte{2, 'h', 'i'}, ops: []string{"bytes"}, want: []string{`"hi"`}},
		{in: []byte{0}, ops: []string{"bytes"}, want: []string{`""`}},
		{in: []byte{3, 'h', 'i'}, ops: []string{"bytes"}, want: []string{`""`}, err: "test: malformed encoding: x is 3 bytes, 2 left"},
		{in: []byte{0x80, 0}, ops: []string{"bytes"}, want: []string{`""`}, err: "test: malformed encoding: bad x length at byte 0"},
		{in: []byte{2, 'h', 'i'}, ops: []string{"string"}, want: []string{`"hi"`}},
		{in: []byte{9, 'h'}, ops: []string{"string"}, want: []string{`""`}, err: "test: malformed encoding: x is 9 bytes, 1 left"},
		{in: []byte{1, 2}, ops: []string{"byte"}, want: []string{"1"}, err: "test: malformed encoding: 1 trailing bytes"},
		{in: []byte{}, ops: []string{"skip1"}, want: []string{""}, err: "test: malformed encoding: cannot skip 1 bytes, 0 left"},
		// The first error sticks: later reads return zero values.
		{in: []byte{2, 1, 1}, ops: []string{"bool", "byte", "uvarint"}, want: []string{"false", "0", "0"}, err: "test: malformed encoding: bad x byte 2"},
	} {
		d := NewDecoder(tc.in, errTest)
		if tc.noOffsets {
			d = d.WithoutOffsets()
		}
		var got []string
		for _, op := range tc.ops {
			got = append(got, read(&d, op))
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%x %v: got %v, want %v", tc.in, tc.ops, got, tc.want)
		}
		err := d.Finish()
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%x %v: unexpected error %v", tc.in, tc.ops, err)
		case tc.err != "" && (err == nil || err.Error() != tc.err || !errors.Is(err, errTest)):
			t.Errorf("%x %v: got error %v, want %q wrapping the sentinel", tc.in, tc.ops, err, tc.err)
		}
	}
}

func TestBytesCopyOrShare(t *testing.T) {
	in := []byte{2, 'h', 'i'}
	d := NewDecoder(in, errTest)
	p := d.Bytes("p")
	in[1] = 'X'
	if string(p) != "hi" {
		t.Fatalf("unshared decoder aliased its input: %q", p)
	}
	in = []byte{2, 'h', 'i', 9}
	d = NewDecoder(in, errTest).Shared()
	p = d.Bytes("p")
	in[1] = 'X'
	if string(p) != "Xi" || cap(p) != 2 {
		t.Fatalf("shared decoder: got %q cap %d, want an alias of cap 2", p, cap(p))
	}
}

// FuzzDecoder runs a program of reads, chosen by prog, over arbitrary
// input: it must never panic, must never read past the input, and every
// error must wrap the sentinel.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3}, []byte{1, 0xac, 0x02, 2, 'a', 'b', 3, 'x', 'y', 'z'}, false)
	f.Add([]byte{5, 5, 6}, []byte{2, 0, 0, 0xff, 0xff}, true)
	f.Add([]byte{4, 7, 8}, []byte{0x80, 0x00, 0x01}, false)
	f.Fuzz(func(t *testing.T, prog, in []byte, share bool) {
		orig := bytes.Clone(in)
		d := NewDecoder(in, errTest)
		if share {
			d = d.Shared()
		}
		for _, op := range prog {
			before := len(d.Rest())
			failed := d.Err() != nil
			switch op % 9 {
			case 0:
				d.Byte("b")
			case 1:
				d.Bool("b")
			case 2:
				d.Uvarint("u")
			case 3:
				d.UvarintSuffix("u", " s")
			case 4:
				d.Uint32("u")
			case 5:
				d.Count("c", int(op/9)%4+1)
			case 6:
				d.Bytes("p")
			case 7:
				d.String("s")
			case 8:
				d.Skip(int(op / 9))
			}
			if after := len(d.Rest()); after > before || (failed && after != before) {
				t.Fatalf("op %d moved from %d to %d left (failed before: %v)", op, before, after, failed)
			}
			if err := d.Err(); err != nil && !errors.Is(err, errTest) {
				t.Fatalf("error %v does not wrap the sentinel", err)
			}
		}
		if err := d.Finish(); err != nil && !errors.Is(err, errTest) {
			t.Fatalf("error %v does not wrap the sentinel", err)
		}
		if !bytes.Equal(in, orig) {
			t.Fatal("decoder modified its input")
		}
		// Encoding what an encoder appends and reading it back is exact.
		var b []byte
		for i, op := range prog {
			switch op % 4 {
			case 0:
				b = AppendBool(b, op&4 != 0)
			case 1:
				b = AppendUvarint(b, uint64(op)<<(i%57))
			case 2:
				b = AppendBytes(b, in[:min(len(in), int(op))])
			case 3:
				b = AppendString(b, string(in[:min(len(in), int(op))]))
			}
		}
		r := NewDecoder(b, errTest)
		for i, op := range prog {
			var ok bool
			switch op % 4 {
			case 0:
				ok = r.Bool("b") == (op&4 != 0)
			case 1:
				ok = r.Uvarint("u") == uint64(op)<<(i%57)
			case 2:
				ok = bytes.Equal(r.Bytes("p"), in[:min(len(in), int(op))])
			case 3:
				ok = r.String("s") == string(in[:min(len(in), int(op))])
			}
			if !ok {
				t.Fatalf("op %d at %d: round trip mismatch (%v)", op, i, r.Err())
			}
		}
		if err := r.Finish(); err != nil {
			t.Fatal(err)
		}
	})
}
