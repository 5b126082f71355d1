/**
 * Limits of GET /jobs/{id}/results (issue 10, point 8): pages that end at RESULT_PAGE_MAX_BYTES as well as at
 * `limit`, NDJSON streams cut off when their client stops reading (RESULT_STREAM_STALL_SECONDS), and at most
 * MAX_RESULT_STREAMS_PER_CLIENT streams per client, each slot given back however its stream ends. Clients that stop
 * reading are raw sockets that pause: TCP backpressure then reaches the gateway.
 */
import { randomUUID } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import pg from 'pg'
import { clientKeys, startGateway, type TestGateway } from '../helpers/gateway.js'
import { paddedRecords, storePage } from '../helpers/stored-results.js'

/** Far more than loopback's socket buffers hold for a client that stopped reading early. */
const BIG = { count: 128, bytes: 512 * 1024 }

async function insertJob (admin: pg.Client, rs: string[] | { count: number, bytes: number }, client = 'alpha'): Promise<string> {
  const id = randomUUID()
  const count = Array.isArray(rs) ? rs.length : rs.count
  await admin.query(`INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status, records, finished_at, expires_at)
    VALUES ($1, $4, 'drchrono', 'patients', '{}', $2, 'completed', $3, now(), now() + interval '1 hour')`, [id, randomUUID(), count, client])
  await storePage(admin, id, 1, Array.isArray(rs) ? rs : paddedRecords(rs.count, rs.bytes))
  return id
}

/** An NDJSON read on a raw socket that stops reading once the response's head is in (the caller may resume it). */
interface PausedReader { socket: Socket, head: string, bytes: () => number, body: () => Buffer, closed: Promise<void> }

async function pausedReader (gw: TestGateway, jobId: string, key = clientKeys.alpha): Promise<PausedReader> {
  const socket = connect(Number(new URL(gw.url).port), '127.0.0.1')
  socket.write(`GET /jobs/${jobId}/results HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nAccept: application/x-ndjson\r\n\r\n`)
  const chunks: Buffer[] = []
  let bytes = 0
  const closed = new Promise<void>(resolve => socket.once('close', () => resolve()))
  socket.on('error', () => {}) // a reset is one way the gateway may end it; 'close' follows
  let head: string | null = null
  await new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      bytes += chunk.length
      if (head !== null) return
      const text = Buffer.concat(chunks).toString('latin1')
      if (text.includes('\r\n\r\n')) {
        head = text.slice(0, text.indexOf('\r\n\r\n'))
        socket.pause()
        resolve()
      }
    })
    socket.once('close', () => reject(new Error('closed before the response head')))
  })
  return { socket, head: head as unknown as string, bytes: () => bytes, body: () => Buffer.concat(chunks), closed }
}

