// Command netprobe is the stand-in node the docker package's tests run in
// containers. It answers on three ports and, on request over HTTP, probes
// other containers, so that a test on the host can ask "can n1 reach n2?"
// through a channel that the faults under test (which only drop packets
// between nodes, or are measured by the probe itself) do not decide.
//
//	:7000/tcp  accepts connections and writes "hi\n"
//	:7001/udp  echoes datagrams
//	:8080/http /ping, /dial?addr=host:port&timeout=1s, /udp?addr=host:port&n=500
package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "serve" {
		fmt.Fprintln(os.Stderr, "usage: netprobe serve")
		os.Exit(2)
	}
	host, _ := os.Hostname()
	fmt.Printf("netprobe up on %s\n", host)
	fmt.Fprintf(os.Stderr, "netprobe stderr line on %s\n", host)
	go serveTCP()
	go serveUDP()
	http.HandleFunc("/ping", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "pong") })
	http.HandleFunc("/dial", dial)
	http.HandleFunc("/udp", udpProbe)
	log.Fatal(http.ListenAndServe(":8080", nil))
}

func serveTCP() {
	l, err := net.Listen("tcp", ":7000")
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			continue
		}
		_, _ = c.Write([]byte("hi\n"))
		_ = c.Close()
	}
}

func serveUDP() {
	pc, err := net.ListenPacket("udp", ":7001")
	if err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 64)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			continue
		}
		_, _ = pc.WriteTo(buf[:n], addr)
	}
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// dial opens a TCP connection to addr and reads the greeting.
func dial(w http.ResponseWriter, r *http.Request) {
	timeout, err := time.ParseDuration(r.URL.Query().Get("timeout"))
	if err != nil {
		timeout = time.Second
	}
	start := time.Now()
	c, err := net.DialTimeout("tcp", r.URL.Query().Get("addr"), timeout)
	if err == nil {
		_ = c.SetDeadline(time.Now().Add(timeout))
		buf := make([]byte, 3)
		_, err = c.Read(buf)
		_ = c.Close()
	}
	res := map[string]any{"ok": err == nil, "ms": time.Since(start).Milliseconds()}
	if err != nil {
		res["error"] = err.Error()
	}
	reply(w, res)
}

// udpProbe sends n numbered datagrams to addr, 1 ms apart, and counts the
// distinct echoes that come back within half a second of the last send.
func udpProbe(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil || n <= 0 || n > 100000 {
		http.Error(w, "bad n", http.StatusBadRequest)
		return
	}
	c, err := net.Dial("udp", r.URL.Query().Get("addr"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer c.Close()
	seen := make(map[uint32]bool)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			k, err := c.Read(buf)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return
			}
			if err != nil {
				// An ICMP error for one datagram is not the end.
				continue
			}
			if k >= 4 {
				seen[binary.BigEndian.Uint32(buf)] = true
			}
		}
	}()
	for i := range n {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(i))
		_, _ = c.Write(b[:])
		time.Sleep(time.Millisecond)
	}
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	<-done
	reply(w, map[string]any{"sent": n, "received": len(seen)})
}
