// Command openloop offers HTTP POSTs at a constant rate, whatever the server answers:
// an open-loop load, as wrk2 makes and wrk cannot (wrk sends the next request when the
// previous is answered, so a slow server slows its own load down and its queue never
// grows). Used by bench/overload_bench.py to offer a runtime twice what it can serve.
//
// Requests are scheduled at fixed instants (start + i/rate) and each latency is taken
// from its scheduled instant, not from when a connection was free to send it, so time
// spent waiting for a connection counts (no coordinated omission). Each of -connections
// keeps one request in flight at a time over a kept-alive HTTP/1.1 connection, written
// and parsed by hand to keep the generator's CPU small beside the server's.
//
// Output, one JSON object on stdout: counts by status, connection errors, the rate
// achieved, and latency percentiles (ms) of all answers and of each status.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"
)

type sample struct {
	status  int // 0: the connection failed
	latency time.Duration
}

type result struct {
	Offered    float64                       `json:"offered_rps"`
	Achieved   float64                       `json:"achieved_rps"` // answered per second of schedule
	Seconds    float64                       `json:"seconds"`
	Scheduled  int                           `json:"scheduled"`
	Counts     map[string]int                `json:"counts"`
	Latency    map[string]float64            `json:"latency_ms"`
	ByStatus   map[string]map[string]float64 `json:"latency_ms_by_status"`
	RetryAfter int                           `json:"retry_after_on_503"`
	ConnErrors int                           `json:"connection_errors"`
	Reconnects int                           `json:"reconnects"`
}

func percentiles(values []time.Duration) map[string]float64 {
	out := map[string]float64{}
	if len(values) == 0 {
		return out
	}
	sort.Slice(values, func(i, j int) bool { return values[i] < values[j] })
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		index := int(q*float64(len(values))+0.5) - 1
		if index < 0 {
			index = 0
		}
		if index >= len(values) {
			index = len(values) - 1
		}
		out[fmt.Sprintf("p%g", q*100)] = float64(values[index].Microseconds()) / 1000
	}
	out["max"] = float64(values[len(values)-1].Microseconds()) / 1000
	return out
}

type conn struct {
	address string
	net     net.Conn
	reader  *bufio.Reader
}

func (c *conn) open() error {
	if c.net != nil {
		c.net.Close()
	}
	n, err := net.DialTimeout("tcp", c.address, 5*time.Second)
	if err != nil {
		c.net = nil
		return err
	}
	c.net = n
	c.reader = bufio.NewReaderSize(n, 16384)
	return nil
}

// exchange sends one request and reads its answer: the status, whether the answer
// carried Retry-After, and whether the server asked to close the connection.
func (c *conn) exchange(request []byte, deadline time.Time) (int, bool, bool, error) {
	c.net.SetDeadline(deadline)
	if _, err := c.net.Write(request); err != nil {
		return 0, false, true, err
	}
	line, err := c.reader.ReadSlice('\n')
	if err != nil {
		return 0, false, true, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, false, true, errors.New("not an HTTP/1.1 status line")
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, true, err
	}
	length, retry, closing := -1, false, false
	for {
		header, err := c.reader.ReadSlice('\n')
		if err != nil {
			return 0, false, true, err
		}
		header = bytes.TrimRight(header, "\r\n")
		if len(header) == 0 {
			break
		}
		colon := bytes.IndexByte(header, ':')
		if colon < 0 {
			continue
		}
		name := bytes.ToLower(header[:colon])
		value := bytes.TrimSpace(header[colon+1:])
		switch string(name) {
		case "content-length":
			length, _ = strconv.Atoi(string(value))
		case "retry-after":
			retry = true
		case "connection":
			closing = bytes.EqualFold(value, []byte("close"))
		}
	}
	if length < 0 {
		return status, retry, true, errors.New("an answer without Content-Length")
	}
	if _, err := c.reader.Discard(length); err != nil {
		return status, retry, true, err
	}
	return status, retry, closing, nil
}

