// Command loadgen drives WebSocket chat servers for benchmarks/fanout.py.
//
// It speaks two client protocols: "asocial" (the JSON frames of
// /work/shared/design/PROTOCOL.md, also spoken by the broadcaster reference
// peer) and "centrifugo" (Centrifugo's JSON protocol: connect, subscribe,
// publish commands; pushes back). It is written in Go so that generating
// load costs far less CPU than serving it on the same two-core machine.
//
// Modes:
//
//	fanout: connect -clients across -rooms, publish -rate chat frames per
//	        second per room for -warmup + -duration seconds, and report
//	        deliveries/s and end-to-end latency of the frames sent inside
//	        the measured window.
//	idle:   connect -clients across -rooms and hold them until stdin closes
//	        (or -hold elapses), so the caller can read the server's RSS.
//
// Machine-readable events go to stdout, one JSON object a line; progress goes
// to stderr. Every send embeds its wall-clock send time (Unix ns) in the
// payload and every receiver subtracts it from its own receive time: both
// ends are on the same machine, so one clock serves both.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

type options struct {
	mode        string
	proto       string
	url         string
	clients     int
	rooms       int
	rate        float64
	senders     int
	duration    time.Duration
	warmup      time.Duration
	settle      time.Duration
	drain       time.Duration
	hold        time.Duration
	concurrency int
	roomPrefix  string
	runID       string
	connectMax  time.Duration
	caFile      string
	connectTo   string
	stormWindow time.Duration
	burst       int
	burstGap    time.Duration
}

type client struct {
	idx    int
	room   int
	ws     *websocket.Conn
	wmu    sync.Mutex
	ready  chan struct{}
	failed chan error
	lat    []uint32      // microseconds, frames sent inside the window
	joined time.Duration // from dialling to the join confirmation
	other  int64         // chat frames outside the window or unparsable
	sender bool
	nextID int64
	// Storm mode: a socket being closed on purpose, and the first chat frame after
	// joining (chatSeen closed then; nil when nobody waits for it).
	leaving     atomic.Bool
	chatSeen    chan struct{}
	firstChatAt time.Time
}

func (c *client) sawChat(now int64) {
	if c.chatSeen != nil && c.firstChatAt.IsZero() {
		c.firstChatAt = time.Unix(0, now)
		close(c.chatSeen)
	}
}

var (
	measureStart atomic.Int64 // Unix ns; 0 until set
	measureEnd   atomic.Int64 // Unix ns; MaxInt64 until set
	received     atomic.Int64 // all chat deliveries (for progress)
	closedConns  atomic.Int64
	tearingDown  atomic.Bool // set before we close our own sockets at the end
	closeCodes   sync.Map    // code -> *atomic.Int64
)

