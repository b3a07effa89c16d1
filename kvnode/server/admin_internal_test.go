package server

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chaoskv/chaos/kvnode/replica"
)

func TestAdminClockOffset(t *testing.T) {
	defer SetClockOffset(0)
	h := (&Node{log: slog.Default()}).adminHandler()
	for _, tc := range []struct {
		offset string
		code   int
		want   time.Duration
	}{
		{"-1.5s", http.StatusOK, -1500 * time.Millisecond},
		{"250ms", http.StatusOK, 250 * time.Millisecond},
		{"0", http.StatusOK, 0},
		{"soon", http.StatusBadRequest, 0},
		{"", http.StatusBadRequest, 0},
		{"25h", http.StatusBadRequest, 0},
	} {
		SetClockOffset(0)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/clock-offset?offset="+tc.offset, nil))
		if rec.Code != tc.code || ClockOffset() != tc.want {
			t.Errorf("offset=%q: status %d, offset %v; want %d, %v", tc.offset, rec.Code, ClockOffset(), tc.code, tc.want)
		}
	}
	SetClockOffset(time.Hour)
	if d := time.Until(Now()); d < 59*time.Minute {
		t.Errorf("Now() with a 1h offset is only %v ahead", d)
	}
}

func TestParseMembership(t *testing.T) {
	for _, tc := range []struct {
		group, members string
		ok             bool
	}{
		{"1", "1,2,4", true},
		{"7", " 3 , 1", true},
		{"0", "1,2", false},
		{"", "1,2", false},
		{"1", "", false},
		{"1", "1,1", false},
		{"1", "1,0", false},
		{"1", "1,x", false},
		{"1", "1,,2", false},
		{"x", "1", false},
	} {
		g, ids, err := parseMembership(tc.group, tc.members)
		if (err == nil) != tc.ok {
			t.Errorf("group %q members %q: %d %v %v, want ok=%v", tc.group, tc.members, g, ids, err, tc.ok)
		}
	}
}

// FuzzParseMembership checks that what parseMembership accepts is a valid
// configuration of a non-zero group.
func FuzzParseMembership(f *testing.F) {
	f.Add("1", "1,2,3")
	f.Add("2", "4, 5")
	f.Fuzz(func(t *testing.T, group, members string) {
		g, ids, err := parseMembership(group, members)
		if err != nil {
			return
		}
		if g == 0 || replica.ValidateMembers(ids, 64) != nil {
			t.Fatalf("accepted group %d members %v from %q %q", g, ids, group, members)
		}
	})
}
