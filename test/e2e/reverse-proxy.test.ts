/**
 * The gateway behind a real nginx that serves it under /bulk/ (Debian's nginx, configured the way README's
 * deployment section shows): Location headers, following them, cursor paging and NDJSON streaming through the
 * proxy, Swagger UI and its "Try it out" server under the prefix. Straight to the gateway, without the proxy's
 * headers or from an untrusted client, URLs stay un-prefixed. In sandbox mode the adapters call the simulators on
 * their own loopback listener, which the proxy cannot reach.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { clientKeys, startGateway } from '../helpers/gateway.js'
import { requireProgram } from '../helpers/programs.js'

// Hang detectors only: the machine is shared and slow, nothing here is a timing assertion.
const waitMs = 60_000
const auth = { authorization: `Bearer ${clientKeys.alpha}` }

interface Nginx { base: string, accessLog: () => Promise<string> }

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise(resolve => server.close(resolve))
  return port
}

function nginxConf (dir: string, port: number, gatewayPort: number): string {
  return `${process.getuid?.() === 0 ? 'user root;\n' : ''}daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    location /bulk/ {
      proxy_pass http://127.0.0.1:${gatewayPort}/;
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Prefix /bulk;
      proxy_buffering off;
    }
  }
}
`
}

const canConnect = (port: number) => new Promise<boolean>(resolve => {
  const socket = connect(port, '127.0.0.1')
  socket.once('connect', () => { socket.destroy(); resolve(true) })
  socket.once('error', () => resolve(false))
})

/** Starts nginx in front of the gateway; it is stopped and its directory removed in teardown. */
async function startNginx (t: Test, nginx: string, gatewayPort: number): Promise<Nginx> {
  const dir = await mkdtemp(join(tmpdir(), 'bulk-gateway-nginx-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  // The port is free when picked; another process may take it before nginx binds, so try a few.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    await writeFile(join(dir, 'nginx.conf'), nginxConf(dir, port, gatewayPort))
    const child: ChildProcess = spawn(nginx, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8') })
    const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
    let running = true
    void exited.then(() => { running = false })
    const deadline = Date.now() + waitMs
    while (running && !await canConnect(port)) {
      if (Date.now() > deadline) throw new Error(`nginx did not listen on ${port}`)
      await new Promise(resolve => setTimeout(resolve, 50))
    }
    if (running) {
      t.teardown(async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM')
          const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
          await exited
          clearTimeout(timer)
        }
      })
      return { base: `http://127.0.0.1:${port}`, accessLog: () => readFile(join(dir, 'access.log'), 'utf8') }
    }
    const log = await readFile(join(dir, 'error.log'), 'utf8').catch(() => '')
    if (attempt >= 3 || !/in use/i.test(log + stderr)) throw new Error(`nginx exited: ${stderr}${log}`)
  }
}

async function json (res: Response, status: number, what: string): Promise<any> {
  if (res.status !== status) throw new Error(`${what} answered ${res.status}, not ${status}: ${await res.text()}`)
  return res.json()
}

