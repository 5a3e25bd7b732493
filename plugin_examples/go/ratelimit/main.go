// A fixed-window rate limiter on the gateway's shared kv (capability kv): the (limit+1)-th event of
// a key within windowSeconds is rejected with 429.
//
// Config: {"limit": N, "windowSeconds": S, "keyBy": "source" | "type" | "header:<Name>",
// "onError": "open" | "closed"} (keyBy defaults to "source", onError to "open"). The key's value is the
// incoming event's source or type, or a request header (name matched in any case); a missing one counts
// as "". The counter lives at kv key rl:<value> (rl#<FNV-1a 64 in hex> past 200 bytes), created by
// kv_incr with the window as its TTL. A kv error lets the event through with a warning (onError open)
// or rejects it with 503 (closed).
package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"eventgateway/pdk"
)

const (
	maxWindowSeconds = 31536000 // the longest TTL the host accepts (a year)
	maxPlainKey      = 200      // longer key values are hashed into the kv key
	maxQuoted        = 100      // how much of the key value a rejection message quotes
)

type rateLimit struct {
	limit         int64
	windowSeconds int64
	keyBy         string // "source", "type" or "header"
	headerName    string
	keyByText     string // the configured keyBy, as the rejection message names it
	failClosed    bool
}

func invalid(what string) error { return errors.New("ratelimit: invalid config: " + what) }

func fnv1a64(s string) uint64 {
	hash := uint64(0xcbf29ce484222325)
	for i := 0; i < len(s); i++ {
		hash ^= uint64(s[i])
		hash *= 0x100000001b3
	}
	return hash
}

// cut returns the longest prefix of s of at most max bytes that ends on a character boundary.
func cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	end := max
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return s[:end]
}

// header returns a request header of the system event (the first string under a name matching in
// any case).
func header(event pdk.Event, name string) (string, bool) {
	entries, _ := event.Data().Get("headers").Entries()
	for _, e := range entries {
		if k, ok := e.Key.AsString(); ok && strings.EqualFold(k, name) {
			if v, ok := e.Value.AsString(); ok {
				return v, true
			}
		}
	}
	return "", false
}

// positiveInt reads a required integer field from 1 to max (what says so in the error).
func positiveInt(config pdk.Value, field string, max int64, what string) (int64, error) {
	v, present := config.Lookup(field)
	if !present || v.IsNil() {
		return 0, invalid(field + " is required (" + what + ")")
	}
	n, ok := v.AsInt()
	if !ok || n < 1 || n > max {
		return 0, invalid(field + " must be " + what)
	}
	return n, nil
}

func (*rateLimit) Subscriptions() []pdk.Subscription {
	return []pdk.Subscription{pdk.Sync("eventgateway.event.received")}
}

func (r *rateLimit) Init(config pdk.Value) error {
	var err error
	if r.limit, err = positiveInt(config, "limit", 1<<63-1, "a positive integer"); err != nil {
		return err
	}
	if r.windowSeconds, err = positiveInt(config, "windowSeconds", maxWindowSeconds, "an integer from 1 to 31536000"); err != nil {
		return err
	}
	r.keyByText = "source"
	if v, present := config.Lookup("keyBy"); present && !v.IsNil() {
		s, ok := v.AsString()
		if !ok {
			return invalid("keyBy must be a string, got " + v.TypeName())
		}
		r.keyByText = s
	}
	switch {
	case r.keyByText == "source" || r.keyByText == "type":
		r.keyBy = r.keyByText
	case strings.HasPrefix(r.keyByText, "header:") && len(r.keyByText) > len("header:"):
		r.keyBy, r.headerName = "header", r.keyByText[len("header:"):]
	default:
		return invalid(`keyBy must be "source", "type" or "header:<Name>", got ` + strconv.Quote(r.keyByText))
	}
	r.failClosed = false
	if v, present := config.Lookup("onError"); present && !v.IsNil() {
		switch s, _ := v.AsString(); s {
		case "open":
		case "closed":
			r.failClosed = true
		default:
			return invalid(`onError must be "open" or "closed"`)
		}
	}
	return nil
}

func (r *rateLimit) React(event pdk.Event) pdk.Reaction {
	var value string
	switch r.keyBy {
	case "source":
		value = event.Incoming().Source()
	case "type":
		value = event.Incoming().Type()
	default:
		value, _ = header(event, r.headerName)
	}
	key := "rl:" + value
	if len(value) > maxPlainKey {
		key = fmt.Sprintf("rl#%016x", fnv1a64(value))
	}
	count, err := pdk.KvIncr(key, 1, r.windowSeconds*1000)
	if err != nil {
		var capErr pdk.CapError // every error of a kit wrapper is one
		errors.As(err, &capErr)
		code := strconv.Itoa(int(capErr.Code()))
		if r.failClosed {
			return pdk.Reject("rate limiter unavailable: kv error "+code, 503)
		}
		pdk.Warn("ratelimit: kv error " + code + " (" + capErr.Name() + "); letting the event through")
		return pdk.Continue()
	}
	if count > r.limit {
		return pdk.Reject(fmt.Sprintf("rate limit exceeded for %s \"%s\": %d events per %d s",
			r.keyByText, cut(value, maxQuoted), r.limit, r.windowSeconds), 429)
	}
	return pdk.Continue()
}

func init() { pdk.Register(&rateLimit{}) }

// main is never called: the module is a WASI reactor whose exports come from the kit.
func main() {}
