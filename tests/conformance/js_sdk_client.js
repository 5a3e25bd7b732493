// Drives the upstream JS SDK (@serverless/event-gateway-sdk) for tests/conformance/test_upstream_sdks.py.
//
// stdin: {"sdk": "<folder holding node_modules>", "options": {...EventGateway options...},
//         "calls": [{"method": "createFunction", "args": [{...}]}, ...]}
// stdout: one JSON array, one entry per call, in order: {"ok": true, "value": ...} or
//         {"ok": false, "error": "<the Error's message>"}. A fetch Response (what `emit` resolves to) is
//         reported as {"status", "headers", "body"} (the body as text).
'use strict'

const path = require('path')

async function readStdin () {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  return JSON.parse(Buffer.concat(chunks).toString('utf8'))
}

async function plain (value) {
  if (value && typeof value === 'object' && typeof value.status === 'number' && typeof value.text === 'function') {
    const headers = {}
    value.headers.forEach((v, k) => { headers[k.toLowerCase()] = v })
    return { status: value.status, headers, body: await value.text() }
  }
  return value === undefined ? null : value
}

async function main () {
  const input = await readStdin()
  const EventGateway = require(path.join(input.sdk, 'node_modules', '@serverless', 'event-gateway-sdk'))
  const eg = new EventGateway(input.options)
  const results = []
  for (const call of input.calls) {
    try {
      const value = await eg[call.method](...(call.args || []))
      results.push({ ok: true, value: await plain(value) })
    } catch (err) {
      results.push({ ok: false, error: String(err && err.message !== undefined ? err.message : err) })
    }
  }
  process.stdout.write(JSON.stringify(results))
}

main().catch(err => {
  process.stderr.write(String(err && err.stack ? err.stack : err))
  process.exit(2)
})
