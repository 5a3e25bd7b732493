package pdk

import (
	"strings"
	"unsafe"
)

// Outbound HTTP (capability http, ABI.md section 7.1): a request to a URL under one of the plugin's
// grants. The host follows redirects (each target checked against the grants) and caps the response.

//go:wasmimport eventgateway http_request
func hostHTTPRequest(req unsafe.Pointer, reqLen int32) int32

//go:wasmimport eventgateway http_response
func hostHTTPResponse(buf unsafe.Pointer, bufLen int32) int32

// Request is one outbound request. An empty Method is GET; TimeoutMs 0 leaves the timeout to the host
// (Limits.http_timeout, never past the reaction's deadline). Host, Content-Length, Connection and the
// other hop-by-hop headers may not be set (ErrInvalid).
type Request struct {
	Method    string
	URL       string
	Headers   map[string]string
	Body      []byte
	TimeoutMs int64
}

// Response is the answer; any HTTP status is a success of the call.
type Response struct {
	Status int
	// Names in canonical case (Content-Type), repeated headers joined by ", ".
	Headers map[string]string
	Body    []byte
}

// Header returns a response header, its name matched in any case ("" when absent).
func (r Response) Header(name string) string {
	for k, v := range r.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// OK says whether the status is 2xx.
func (r Response) OK() bool { return r.Status >= 200 && r.Status < 300 }

// Encode returns the request as the msgpack map http_request takes.
func (r Request) Encode() []byte {
	n := 3
	if r.Method != "" {
		n++
	}
	if r.TimeoutMs != 0 {
		n++
	}
	b := appendMapHeader(make([]byte, 0, 64+len(r.URL)+len(r.Body)), n)
	b = appendString(appendString(b, "url"), r.URL)
	if r.Method != "" {
		b = appendString(appendString(b, "method"), r.Method)
	}
	b = appendMapHeader(appendString(b, "headers"), len(r.Headers))
	for k, v := range r.Headers {
		b = appendString(appendString(b, k), v)
	}
	b = AppendValue(appendString(b, "body"), Bytes(r.Body))
	if r.TimeoutMs != 0 {
		b = AppendValue(appendString(b, "timeoutMs"), Int(r.TimeoutMs))
	}
	return b
}

// DecodeResponse reads the host's msgpack answer; bytes that are not the documented map are ErrInvalid.
func DecodeResponse(b []byte) (Response, error) {
	v, err := Decode(b)
	if err != nil {
		return Response{}, ErrInvalid
	}
	status, ok := v.Get("status").AsInt()
	if !ok || status < 0 || status > 999 {
		return Response{}, ErrInvalid
	}
	resp := Response{Status: int(status), Headers: map[string]string{}}
	entries, _ := v.Get("headers").Entries()
	for _, e := range entries {
		k, kok := e.Key.AsString()
		val, vok := e.Value.AsString()
		if kok && vok {
			resp.Headers[k] = val
		}
	}
	body := v.Get("body")
	if bin, ok := body.AsBytes(); ok {
		resp.Body = bin
	} else if s, ok := body.AsString(); ok {
		resp.Body = []byte(s)
	}
	return resp, nil
}

// HTTPRequest sends req and waits for the answer, or returns a CapError (ErrDenied, ErrTimeout,
// ErrUnavailable, ErrTooLarge, ErrInvalid, ErrNoFuel).
func HTTPRequest(req Request) (Response, error) {
	encoded := req.Encode()
	length, err := check(hostHTTPRequest(bytesPtr(encoded), int32(len(encoded))))
	if err != nil {
		return Response{}, err
	}
	b, err := readGrown(int(uint32(length)), func(buf unsafe.Pointer, n int32) int32 { return hostHTTPResponse(buf, n) })
	if err != nil {
		return Response{}, err
	}
	return DecodeResponse(b)
}