func emit(event map[string]any) {
	data, err := json.Marshal(event)
	if err != nil {
		panic(err)
	}
	os.Stdout.Write(append(data, '\n'))
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

func main() {
	var o options
	flag.StringVar(&o.mode, "mode", "fanout", "fanout, idle or storm")
	flag.StringVar(&o.proto, "proto", "asocial", "asocial or centrifugo")
	flag.StringVar(&o.url, "url", "ws://127.0.0.1:8080/api/chat", "WebSocket endpoint; a comma list spreads each room's connections over them (several server processes)")
	flag.IntVar(&o.clients, "clients", 1000, "connections")
	flag.IntVar(&o.rooms, "rooms", 1, "rooms (connection i joins room i % rooms)")
	flag.Float64Var(&o.rate, "rate", 50, "chat frames per second per room")
	flag.IntVar(&o.senders, "senders", 0, "senders per room (0: one per 10 frames/s)")
	flag.IntVar(&o.burst, "burst", 1, "frames a sender types in one go (a line), -burst-gap apart, then a pause that keeps its average rate")
	flag.DurationVar(&o.burstGap, "burst-gap", 150*time.Millisecond, "time between the keystrokes of a burst")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured window")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "sending before the window, not counted")
	flag.DurationVar(&o.settle, "settle", 2*time.Second, "quiet time after connecting")
	flag.DurationVar(&o.drain, "drain", 3*time.Second, "wait for in-flight frames after the window")
	flag.DurationVar(&o.hold, "hold", 120*time.Second, "idle and storm modes: longest hold")
	flag.DurationVar(&o.stormWindow, "storm-window", 10*time.Second, "storm mode: every connection leaves and comes back within this")
	flag.IntVar(&o.concurrency, "concurrency", 64, "connections being opened at once")
	flag.StringVar(&o.roomPrefix, "room-prefix", "bench", "room name prefix")
	flag.StringVar(&o.runID, "run-id", strconv.FormatInt(time.Now().UnixNano()%1e9, 36), "unique per run")
	flag.DurationVar(&o.connectMax, "connect-timeout", 180*time.Second, "give up connecting after")
	flag.StringVar(&o.caFile, "ca", "", "PEM CA that wss:// certificates must chain to (default: the system's)")
	flag.StringVar(&o.connectTo, "connect-to", "", "host:port to dial instead of the URL's (a Gateway serving its host name)")
	flag.Parse()
	if o.proto != "asocial" && o.proto != "centrifugo" {
		fail("unknown -proto %q", o.proto)
	}
	measureEnd.Store(math.MaxInt64)

	clients, failedDials := connectAll(&o)
	emit(map[string]any{
		"event": "ready", "connected": len(clients), "failed": failedDials,
		"connect_ms": connectQuantiles(clients),
	})
	switch o.mode {
	case "fanout":
		runFanout(&o, clients)
	case "idle":
		runIdle(&o, clients)
	case "storm":
		runStorm(&o, clients)
	default:
		fail("unknown -mode %q", o.mode)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", args...)
	os.Exit(2)
}

func roomName(o *options, room int) string {
	if o.proto == "centrifugo" {
		// The benchmark's Centrifugo config opens the "bench" namespace to anonymous clients.
		return fmt.Sprintf("bench:%s-r%d", o.roomPrefix, room)
	}
	return fmt.Sprintf("%s-r%d", o.roomPrefix, room)
}

// connectAll opens every connection with bounded concurrency and waits until
// each has joined its room (user_sync / subscribe reply) or failed.
func connectAll(o *options) ([]*client, int) {
	dialer, err := newDialer(o)
	if err != nil {
		progress("%s", err)
		os.Exit(2)
	}
	sem := make(chan struct{}, o.concurrency)
	var mu sync.Mutex
	var done []*client
	var failed atomic.Int64
	var wg sync.WaitGroup
	var opened atomic.Int64
	start := time.Now()
	stopProgress := everySecond(func() {
		progress("  connecting: %d/%d open, %d failed (%.0fs)",
			opened.Load(), o.clients, failed.Load(), time.Since(start).Seconds())
	})
	deadline := time.Now().Add(o.connectMax)
	var firstErr atomic.Value
	for i := 0; i < o.clients; i++ {
		if time.Now().After(deadline) {
			failed.Add(int64(o.clients - i))
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			var c *client
			var err error
			for attempt := 0; attempt < 3; attempt++ {
				c = &client{idx: i, room: i % o.rooms, ready: make(chan struct{}), failed: make(chan error, 1)}
				if err = c.open(o, dialer); err == nil {
					break
				}
				time.Sleep(time.Duration(200*(attempt+1)) * time.Millisecond)
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			opened.Add(1)
			mu.Lock()
			done = append(done, c)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	close(stopProgress)
	if e := firstErr.Load(); e != nil {
		progress("  first connection error: %s", e)
	}
	progress("  connected %d/%d in %.1fs", len(done), o.clients, time.Since(start).Seconds())
	sort.Slice(done, func(a, b int) bool { return done[a].idx < done[b].idx })
	return done, int(failed.Load())
}

func (c *client) open(o *options, dialer *websocket.Dialer) error {
	// Connection i is in room i % rooms: the members of each room alternate between
	// the endpoints, so every room spans them all.
	endpoints := strings.Split(o.url, ",")
	u, err := url.Parse(endpoints[(c.idx/o.rooms)%len(endpoints)])
	if err != nil {
		return err
	}
	if o.proto == "asocial" {
		q := u.Query()
		q.Set("uid", fmt.Sprintf("bench-%s-%d", o.runID, c.idx))
		q.Set("username", fmt.Sprintf("u%d", c.idx))
		q.Set("channel", roomName(o, c.room))
		u.RawQuery = q.Encode()
	}
	started := time.Now()
	ws, resp, err := dialer.Dial(u.String(), http.Header{})
	if err != nil {
		if resp != nil {
			return fmt.Errorf("dial: %w (HTTP %d)", err, resp.StatusCode)
		}
		return fmt.Errorf("dial: %w", err)
	}
	c.ws = ws
	if o.proto == "centrifugo" {
		connect := `{"id":1,"connect":{"name":"bench"}}` + "\n" +
			`{"id":2,"subscribe":{"channel":"` + roomName(o, c.room) + `"}}`
		if err := c.write([]byte(connect)); err != nil {
			ws.Close()
			return err
		}
	}
	go c.read(o)
	select {
	case <-c.ready:
		c.joined = time.Since(started)
		return nil
	case err := <-c.failed:
		ws.Close()
		return err
	case <-time.After(20 * time.Second):
		ws.Close()
		return errors.New("no join confirmation within 20s")
	}
}

func (c *client) write(data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, data)
}

var (
	// Values are matched without their "type" key so that both compact JSON and
	// Python's default `": "` spacing match.
	keyPayload   = []byte(`"payload":`)
	keyUserSync  = []byte(`"user_sync"`)
	keyTypeError = []byte(`"type":"error"`)
	keyTypeErrSp = []byte(`"type": "error"`)
	keyChat      = []byte(`"chat"`)
	keyErrorCmd  = []byte(`"error":{`)
	keyReplyTwo  = []byte(`"id":2,`)
)

func (c *client) read(o *options) {
	joined := false
	markJoined := func() {
		if !joined {
			joined = true
			close(c.ready)
		}
	}
	defer func() {
		if joined {
			closedConns.Add(1)
		}
	}()
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			if !joined {
				c.failed <- fmt.Errorf("closed before joining: %w", err)
				return
			}
			if tearingDown.Load() || c.leaving.Load() {
				return
			}
			code := -1 // -1: the TCP connection ended without a close frame
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				code = ce.Code
			}
			counter, _ := closeCodes.LoadOrStore(code, &atomic.Int64{})
			counter.(*atomic.Int64).Add(1)
			return
		}
		now := time.Now().UnixNano()
		if o.proto == "asocial" {
			if !joined {
				if bytes.Contains(data, keyUserSync) {
					markJoined()
				} else if bytes.Contains(data, keyTypeError) || bytes.Contains(data, keyTypeErrSp) {
					c.failed <- fmt.Errorf("refused: %s", data)
					return
				}
				continue
			}
			if bytes.Contains(data, keyChat) {
				c.onChat(data, now)
				c.sawChat(now)
			} else {
				presenceFrames.Add(1)
			}
			continue
		}
		// Centrifugo may batch several replies/pushes into one frame, newline separated.
		for len(data) > 0 {
			line := data
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				line, data = data[:i], data[i+1:]
			} else {
				data = nil
			}
			if len(line) == 2 && line[0] == '{' && line[1] == '}' {
				_ = c.write([]byte("{}")) // application-level ping -> pong
				continue
			}
			if !joined {
				if bytes.Contains(line, keyErrorCmd) {
					c.failed <- fmt.Errorf("refused: %s", line)
					return
				}
				if bytes.HasPrefix(line, []byte(`{"id":2`)) || bytes.Contains(line, keyReplyTwo) {
					markJoined()
				}
				continue
			}
			if bytes.Contains(line, keyPayload) {
				c.onChat(line, now)
				c.sawChat(now)
			} else {
				presenceFrames.Add(1)
			}
		}
	}
}

