package harness

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/chaoskv/chaos/history"
)

// recorder is the one goroutine that owns the history: it assigns indexes
// and times in the order ops reach it, streams them to disk and keeps them
// for the checker. An invocation is stamped before its client starts (the
// sender waits for the stamp) and a completion after its client returned,
// so every op's [invoke, complete] window contains its real execution.
type recorder struct {
	ch    chan recEvent
	start time.Time
	flush time.Duration
	file  *os.File
	w     *history.Writer
	done  chan struct{}

	// Owned by the loop until done is closed.
	ops  []history.Op
	last int64
	err  error

	mu      sync.Mutex // guards synced
	synced  int64      // ops flushed to the file so far
	onWrite func(op *history.Op)
}

type recEvent struct {
	op  history.Op
	ack chan struct{}
}

func newRecorder(f *os.File, start time.Time, flush time.Duration, onWrite func(*history.Op)) *recorder {
	r := &recorder{
		ch:      make(chan recEvent, 1024),
		start:   start,
		flush:   flush,
		file:    f,
		w:       history.NewWriter(f),
		done:    make(chan struct{}),
		onWrite: onWrite,
	}
	go r.loop()
	return r
}

func (r *recorder) loop() {
	defer close(r.done)
	tick := time.NewTicker(r.flush)
	defer tick.Stop()
	for {
		select {
		case ev, ok := <-r.ch:
			if !ok {
				r.sync()
				return
			}
			r.add(ev)
		case <-tick.C:
			r.sync()
		}
	}
}

func (r *recorder) add(ev recEvent) {
	op := ev.op
	op.Index = int64(len(r.ops))
	t := time.Since(r.start).Nanoseconds()
	if t < r.last {
		t = r.last
	}
	r.last = t
	op.Time = t
	r.ops = append(r.ops, op)
	if ev.ack != nil {
		ev.ack <- struct{}{}
	}
	if r.err == nil {
		r.err = r.w.Write(&op)
	}
	if r.onWrite != nil {
		r.onWrite(&op)
	}
}

func (r *recorder) sync() {
	if r.err != nil {
		return
	}
	if err := r.w.Flush(); err != nil {
		r.err = err
		return
	}
	r.mu.Lock()
	r.synced = int64(len(r.ops))
	r.mu.Unlock()
}

// invoke records an invocation and returns once it is stamped. ack must
// have a buffer of one and belong to the caller alone.
func (r *recorder) invoke(op history.Op, ack chan struct{}) {
	r.ch <- recEvent{op: op, ack: ack}
	<-ack
}

// complete records a completion without waiting.
func (r *recorder) complete(op history.Op) {
	r.ch <- recEvent{op: op}
}

// emit records an op from the nemesis: invocations wait for their stamp
// so the fault starts after its invoke record, completions do not wait.
func (r *recorder) emit(op history.Op) {
	if op.Type == history.Invoke {
		r.invoke(op, make(chan struct{}, 1))
		return
	}
	r.complete(op)
}

// close stops the loop once every sender has finished, flushes and syncs
// the file, and returns the history.
func (r *recorder) close() ([]history.Op, error) {
	close(r.ch)
	<-r.done
	err := r.err
	if serr := r.file.Sync(); serr != nil && err == nil {
		err = fmt.Errorf("sync history: %w", serr)
	}
	if cerr := r.file.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close history: %w", cerr)
	}
	return r.ops, err
}

// flushed reports how many ops have reached the file.
func (r *recorder) flushed() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.synced
}