t.test('behind nginx under /bulk/: Location, links, paging, NDJSON and Swagger UI carry the prefix', { timeout: 300_000 }, async t => {
  const nginxPath = requireProgram(t, 'nginx', ['/usr/sbin/nginx', 'nginx'], 'nginx')
  if (nginxPath === undefined) return
  const gw = await startGateway(t, { env: { SANDBOX: 'true', TRUST_PROXY: '127.0.0.1' } })
  const nginx = await startNginx(t, nginxPath, Number(new URL(gw.url).port))
  const base = `${nginx.base}/bulk`

  // Submit through the proxy: the Location is the public URL, prefix included, and it leads to the job.
  const submitted = await fetch(`${base}/jobs`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ upstream: 'drchrono', resource: 'appointments', params: { since: '2024-02-01' } }),
  })
  const job = await json(submitted, 202, 'POST /bulk/jobs')
  t.equal(submitted.headers.get('location'), `${base}/jobs/${job.id}`, 'Location is under the proxy\'s /bulk prefix')
  t.same(job.links, { self: `/jobs/${job.id}`, results: `/jobs/${job.id}/results` }, 'links are paths below the API\'s base URL')

  let view = await json(await fetch(submitted.headers.get('location')!, { headers: auth }), 200, 'GET Location')
  t.equal(view.id, job.id, 'following Location gives the job')
  const deadline = Date.now() + waitMs
  while (view.status === 'queued' || view.status === 'running') {
    if (Date.now() > deadline) throw new Error(`job still ${view.status} after the deadline`)
    await new Promise(resolve => setTimeout(resolve, 200))
    view = await json(await fetch(base + job.links.self, { headers: auth }), 200, 'GET the job\'s self link')
  }
  t.equal(view.status, 'completed', `the job completes (error: ${JSON.stringify(view.error)})`)
  t.ok(view.progress.records > 1000, `more records than one page holds (${view.progress.records})`)

  // Cursor pages through the proxy, starting from the results link, following nextCursor to the end.
  const paged: unknown[] = []
  let cursor: string | null = null
  let pages = 0
  do {
    const url = new URL(base + view.links.results)
    url.searchParams.set('limit', '1000')
    if (cursor !== null) url.searchParams.set('cursor', cursor)
    const page = await json(await fetch(url, { headers: auth }), 200, `results page ${pages + 1}`)
    t.equal(page.total, view.progress.records, `page ${pages + 1}: total`)
    paged.push(...page.data)
    cursor = page.nextCursor
    pages++
  } while (cursor !== null && pages < 100)
  t.equal(pages, Math.ceil(view.progress.records / 1000), 'nextCursor led through every page')
  t.equal(paged.length, view.progress.records, 'cursor pages hold every record')

  // NDJSON, unbuffered through nginx: every record, once, in the paged order.
  const stream = await fetch(base + view.links.results, { headers: { ...auth, accept: 'application/x-ndjson' } })
  t.equal(stream.status, 200, 'NDJSON through the proxy')
  t.match(stream.headers.get('content-type'), /^application\/x-ndjson/, 'as NDJSON')
  const lines = (await stream.text()).split('\n')
  t.equal(lines.pop(), '', 'the stream ends with a newline')
  t.same(lines.map(line => JSON.parse(line)), paged, 'NDJSON through the proxy gives every record')

  // Swagger UI under the prefix: /bulk/docs goes on to /bulk/docs/, whose assets are under /bulk/docs/static/.
  const docs = await fetch(`${base}/docs`)
  t.equal(docs.status, 200, '/bulk/docs loads')
  t.equal(docs.url, `${base}/docs/`, 'by way of /bulk/docs/, so relative asset URLs keep the prefix')
  t.match(docs.headers.get('content-type'), /^text\/html/, 'as HTML')
  const html = await docs.text()
  const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map(m => new URL(m[1]!, docs.url).href)
  t.ok(assets.some(a => a.endsWith('/swagger-ui-bundle.js')), 'the page loads Swagger UI\'s bundle')
  for (const asset of assets) {
    t.ok(asset.startsWith(`${base}/docs/static/`), `asset under the prefix: ${asset}`)
    t.equal((await fetch(asset)).status, 200, `asset loads: ${asset}`)
  }
  const initializer = await (await fetch(`${base}/docs/static/swagger-initializer.js`)).text()
  t.match(initializer, /resolveUrl\('\.\/json'\)/, 'the UI loads its document relative to the page')
  const shown = await json(await fetch(`${base}/docs/json`), 200, '/bulk/docs/json')
  t.same(shown.servers, [{ url: base }], '"Try it out" calls the gateway under /bulk')
  t.ok(shown.paths['/jobs'].post, 'so POST /jobs goes to /bulk/jobs')

  const document = await json(await fetch(`${base}/openapi.json`), 200, '/bulk/openapi.json')
  t.equal(document.openapi, '3.1.0', '/bulk/openapi.json is reachable')

  // Sandbox adapters reached the simulators on their own loopback listener: nothing of them is behind the proxy.
  const accessLog = await nginx.accessLog()
  t.match(accessLog, /"POST \/bulk\/jobs HTTP/, 'nginx logged the client\'s requests')
  t.notMatch(accessLog, /\/sandbox\//, 'no simulator call went through the proxy')
  const simulator = await fetch(`${base}/sandbox/drchrono/api/appointments_list`, { method: 'POST', headers: auth })
  t.equal(simulator.status, 404, 'and no simulator answers through it')

  // Straight to the gateway, without the proxy's headers: no prefix.
  const direct = await fetch(`${gw.url}/jobs`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ upstream: 'drchrono', resource: 'patients', params: { since: '2024-02-01' } }),
  })
  const directJob = await json(direct, 202, 'POST /jobs straight to the gateway')
  t.equal(direct.headers.get('location'), `${gw.url}/jobs/${directJob.id}`, 'straight to the gateway: no prefix')
  t.same((await json(await fetch(`${gw.url}/docs/json`), 200, '/docs/json')).servers, [{ url: gw.url }], 'the documentation\'s server too')
})

t.test('without TRUST_PROXY a client\'s own X-Forwarded-Prefix (and -Host, -Proto) is ignored', async t => {
  const gw = await startGateway(t, { env: { SANDBOX: 'true' }, startWorkers: false })
  const spoofed = { 'x-forwarded-prefix': '/evil', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' }
  const res = await fetch(`${gw.url}/jobs`, {
    method: 'POST',
    headers: { ...auth, ...spoofed, 'content-type': 'application/json' },
    body: JSON.stringify({ upstream: 'drchrono', resource: 'appointments', params: { since: '2024-02-01' } }),
  })
  const job = await json(res, 202, 'POST /jobs with spoofed headers')
  t.equal(res.headers.get('location'), `${gw.url}/jobs/${job.id}`, 'Location ignores the spoofed headers')
  const shown = await json(await fetch(`${gw.url}/docs/json`, { headers: spoofed }), 200, '/docs/json with spoofed headers')
  t.same(shown.servers, [{ url: gw.url }], 'so does the documentation\'s server')
})
