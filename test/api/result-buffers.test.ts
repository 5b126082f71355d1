/**
 * NDJSON batches are read into reused buffers, each given back once its bytes have left the gateway
 * (api/result-streams.ts BatchReleases, db/sql/result-stream.ts): a reader held back while others read another job
 * through the same buffers, and readers after them, each get byte for byte what was stored, records whose line breaks
 * are rewritten in the buffer itself included. The rule itself (when a batch may go back) is checked on its own below:
 * Node copies what a socket could not write at once, so a buffer given back early rarely shows over real sockets.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { connect } from 'node:net'
import t from 'tap'
import pg from 'pg'
import { BatchReleases } from '../../src/api/result-streams.js'
import { clientKeys, startGateway, type TestGateway } from '../helpers/gateway.js'
import { randomText, storePages } from '../helpers/stored-results.js'
import { CODEC_DEFLATE, CODEC_PLAIN } from '../../src/db/sql/body-codec.js'

/**
 * 30,000 records of 300–900 bytes (18 MB), each different; every 97th holds a raw CR LF between its tokens. Hex pads
 * deflate to about half, so their pages are stored compressed and read through inflated buffers; pads of random text
 * do not shrink enough, so theirs are stored as they are and read straight from the COPY data.
 */
function records (stored: 'deflated' | 'plain'): string[] {
  return Array.from({ length: 30_000 }, (_, i) => {
    const length = 300 + 2 * ((i * 7919) % 300)
    const pad = stored === 'deflated' ? randomBytes(length / 2).toString('hex') : randomText(length)
    return i % 97 === 0 ? `{"i":${i},\r\n"pad":"${pad}"}` : `{"i":${i},"pad":"${pad}"}`
  })
}

/** What an NDJSON read must give: each record on a line, line breaks inside a record turned into spaces. */
const ndjsonOf = (rs: string[]): Buffer => Buffer.from(rs.map(r => r.replace(/[\r\n]/g, ' ') + '\n').join(''))

/**
 * A raw HTTP/1.1 NDJSON read that takes nothing for `holdMs` once the response has begun, then reads at full speed.
 * Meanwhile the socket's buffers fill (the response is larger than loopback's) and the rest waits in the gateway.
 */
async function heldRead (gw: TestGateway, jobId: string, holdMs: number): Promise<{ started: Promise<void>, body: Promise<Buffer> }> {
  const socket = connect(Number(new URL(gw.url).port), '127.0.0.1')
  socket.write(`GET /jobs/${jobId}/results HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${clientKeys.alpha}\r\nAccept: application/x-ndjson\r\nConnection: close\r\n\r\n`)
  const chunks: Buffer[] = []
  let begun: () => void = () => {}
  const started = new Promise<void>(resolve => { begun = resolve })
  socket.on('data', (c: Buffer) => {
    chunks.push(c)
    if (chunks.length === 1) {
      socket.pause()
      begun()
      setTimeout(() => socket.resume(), holdMs)
    }
  })
  const body = new Promise<Buffer>((resolve, reject) => {
    socket.once('close', () => {
      const raw = Buffer.concat(chunks)
      resolve(dechunk(raw.subarray(raw.indexOf('\r\n\r\n') + 4)))
    })
    socket.once('error', reject)
  })
  return { started, body }
}

/** The body of a chunked response. */
function dechunk (raw: Buffer): Buffer {
  const out: Buffer[] = []
  for (let at = 0; ;) {
    const eol = raw.indexOf('\r\n', at)
    const size = parseInt(raw.subarray(at, eol).toString('latin1'), 16)
    if (size === 0) break
    out.push(raw.subarray(eol + 2, eol + 2 + size))
    at = eol + 2 + size + 2
  }
  return Buffer.concat(out)
}