/** Polls `check` every 100 ms until it holds; fails the test after `seconds` rather than hang. */
async function eventually (t: Test, what: string, check: () => Promise<boolean>, seconds = 60): Promise<boolean> {
  const deadline = Date.now() + seconds * 1000
  while (Date.now() < deadline) {
    if (await check()) return true
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  t.fail(`${what}: not within ${seconds} s`)
  return false
}

t.test('result read limits', async t => {
  t.test('pages end at RESULT_PAGE_MAX_BYTES too: a large record alone, every record once by nextCursor', async t => {
    const gw = await startGateway(t, { startWorkers: false, env: { RESULT_PAGE_MAX_BYTES: '4096' } })
    const admin = new pg.Client({ connectionString: gw.databaseUrl })
    await admin.connect()
    t.teardown(() => admin.end())
    const records = Array.from({ length: 40 }, (_, i) => JSON.stringify({ i, pad: 'é'.repeat(i === 17 ? 9000 : 450) }))
    const jobId = await insertJob(admin, records)
    const seen: string[] = []
    let cursor: string | null = null
    for (let pages = 0; pages < 100; pages++) {
      const res = await gw.request(`/jobs/${jobId}/results?limit=1000${cursor === null ? '' : `&cursor=${cursor}`}`)
      t.equal(res.status, 200)
      const body = await res.text()
      const page = JSON.parse(body) as { data: unknown[], nextCursor: string | null, total: number }
      const got = records.slice(seen.length, seen.length + page.data.length)
      t.equal(body, `{"data":[${got.join(',')}],"nextCursor":${JSON.stringify(page.nextCursor)},"total":40}`, `page ${pages + 1}: the records as stored`)
      const bytes = got.reduce((a, r) => a + Buffer.byteLength(r), 0)
      t.ok(got.length === 1 || bytes <= 4096, `page ${pages + 1}: ${got.length} records, ${bytes} bytes`)
      if (got.includes(records[17] as string)) t.equal(got.length, 1, 'the 18 KB record is served alone')
      seen.push(...got)
      cursor = page.nextCursor
      if (cursor === null) break
    }
    t.same(seen, records, 'every record once, in order, and nextCursor null only after the last')
    const small = JSON.parse(await (await gw.request(`/jobs/${jobId}/results?limit=2`)).text())
    t.equal(small.data.length, 2, '`limit` still caps a page that is under the byte cap')
  })

  t.test('a reader that stops reading is cut off after RESULT_STREAM_STALL_SECONDS; its slot and connections are freed', async t => {
    const gw = await startGateway(t, { startWorkers: false, env: { RESULT_STREAM_STALL_SECONDS: '1', MAX_RESULT_STREAMS_PER_CLIENT: '1' } })
    const admin = new pg.Client({ connectionString: gw.databaseUrl })
    await admin.connect()
    t.teardown(() => admin.end())
    const big = await insertJob(admin, BIG)
    const small = await insertJob(admin, ['{"a":1}'])
    const reader = await pausedReader(gw, big)
    t.teardown(() => reader.socket.destroy())
    t.match(reader.head, /^HTTP\/1.1 200 /)
    // The one slot frees when the stalled stream ends: until then the client's next stream is refused.
    await eventually(t, 'the stalled stream gave its slot back', async () => {
      const res = await gw.request(`/jobs/${small}/results`, { headers: { accept: 'application/x-ndjson' } })
      await res.arrayBuffer()
      return res.status === 200
    })
    reader.socket.resume()
    await reader.closed
    const body = reader.body()
    t.ok(body.length < BIG.count * BIG.bytes, `the client got ${body.length} bytes of a body of more than ${BIG.count * BIG.bytes}`)
    t.notOk(body.subarray(-5).equals(Buffer.from('0\r\n\r\n')), 'the chunked body was cut, not ended: the client can tell it is incomplete')
    t.ok(gw.logs.some(l => l.includes('stall period')), 'the cut-off is logged')
    const pool = gw.app.db.pool
    await eventually(t, 'every pool connection idle', async () => pool.idleCount === pool.totalCount, 10)
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'`)
    t.equal(rows[0].n, 0, 'no statement of the gateway still runs in PostgreSQL')
  })

  t.test('MAX_RESULT_STREAMS_PER_CLIENT: one more is 429 too_many_streams; slots come back on completion and abort', async t => {
    const gw = await startGateway(t, { startWorkers: false, env: { MAX_RESULT_STREAMS_PER_CLIENT: '2' } })
    const admin = new pg.Client({ connectionString: gw.databaseUrl })
    await admin.connect()
    t.teardown(() => admin.end())
    const big = await insertJob(admin, BIG)
    const small = await insertJob(admin, ['{"a":1}', '{"b":2}'])
    const ndjson = (jobId: string, key?: string) => gw.request(`/jobs/${jobId}/results`, { key, headers: { accept: 'application/x-ndjson' } })

    for (let i = 0; i < 4; i++) {
      const res = await ndjson(small)
      t.equal(await res.text(), '{"a":1}\n{"b":2}\n', `completed stream ${i + 1}: its slot comes back when it ends`)
    }
    const first = await pausedReader(gw, big)
    const second = await pausedReader(gw, big)
    t.teardown(() => { first.socket.destroy(); second.socket.destroy() })
    t.match(first.head, /^HTTP\/1.1 200 /)
    t.match(second.head, /^HTTP\/1.1 200 /)

    const refused = await ndjson(small)
    t.equal(refused.status, 429)
    t.equal(refused.headers.get('content-type'), 'application/problem+json; charset=utf-8')
    t.equal(refused.headers.get('retry-after'), '5')
    t.match(await refused.json(), { code: 'too_many_streams', status: 429, type: 'tag:bulk-gateway,2026:problem:too_many_streams' })
    t.equal((await gw.request(`/jobs/${small}/results`)).status, 200, 'pages are not streams: still served')
    const otherClient = await ndjson(await insertJob(admin, ['{"c":3}'], 'beta'), clientKeys.beta)
    t.equal(await otherClient.text(), '{"c":3}\n', 'another client has slots of its own')

    first.socket.destroy()
    let third: PausedReader | undefined
    await eventually(t, 'the aborted stream gave its slot back', async () => {
      const reader = await pausedReader(gw, big)
      if (reader.head.startsWith('HTTP/1.1 200 ')) third = reader
      else reader.socket.destroy()
      return third !== undefined
    })
    t.teardown(() => third?.socket.destroy())
    const again = await ndjson(small)
    t.equal(again.status, 429, 'the two streams still open keep their slots')
    await again.arrayBuffer()
  })
})
