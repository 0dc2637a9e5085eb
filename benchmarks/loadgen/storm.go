package main

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Storm mode: every connection leaves and comes back within -storm-window, spread
// evenly, as after a rolling upgrade, while one typist per room (a connection that
// stays) keeps typing at -rate frames/s per room, so a returning client has text on
// screen to get. Reports, per reconnect, the time from its start to its join
// confirmation and to its first chat frame after it, the time from the storm's start
// until the last one is back, failures, and the presence frames it all cost.

var presenceFrames atomic.Int64 // non-chat frames received after joining

type rejoin struct {
	joined    time.Duration // from the start of this reconnect
	firstChat time.Duration // -1: none seen before the end
	backAt    time.Duration // from the storm's start
	ok        bool
}

func runStorm(o *options, clients []*client) {
	if len(clients) == 0 {
		emit(map[string]any{"event": "result", "error": "no connections"})
		return
	}
	dialer, err := newDialer(o)
	if err != nil {
		fail("%s", err)
	}
	typists := make([]*client, 0, o.rooms)
	for r := 0; r < o.rooms; r++ {
		c := &client{idx: o.clients + r, room: r, ready: make(chan struct{}), failed: make(chan error, 1)}
		if err := c.open(o, dialer); err != nil {
			fail("typist of room %d: %s", r, err)
		}
		typists = append(typists, c)
	}
	progress("  settling %s", o.settle)
	time.Sleep(o.settle)

	stopTyping := make(chan struct{})
	var typed, typeErrors atomic.Int64
	var typing sync.WaitGroup
	if o.rate > 0 {
		interval := time.Duration(float64(time.Second) / o.rate)
		for i, c := range typists {
			typing.Add(1)
			go func(c *client, offset time.Duration) {
				defer typing.Done()
				t := time.NewTimer(offset)
				defer t.Stop()
				for {
					select {
					case <-stopTyping:
						return
					case <-t.C:
					}
					if err := c.send(o, time.Now().UnixNano()); err != nil {
						typeErrors.Add(1)
						return
					}
					typed.Add(1)
					t.Reset(interval)
				}
			}(c, time.Duration(int64(interval)*int64(i)/int64(len(typists))))
		}
	}
	// Text on screen before anyone leaves.
	time.Sleep(2 * time.Second)

	presenceBefore := presenceFrames.Load()
	start := time.Now()
	emit(map[string]any{"event": "storm_start", "t_ns": start.UnixNano()})
	results := make([]rejoin, len(clients))
	var back, failed atomic.Int64
	var wg sync.WaitGroup
	for i, old := range clients {
		wg.Add(1)
		go func(i int, old *client) {
			defer wg.Done()
			at := start.Add(time.Duration(int64(o.stormWindow) * int64(i) / int64(len(clients))))
			time.Sleep(time.Until(at))
			old.leaving.Store(true)
			old.wmu.Lock()
			_ = old.ws.WriteControl(websocket.CloseMessage,
				websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
				time.Now().Add(time.Second))
			old.wmu.Unlock()
			old.ws.Close()
			began := time.Now()
			var c *client
			var err error
			for attempt := 0; attempt < 3; attempt++ {
				c = &client{idx: old.idx, room: old.room, ready: make(chan struct{}),
					failed: make(chan error, 1), chatSeen: make(chan struct{})}
				if err = c.open(o, dialer); err == nil {
					break
				}
				time.Sleep(time.Duration(200*(attempt+1)) * time.Millisecond)
			}
			if err != nil {
				failed.Add(1)
				return
			}
			r := rejoin{joined: time.Since(began), firstChat: -1, ok: true}
			r.backAt = time.Since(start)
			back.Add(1)
			select {
			case <-c.chatSeen:
				r.firstChat = c.firstChatAt.Sub(began)
			case <-time.After(o.drain + 5*time.Second):
			}
			results[i] = r
			clients[i] = c
		}(i, old)
	}
	stopProgress := everySecond(func() {
		progress("  storm: %d/%d back, %d failed (%.0fs)",
			back.Load(), len(clients), failed.Load(), time.Since(start).Seconds())
	})
	wg.Wait()
	close(stopProgress)
	emit(map[string]any{"event": "storm_end", "t_ns": time.Now().UnixNano()})
	close(stopTyping)
	typing.Wait()
	presence := presenceFrames.Load() - presenceBefore

	// The memory check reads the server now, with everyone back: say so and wait.
	emit(map[string]any{"event": "storm_settled"})
	waitStdin(o.hold)

	tearingDown.Store(true)
	for _, c := range append(clients, typists...) {
		if c.ws != nil {
			c.ws.Close()
		}
	}
	var joins, firsts, backs []float64
	noChat := 0
	for _, r := range results {
		if !r.ok {
			continue
		}
		joins = append(joins, ms(r.joined))
		backs = append(backs, ms(r.backAt))
		if r.firstChat >= 0 {
			firsts = append(firsts, ms(r.firstChat))
		} else {
			noChat++
		}
	}
	emit(nanToNil(map[string]any{
		"event":               "result",
		"clients":             len(clients),
		"rooms":               o.rooms,
		"window_s":            o.stormWindow.Seconds(),
		"back":                back.Load(),
		"failed":              failed.Load(),
		"join_ms":             quantiles(joins),
		"first_chat_ms":       quantiles(firsts),
		"without_chat":        noChat,
		"last_back_s":         maxOf(backs) / 1000,
		"typed":               typed.Load(),
		"type_errors":         typeErrors.Load(),
		"presence_frames":     presence,
		"presence_per_rejoin": float64(presence) / math.Max(1, float64(back.Load())),
		"clients_per_room":    float64(len(clients)) / float64(o.rooms),
	}))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func quantiles(values []float64) map[string]float64 {
	if len(values) == 0 {
		return map[string]float64{"p50": math.NaN(), "p99": math.NaN(), "max": math.NaN()}
	}
	sort.Float64s(values)
	at := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(values)))) - 1
		if i < 0 {
			i = 0
		}
		return values[i]
	}
	return map[string]float64{"p50": at(50), "p95": at(95), "p99": at(99), "max": at(100)}
}

func maxOf(values []float64) float64 {
	top := math.NaN()
	for _, v := range values {
		if math.IsNaN(top) || v > top {
			top = v
		}
	}
	return top
}
