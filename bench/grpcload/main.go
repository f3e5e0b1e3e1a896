// Command grpcload calls one unary gRPC method as fast as the server answers, from
// -connections HTTP/2 connections with one call in flight on each: the gRPC
// counterpart of `wrk -c N`, so that bench/serve_bench.py compares REST and gRPC at
// the same concurrency. The request is a serialized protobuf message read from a file
// and sent as is (a codec that passes bytes through): no generated code, so one
// binary calls any server of the Open Inference Protocol (the runtime, MLServer,
// KServe) given the bytes of a ModelInferRequest.
//
// Output, one JSON object on stdout: calls per second, latency percentiles (ms) of the
// successful calls, and calls by gRPC status code.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
)

// rawCodec sends and receives message bytes unchanged.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append((*(v.(*[]byte)))[:0], data...)
	return nil
}
func (rawCodec) Name() string { return "proto" } // the content-subtype servers expect

var _ encoding.Codec = rawCodec{}

type result struct {
	Connections int                `json:"connections"`
	Seconds     float64            `json:"seconds"`
	Calls       int                `json:"calls"`
	RPS         float64            `json:"rps"`
	Latency     map[string]float64 `json:"latency_ms"`
	Codes       map[string]int     `json:"codes"`
}

func percentiles(values []time.Duration) map[string]float64 {
	out := map[string]float64{}
	if len(values) == 0 {
		return out
	}
	sort.Slice(values, func(i, j int) bool { return values[i] < values[j] })
	for _, q := range []float64{0.5, 0.9, 0.99} {
		index := int(q*float64(len(values))+0.5) - 1
		if index < 0 {
			index = 0
		}
		out[fmt.Sprintf("p%g", q*100)] = float64(values[index].Microseconds()) / 1000
	}
	out["max"] = float64(values[len(values)-1].Microseconds()) / 1000
	return out
}

func main() {
	address := flag.String("address", "127.0.0.1:9000", "host:port of the gRPC server")
	method := flag.String("method", "/inference.GRPCInferenceService/ModelInfer", "full method name")
	body := flag.String("body", "", "file with the serialized request message")
	connections := flag.Int("connections", 64, "HTTP/2 connections, one call in flight on each")
	seconds := flag.Float64("seconds", 10, "how long to call")
	flag.Parse()
	request, err := os.ReadFile(*body)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reading -body:", err)
		os.Exit(2)
	}
	conns := make([]*grpc.ClientConn, *connections)
	for i := range conns {
		conn, err := grpc.NewClient(*address,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})),
			grpc.WithNoProxy(),
			// A connection of its own for each: without it, equal target strings share none
			// anyway, but say so.
			grpc.WithSharedWriteBuffer(false),
		)
		if err != nil {
			fmt.Fprintln(os.Stderr, "connecting:", err)
			os.Exit(2)
		}
		conns[i] = conn
	}
	// Warm every connection up (HTTP/2 handshake) before the clock starts.
	for _, conn := range conns {
		var answer []byte
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := conn.Invoke(ctx, *method, &request, &answer)
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "warm-up call failed:", err)
			os.Exit(1)
		}
	}
	deadline := time.Now().Add(time.Duration(*seconds * float64(time.Second)))
	var mu sync.Mutex
	var latencies []time.Duration
	codes := map[string]int{}
	var wg sync.WaitGroup
	started := time.Now()
	for _, conn := range conns {
		wg.Add(1)
		go func(conn *grpc.ClientConn) {
			defer wg.Done()
			var mine []time.Duration
			mineCodes := map[string]int{}
			var answer []byte
			for time.Now().Before(deadline) {
				began := time.Now()
				err := conn.Invoke(context.Background(), *method, &request, &answer)
				took := time.Since(began)
				code := status.Code(err).String()
				mineCodes[code]++
				if err == nil {
					mine = append(mine, took)
				}
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			for code, n := range mineCodes {
				codes[code] += n
			}
			mu.Unlock()
		}(conn)
	}
	wg.Wait()
	elapsed := time.Since(started).Seconds()
	calls := 0
	for _, n := range codes {
		calls += n
	}
	out := result{
		Connections: *connections,
		Seconds:     elapsed,
		Calls:       calls,
		RPS:         float64(codes["OK"]) / elapsed,
		Latency:     percentiles(latencies),
		Codes:       codes,
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
