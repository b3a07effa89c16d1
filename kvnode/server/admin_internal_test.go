package server

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
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