t.test('readers at different speeds each get exactly the stored bytes, pages deflated or stored as they are', async t => {
  // Small batches (still pooled): the slices waiting in the gateway span whole batches, not the end of one.
  const gw = await startGateway(t, { startWorkers: false, env: { RESULT_BATCH_MAX_BYTES: '300000' } })
  const admin = new pg.Client({ connectionString: gw.databaseUrl })
  await admin.connect()
  t.teardown(() => admin.end())
  const insert = async (rs: string[]): Promise<string> => {
    const id = randomUUID()
    await admin.query(`INSERT INTO jobs (id, client_id, upstream, resource, params, request_hash, status, records, finished_at, expires_at)
      VALUES ($1, 'alpha', 'drchrono', 'patients', '{}', $2, 'completed', $3, now(), now() + interval '1 hour')`, [id, randomUUID(), rs.length])
    await storePages(admin, id, rs, 1000)
    return id
  }
  // Two jobs: batches of the one are inflated into pooled buffers, the other's are the pooled COPY data itself.
  const deflated = records('deflated')
  const plain = records('plain')
  const deflatedId = await insert(deflated)
  const plainId = await insert(plain)
  const codecs = (await admin.query('SELECT job_id = $1 AS deflated, array_agg(DISTINCT codec) AS codecs FROM result_pages WHERE job_id IN ($1, $2) GROUP BY 1 ORDER BY 1',
    [deflatedId, plainId])).rows
  t.same(codecs, [{ deflated: false, codecs: [CODEC_PLAIN] }, { deflated: true, codecs: [CODEC_DEFLATE] }], 'every page stored as intended')
  t.ok(ndjsonOf(deflated).length > 16 * 1024 * 1024 && ndjsonOf(plain).length > 16 * 1024 * 1024, 'more than loopback\'s socket buffers hold')
  const fast = async (job: string): Promise<Buffer> => Buffer.from(await (await gw.request(`/jobs/${job}/results`, { headers: { accept: 'application/x-ndjson' } })).arrayBuffer())
  // A reader of each job is held, its last slices waiting in the gateway, while fast readers' batches of both jobs go
  // round the one pool: a buffer given back before its bytes were sent would be overwritten by another batch.
  const held = [await heldRead(gw, deflatedId, 2000), await heldRead(gw, plainId, 2000)]
  await Promise.all(held.map(h => h.started))
  const quick = [await fast(plainId), await fast(deflatedId)]
  t.ok((await held[0]!.body).equals(ndjsonOf(deflated)), 'the held reader of deflated pages: byte for byte')
  t.ok((await held[1]!.body).equals(ndjsonOf(plain)), 'the held reader of plain pages: byte for byte')
  t.ok(quick[0]!.equals(ndjsonOf(plain)), 'a fast reader of plain pages: byte for byte')
  t.ok(quick[1]!.equals(ndjsonOf(deflated)), 'a fast reader of deflated pages: byte for byte')
  t.ok((await fast(deflatedId)).equals(ndjsonOf(deflated)), 'and once more, from buffers that went round')
})

t.test('BatchReleases gives a batch back only when its slices left the body and nothing waits to be written', async t => {
  const listeners: Array<() => void> = []
  const response = { writableLength: 0, on (_e: 'drain', l: () => void) { listeners.push(l) } }
  let buffered = 0
  const releases = new BatchReleases(response, () => buffered, 2)
  const given: string[] = []
  releases.yielded(); releases.yielded(); buffered = 2
  releases.add(() => given.push('a'))
  t.same(given, [], 'its slices are still in the body')
  buffered = 0
  response.writableLength = 10
  releases.check()
  t.same(given, [], 'written to the response, not yet sent')
  response.writableLength = 0
  for (const l of listeners) l()
  t.same(given, ['a'], 'sent: given back on the drain')
  releases.yielded(); releases.add(() => given.push('b'))
  t.same(given, ['a', 'b'], 'at once when nothing waits')
  response.writableLength = 5
  for (const name of ['c', 'd', 'e']) { releases.yielded(); releases.add(() => given.push(name)) }
  response.writableLength = 0
  releases.check()
  t.same(given, ['a', 'b', 'd', 'e'], 'beyond the last two waiting, the oldest is left to the garbage collector')
})