// onChat parses "<send ns>:<sender index>" out of the payload.
func (c *client) onChat(data []byte, now int64) {
	i := bytes.Index(data, keyPayload)
	if i < 0 {
		c.other++
		return
	}
	rest := bytes.TrimLeft(data[i+len(keyPayload):], " ")
	if len(rest) == 0 || rest[0] != '"' {
		c.other++
		return
	}
	rest = rest[1:]
	colon := bytes.IndexByte(rest, ':')
	quote := bytes.IndexByte(rest, '"')
	if colon < 0 || quote < colon {
		c.other++
		return
	}
	sent, err1 := strconv.ParseInt(string(rest[:colon]), 10, 64)
	sender, err2 := strconv.Atoi(string(rest[colon+1 : quote]))
	if err1 != nil || err2 != nil {
		c.other++
		return
	}
	if sender == c.idx {
		return // Centrifugo echoes to the publisher; ours does not. Count neither.
	}
	received.Add(1)
	if sent < measureStart.Load() || sent >= measureEnd.Load() || measureStart.Load() == 0 {
		c.other++
		return
	}
	us := (now - sent) / 1000
	if us < 0 {
		us = 0
	}
	if us > math.MaxUint32 {
		us = math.MaxUint32
	}
	c.lat = append(c.lat, uint32(us))
}

