/**
 * The baseline for target 4: a bare Fastify route that answers GET /jobs/:id with a job's JSON held in memory
 * (no auth, no database, no schema), run as its own process like the gateway. Argv: the JSON file, the port.
 */
import { readFileSync } from 'node:fs'
import Fastify from 'fastify'

const [file, port] = process.argv.slice(2)
if (file === undefined || port === undefined) throw new Error('usage: bare-server.ts <job.json> <port>')
const job = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>

const app = Fastify({ logger: false })
app.get('/jobs/:id', async () => job)
await app.listen({ host: '127.0.0.1', port: Number(port) })
process.once('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
