/**
 * Issue 10, acceptance 4: 400 unsigned 1 MiB webhook posts (some with a malformed signature header instead) to a
 * gateway process. Every one is answered with a 4xx problem, the process's memory grows by less than 50 MB, it
 * reads a small part of what was posted (the bodies are refused from their headers, not read), and no table of
 * the database changes.
 */
import { readFile } from 'node:fs/promises'
import { connect } from 'node:net'
import t from 'tap'
import { sql, testDatabase } from '../helpers/database.js'
import { spawnGateway } from '../helpers/process.js'

const MiB = 1024 * 1024
const POSTS = 400
const CONCURRENCY = 16

/** A field of /proc/<pid>/status (kB) or /proc/<pid>/io (bytes). */
async function procField (pid: number, file: 'status' | 'io', field: string): Promise<number> {
  const text = await readFile(`/proc/${pid}/${file}`, 'utf8')
  const match = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(text)
  if (match === null) throw new Error(`no ${field} in /proc/${pid}/${file}`)
  return Number(match[1]) * (file === 'status' ? 1024 : 1)
}

/** Every table's row count and a digest of its rows, by name. */
async function dumpTables (url: string): Promise<Record<string, string>> {
  const tables = await sql<{ name: string }>(url, "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
  const dump: Record<string, string> = {}
  for (const { name } of tables) {
    const [row] = await sql<{ n: string, digest: string | null }>(url,
      `SELECT count(*) AS n, md5(string_agg(t::text, E'\\n' ORDER BY t::text)) AS digest FROM "${name}" t`)
    dump[name] = `${row?.n} rows, ${row?.digest ?? 'empty'}`
  }
  return dump
}

/**
 * Posts a whole 1 MiB body over a fresh connection, as a client that writes it all regardless; resolves with the
 * answer's status and body once the answer is complete (or the connection ended without one: status 0).
 */
async function post (port: number, signature: string | null, body: Buffer): Promise<{ status: number, body: string }> {
  const socket = connect(port, '127.0.0.1')
  let received = Buffer.alloc(0)
  socket.on('error', () => {}) // refused early, the gateway closes while the body is still on its way
  const answered = new Promise<void>(resolve => {
    socket.on('data', data => {
      received = Buffer.concat([received, data])
      const end = received.indexOf('\r\n\r\n')
      const length = /content-length: (\d+)/i.exec(received.subarray(0, Math.max(end, 0)).toString())
      if (end >= 0 && length !== null && received.length >= end + 4 + Number(length[1])) resolve()
    })
    socket.on('close', () => resolve())
  })
  socket.write('POST /webhooks/metriport HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
    (signature === null ? '' : `X-Metriport-Signature: ${signature}\r\n`) + `Content-Length: ${body.length}\r\n\r\n`)
  socket.end(body)
  await answered
  socket.destroy()
  const text = received.toString('utf8')
  return { status: Number(text.slice(9, 12)) || 0, body: text.slice(text.indexOf('\r\n\r\n') + 4) }
}

t.test('400 unsigned 1 MiB webhook posts: 4xx problems, bounded memory, nothing read or stored', async t => {
  const databaseUrl = await testDatabase(t)
  const gw = await spawnGateway(t, {
    DATABASE_URL: databaseUrl,
    METRIPORT_BASE_URL: 'http://127.0.0.1:9',
    METRIPORT_API_KEY: 'flood-test-api-key',
    METRIPORT_WEBHOOK_KEY: 'flood-test-webhook-key',
    // Every post reaches the signature check (the path under test) rather than the failure limit's 429.
    WEBHOOK_FAILURE_LIMIT: '0',
    // As `npm start` runs it: young-generation space capped as in production, so the measure is the gateway's.
    NODE_OPTIONS: '--max-semi-space-size=4',
  })
  const pid = gw.child.pid as number
  const port = Number(new URL(gw.url).port)
  const body = Buffer.alloc(MiB, '{"meta":{"type":"x"}} ')
  const malformed = ['not-hex', 'z'.repeat(64), 'ab'.repeat(31), 'ab'.repeat(33)]

  // Warm the route up (compiled serializers, first allocations) before measuring.
  for (let i = 0; i < 8; i++) await post(port, null, body)
  const tablesBefore = await dumpTables(databaseUrl)
  const rssBefore = await procField(pid, 'status', 'VmRSS')
  const readBefore = await procField(pid, 'io', 'rchar')

  const answers: Array<{ status: number, body: string }> = []
  let next = 0
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < POSTS) {
      const i = next++
      answers.push(await post(port, i % 10 === 9 ? malformed[i % malformed.length] as string : null, body))
    }
  }))

  const read = await procField(pid, 'io', 'rchar') - readBefore
  const rssGrowth = await procField(pid, 'status', 'VmRSS') - rssBefore
  const tablesAfter = await dumpTables(databaseUrl)

  t.equal(answers.length, POSTS)
  const codes = new Map<string, number>()
  for (const a of answers) {
    let code = `status ${a.status}`
    try { code = `${a.status} ${(JSON.parse(a.body) as { code: string }).code}` } catch { /* counted as its status */ }
    codes.set(code, (codes.get(code) ?? 0) + 1)
  }
  t.same(Object.fromEntries(codes), { '401 webhook_signature_invalid': POSTS }, 'every post: a 401 problem')
  t.comment(`RSS grew ${(rssGrowth / MiB).toFixed(1)} MiB; the process read ${(read / MiB).toFixed(1)} MiB while ${POSTS} MiB were posted`)
  t.ok(rssGrowth < 50 * 1000 * 1000, `RSS grew by less than 50 MB (${(rssGrowth / MiB).toFixed(1)} MiB)`)
  t.ok(read < (POSTS * MiB) / 4, `the gateway read less than a quarter of the bytes posted (${(read / MiB).toFixed(1)} MiB of ${POSTS} MiB)`)
  t.same(tablesAfter, tablesBefore, 'no table changed')
  t.equal((await fetch(`${gw.url}/health/ready`)).status, 200, 'the gateway still answers')
})