func (c *client) send(o *options, now int64) error {
	c.nextID++
	// Keystroke model: one message_id for 20 frames, like a user typing a line.
	mid := fmt.Sprintf("b%s-%d-%d", o.runID, c.idx, (c.nextID-1)/20)
	payload := fmt.Sprintf("%d:%d", now, c.idx)
	var frame string
	if o.proto == "asocial" {
		frame = `{"type":"chat","message_id":"` + mid + `","payload":"` + payload +
			`","position":{"x":120.5,"y":80.25}}`
	} else {
		frame = `{"id":` + strconv.FormatInt(c.nextID+100, 10) + `,"publish":{"channel":"` +
			roomName(o, c.room) + `","data":{"type":"chat","message_id":"` + mid +
			`","user_id":"u` + strconv.Itoa(c.idx) + `","payload":"` + payload +
			`","position":{"x":120.5,"y":80.25}}}}`
	}
	return c.write([]byte(frame))
}

func runFanout(o *options, clients []*client) {
	if len(clients) == 0 {
		emit(map[string]any{"event": "result", "error": "no connections"})
		return
	}
	byRoom := make(map[int][]*client)
	for _, c := range clients {
		byRoom[c.room] = append(byRoom[c.room], c)
	}
	sendersPerRoom := o.senders
	if sendersPerRoom <= 0 {
		sendersPerRoom = int(math.Ceil(o.rate / 10))
	}
	progress("  settling %s", o.settle)
	time.Sleep(o.settle)

	start := time.Now().Add(100 * time.Millisecond)
	mStart := start.Add(o.warmup)
	mEnd := mStart.Add(o.duration)
	var sentInWindow, expectedInWindow, sendErrors, sentTotal atomic.Int64
	var wg sync.WaitGroup
	// Every sender of every room gets its own phase within one interval: users of
	// different rooms do not type in step, so neither may the load (senders of all rooms
	// firing at the same instant would measure the queue of one burst, not the latency).
	totalSenders := 0
	for _, members := range byRoom {
		totalSenders += min(sendersPerRoom, len(members))
	}
	phase := 0
	for _, members := range byRoom {
		n := sendersPerRoom
		if n > len(members) {
			n = len(members)
		}
		perSender := o.rate / float64(n)
		if perSender <= 0 {
			continue
		}
		// A sender types -burst frames -burst-gap apart, then pauses: one period holds
		// one burst and keeps the sender's average at perSender frames/s.
		burst := max(o.burst, 1)
		period := time.Duration(float64(time.Second) * float64(burst) / perSender)
		gap := time.Duration(0)
		if burst > 1 {
			gap = o.burstGap
		}
		pause := period - time.Duration(burst-1)*gap
		if pause <= 0 {
			fail("-burst %d frames %s apart do not fit in %s (the sender's rate): lower -burst or -burst-gap", burst, gap, period)
		}
		receivers := int64(len(members) - 1)
		for s := 0; s < n; s++ {
			// Spread senders through the room and their first sends through one period.
			c := members[s*len(members)/n]
			c.sender = true
			offset := time.Duration(int64(period) * int64(phase) / int64(totalSenders))
			phase++
			wg.Add(1)
			go func(c *client, offset time.Duration) {
				defer wg.Done()
				next := start.Add(offset)
				for typed := 1; next.Before(mEnd); typed++ {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					now := time.Now().UnixNano()
					if err := c.send(o, now); err != nil {
						sendErrors.Add(1)
						return
					}
					sentTotal.Add(1)
					if now >= mStart.UnixNano() && now < mEnd.UnixNano() {
						sentInWindow.Add(1)
						expectedInWindow.Add(receivers)
					}
					if typed%burst == 0 {
						next = next.Add(pause)
					} else {
						next = next.Add(gap)
					}
				}
			}(c, offset)
		}
	}
	measureStart.Store(mStart.UnixNano())
	measureEnd.Store(mEnd.UnixNano())

	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last := received.Load()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				got := received.Load()
				phase := "warmup"
				if now.After(mEnd) {
					phase = "drain"
				} else if now.After(mStart) {
					phase = "measure"
				}
				progress("  %-7s sent %6d  delivered %8d/s  open %d",
					phase, sentTotal.Load(), got-last, int64(len(clients))-closedConns.Load())
				last = got
			}
		}
	}()
	time.Sleep(time.Until(mStart))
	emit(map[string]any{"event": "measure_start", "t_ns": mStart.UnixNano()})
	time.Sleep(time.Until(mEnd))
	emit(map[string]any{"event": "measure_end", "t_ns": mEnd.UnixNano()})
	wg.Wait()
	time.Sleep(o.drain)
	close(stop)

	// Stop the readers before touching their slices.
	tearingDown.Store(true)
	for _, c := range clients {
		c.ws.Close()
	}
	time.Sleep(200 * time.Millisecond)
	var all []uint32
	silent := 0 // non-sending clients that got none of the window's frames
	for _, c := range clients {
		all = append(all, c.lat...)
		if len(c.lat) == 0 && !c.sender {
			silent++
		}
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return math.NaN()
		}
		i := int(math.Ceil(p/100*float64(len(all)))) - 1
		if i < 0 {
			i = 0
		}
		return float64(all[i]) / 1000
	}
	var mean float64
	for _, v := range all {
		mean += float64(v)
	}
	if len(all) > 0 {
		mean = mean / float64(len(all)) / 1000
	}
	codes := map[string]int64{}
	closeCodes.Range(func(k, v any) bool {
		codes[strconv.Itoa(k.(int))] = v.(*atomic.Int64).Load()
		return true
	})
	secs := o.duration.Seconds()
	result := map[string]any{
		"event":              "result",
		"connections":        len(clients),
		"rooms":              len(byRoom),
		"senders_per_room":   sendersPerRoom,
		"burst":              max(o.burst, 1),
		"window_s":           secs,
		"sent":               sentInWindow.Load(),
		"send_rate":          float64(sentInWindow.Load()) / secs,
		"send_errors":        sendErrors.Load(),
		"expected":           expectedInWindow.Load(),
		"delivered":          len(all),
		"deliveries_per_s":   float64(len(all)) / secs,
		"delivered_fraction": safeDiv(float64(len(all)), float64(expectedInWindow.Load())),
		"latency_ms": map[string]float64{
			"p50": pct(50), "p95": pct(95), "p99": pct(99), "max": pct(100), "mean": mean,
		},
		"closed_during_run": codes,
		"silent_receivers":  silent,
	}
	emit(nanToNil(result))
}

func safeDiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func nanToNil(m map[string]any) map[string]any {
	if lat, ok := m["latency_ms"].(map[string]float64); ok {
		clean := map[string]any{}
		for k, v := range lat {
			if math.IsNaN(v) {
				clean[k] = nil
			} else {
				clean[k] = v
			}
		}
		m["latency_ms"] = clean
	}
	return m
}

func runIdle(o *options, clients []*client) {
	emit(map[string]any{"event": "idle_ready", "connected": len(clients)})
	waitStdin(o.hold)
	still := int64(len(clients)) - closedConns.Load()
	tearingDown.Store(true)
	for _, c := range clients {
		c.ws.Close()
	}
	emit(map[string]any{"event": "result", "connected": len(clients), "still_open": still})
}

// newDialer is the WebSocket dialer: the -ca roots for wss://, and -connect-to in
// place of the URL's address (the URL's host still goes out as Host and SNI).
func newDialer(o *options) (*websocket.Dialer, error) {
	dialer := &websocket.Dialer{
		HandshakeTimeout: 15 * time.Second,
		ReadBufferSize:   2048,
		WriteBufferSize:  1024,
	}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("-ca: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-ca: no PEM certificate in %s", o.caFile)
		}
		dialer.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	if o.connectTo != "" {
		target := o.connectTo
		var d net.Dialer
		dialer.NetDialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, target)
		}
	}
	return dialer, nil
}

// connectQuantiles gives the time from dialling to joining (TCP, TLS, the upgrade and
// user_sync), in milliseconds, over the connections that opened.
func connectQuantiles(clients []*client) map[string]float64 {
	if len(clients) == 0 {
		return nil
	}
	times := make([]float64, len(clients))
	for i, c := range clients {
		times[i] = float64(c.joined.Microseconds()) / 1000
	}
	sort.Float64s(times)
	at := func(p float64) float64 {
		i := int(float64(len(times))*p/100+0.5) - 1
		if i < 0 {
			i = 0
		}
		if i >= len(times) {
			i = len(times) - 1
		}
		return times[i]
	}
	return map[string]float64{"p50": at(50), "p99": at(99), "max": times[len(times)-1]}
}

// waitStdin returns when standard input closes (the driver is done measuring), or
// after hold.
func waitStdin(hold time.Duration) {
	gone := make(chan struct{})
	go func() {
		r := bufio.NewReader(os.Stdin)
		for {
			if _, err := r.ReadString('\n'); err != nil {
				close(gone)
				return
			}
		}
	}()
	select {
	case <-gone:
	case <-time.After(hold):
	}
}

// everySecond calls report once a second until the returned channel is closed.
func everySecond(report func()) chan struct{} {
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				report()
			}
		}
	}()
	return stop
}
