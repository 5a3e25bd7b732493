// Ask a token service whether an event may pass (capability http, and kv for the cache: the module
// imports both, so it needs both granted even with cacheSeconds 0).
//
// Config: {"url": "<token service>", "header": "Authorization", "cacheSeconds": N} (header defaults to
// "Authorization", cacheSeconds to 0: no cache). The header is read from the request's headers in the
// system event (data.headers, name matched in any case; the plugin needs sensitiveHeaders to see
// Authorization). Missing: 401. Otherwise the plugin POSTs to url with the same header and an empty
// body: a 2xx answer lets the event through, anything else (or a call error) rejects it with 401. With
// cacheSeconds > 0, an allow is cached in kv at auth:<FNV-1a 64 of the value, hex> holding the whole
// header value; a cache hit counts only when that stored value equals the presented one.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"eventgateway/pdk"
)

const maxCacheSeconds = 31536000

type authCheck struct {
	url          string
	header       string
	cacheSeconds int64
}

func invalid(what string) error { return errors.New("authcheck: invalid config: " + what) }

func fnv1a64(s string) uint64 {
	hash := uint64(0xcbf29ce484222325)
	for i := 0; i < len(s); i++ {
		hash ^= uint64(s[i])
		hash *= 0x100000001b3
	}
	return hash
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

func (*authCheck) Subscriptions() []pdk.Subscription {
	return []pdk.Subscription{pdk.Sync("eventgateway.event.received")}
}

func (a *authCheck) Init(config pdk.Value) error {
	v, present := config.Lookup("url")
	if !present || v.IsNil() {
		return invalid("url is required")
	}
	if s, ok := v.AsString(); ok && s != "" {
		a.url = s
	} else {
		return invalid("url must be a non-empty string")
	}
	a.header = "Authorization"
	if v, present := config.Lookup("header"); present && !v.IsNil() {
		s, ok := v.AsString()
		if !ok || s == "" {
			return invalid("header must be a non-empty string")
		}
		a.header = s
	}
	a.cacheSeconds = 0
	if v, present := config.Lookup("cacheSeconds"); present && !v.IsNil() {
		n, ok := v.AsInt()
		if !ok || n < 0 || n > maxCacheSeconds {
			return invalid("cacheSeconds must be an integer from 0 to " + strconv.Itoa(maxCacheSeconds))
		}
		a.cacheSeconds = n
	}
	return nil
}

func (a *authCheck) React(event pdk.Event) pdk.Reaction {
	presented, ok := header(event, a.header)
	if !ok {
		return pdk.Reject("missing "+a.header+" header", 401)
	}
	cacheKey := fmt.Sprintf("auth:%016x", fnv1a64(presented))
	if a.cacheSeconds > 0 {
		// A kv error is a miss: the token service decides.
		if stored, err := pdk.KvGet(cacheKey); err == nil && bytes.Equal(stored, []byte(presented)) {
			return pdk.Continue()
		}
	}
	response, err := pdk.HTTPRequest(pdk.Request{
		Method:  "POST",
		URL:     a.url,
		Headers: map[string]string{a.header: presented},
	})
	if err != nil {
		var capErr pdk.CapError // every error of a kit wrapper is one
		errors.As(err, &capErr)
		return pdk.Reject("unauthorized: token service error "+strconv.Itoa(int(capErr.Code())), 401)
	}
	if !response.OK() {
		return pdk.Reject("unauthorized", 401)
	}
	if a.cacheSeconds > 0 {
		// Best effort: a failed write only costs a call next time.
		_ = pdk.KvSet(cacheKey, []byte(presented), a.cacheSeconds*1000)
	}
	return pdk.Continue()
}

func init() { pdk.Register(&authCheck{}) }

// main is never called: the module is a WASI reactor whose exports come from the kit.
func main() {}