func main() {
	address := flag.String("address", "127.0.0.1:8080", "host:port (loopback)")
	path := flag.String("path", "/", "request path")
	bodyFile := flag.String("body", "", "file holding the request body")
	contentType := flag.String("content-type", "application/json", "Content-Type")
	rate := flag.Float64("rate", 1000, "requests per second offered")
	seconds := flag.Float64("seconds", 10, "how long to offer them")
	connections := flag.Int("connections", 256, "connections, one request in flight on each")
	timeout := flag.Duration("timeout", 5*time.Second, "a request's timeout")
	closed := flag.Bool("closed", false,
		"closed loop instead: each connection sends its next request when answered, "+
			"for -seconds (-rate is ignored); the throughput is the server's capacity")
	flag.Parse()

	host, _, err := net.SplitHostPort(*address)
	if err != nil || net.ParseIP(host) == nil || !net.ParseIP(host).IsLoopback() {
		fmt.Fprintln(os.Stderr, "openloop: -address must be a loopback host:port")
		os.Exit(2)
	}
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "openloop:", err)
		os.Exit(2)
	}
	request := []byte(fmt.Sprintf(
		"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		*path, *address, *contentType, len(body)))
	request = append(request, body...)

	total := int(*rate * *seconds)
	interval := time.Duration(float64(time.Second) / *rate)
	// The schedule: each request's instant. A connection takes the next one when free;
	// the channel's capacity is the whole run, so the schedule never waits for them.
	capacity := total
	if *closed {
		capacity = 0 // a token is taken only by a connection ready to send it
	}
	schedule := make(chan time.Time, capacity)
	samples := make([][]sample, *connections)
	retries := make([]int, *connections)
	reconnects := make([]int, *connections)
	// Every connection is opened before the schedule starts: a thousand connects at the
	// first instant would overflow the server's listen backlog and measure SYN retries.
	conns := make([]*conn, *connections)
	for i := range conns {
		conns[i] = &conn{address: *address}
		if err := conns[i].open(); err != nil {
			fmt.Fprintln(os.Stderr, "openloop: connecting:", err)
			os.Exit(1)
		}
	}
	var wg sync.WaitGroup
	start := time.Now().Add(100 * time.Millisecond)
	for i := 0; i < *connections; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := conns[i]
			for at := range schedule {
				if *closed {
					at = time.Now()
				}
				if time.Until(at) > 0 {
					time.Sleep(time.Until(at))
				}
				if c.net == nil {
					if err := c.open(); err != nil {
						samples[i] = append(samples[i], sample{0, time.Since(at)})
						continue
					}
				}
				status, retry, closing, err := c.exchange(request, time.Now().Add(*timeout))
				latency := time.Since(at)
				if err != nil {
					status = 0
				}
				samples[i] = append(samples[i], sample{status, latency})
				if retry && status == 503 {
					retries[i]++
				}
				if closing {
					c.net.Close()
					c.net = nil
					reconnects[i]++
				}
			}
			if c.net != nil {
				c.net.Close()
			}
		}(i)
	}
	if *closed {
		// Every connection's next request is due at once: latency is then the time
		// from sending to the answer, as wrk measures it.
		total = 0
		go func() {
			for time.Now().Before(start.Add(time.Duration(*seconds * float64(time.Second)))) {
				schedule <- time.Now()
			}
			close(schedule)
		}()
	}
	// Feed the schedule in real time, so an idle connection never runs ahead of it.
	for k := 0; k < total; k++ {
		at := start.Add(time.Duration(k) * interval)
		if wait := time.Until(at); wait > time.Millisecond {
			time.Sleep(wait - time.Millisecond)
		}
		schedule <- at
	}
	if !*closed {
		close(schedule)
	}
	wg.Wait()
	finished := time.Now()

	out := result{
		Offered:   *rate,
		Scheduled: total,
		Counts:    map[string]int{},
		ByStatus:  map[string]map[string]float64{},
		Seconds:   finished.Sub(start).Seconds(),
	}
	var all []time.Duration
	byStatus := map[string][]time.Duration{}
	answered := 0
	for i := range samples {
		out.RetryAfter += retries[i]
		out.Reconnects += reconnects[i]
		for _, s := range samples[i] {
			key := strconv.Itoa(s.status)
			if s.status == 0 {
				key = "error"
				out.ConnErrors++
			} else {
				answered++
			}
			out.Counts[key]++
			all = append(all, s.latency)
			byStatus[key] = append(byStatus[key], s.latency)
		}
	}
	out.Achieved = float64(answered) / *seconds
	if *closed {
		out.Scheduled = len(all)
		out.Achieved = float64(answered) / out.Seconds
	}
	out.Latency = percentiles(all)
	for key, values := range byStatus {
		out.ByStatus[key] = percentiles(values)
	}
	encoder := json.NewEncoder(os.Stdout)
	if err := encoder.Encode(out); err != nil {
		io.WriteString(os.Stderr, err.Error())
		os.Exit(1)
	}
}
