/**
 * `callback` on POST /jobs: what is refused (400 problem+json with a stable code and the field's JSON pointer) and
 * what a job with a callback looks like before it ends. Delivery itself is test/engine/callbacks.test.ts.
 */
import t from 'tap'
import { clientKeys, startGateway } from '../helpers/gateway.js'
import { newCallbackSecret } from '../helpers/callback-receiver.js'
import { jobRequestExample } from '../../src/api/job-request.js'
import { registry } from '../../src/upstreams/registry.js'

const problemType = 'application/problem+json; charset=utf-8'
const allowed = 'https://hooks.example.com'

t.test('callback URLs are checked before a job is created', async t => {
  const gw = await startGateway(t, {
    startWorkers: false,
    env: {
      CALLBACK_ALLOWED_ORIGINS: `${allowed},http://10.1.2.3:8080,http://127.0.0.1:9,https://[fd00::1]`,
      CALLBACK_SECRETS: `alpha:${newCallbackSecret()}`,
    },
  })
  const post = (callback: unknown, key = clientKeys.alpha) => gw.request('/jobs', {
    method: 'POST',
    key,
    body: JSON.stringify({ upstream: 'drchrono', resource: 'patients', params: { doctor: 3 }, callback }),
  })
  const refused: Array<[string, unknown, string, string, string?]> = [
    ['an origin not allowed', { url: 'https://evil.example.net/hook' }, 'callback_origin_not_allowed', '/callback/url'],
    ['another port of an allowed host', { url: 'https://hooks.example.com:8443/hook' }, 'callback_origin_not_allowed', '/callback/url'],
    ['a private address (allowed origin, not allowed to be private)', { url: 'http://10.1.2.3:8080/hook' }, 'callback_url_refused', '/callback/url'],
    ['a loopback address', { url: 'http://127.0.0.1:9/hook' }, 'callback_url_refused', '/callback/url'],
    ['a unique-local IPv6 address', { url: 'https://[fd00::1]/hook' }, 'callback_url_refused', '/callback/url'],
    ['a user name in the URL', { url: 'https://user:pw@hooks.example.com/hook' }, 'callback_url_refused', '/callback/url'],
    ['not a URL', { url: 'not a url' }, 'validation_failed', '/callback/url'],
    ['not http', { url: 'ftp://hooks.example.com/hook' }, 'validation_failed', '/callback/url'],
    ['no url', {}, 'validation_failed', '/callback/url'],
    ['an unknown member', { url: `${allowed}/hook`, retries: 3 }, 'validation_failed', '/callback'],
    ['not an object', 'https://hooks.example.com/hook', 'validation_failed', '/callback'],
    ['a client without a secret', { url: `${allowed}/hook` }, 'callback_secret_missing', '/callback', clientKeys.beta],
  ]
  for (const [name, callback, code, pointer, key] of refused) {
    const res = await post(callback, key)
    t.equal(res.status, 400, `${name}: 400`)
    t.equal(res.headers.get('content-type'), problemType, `${name}: problem+json`)
    const problem = await res.json()
    t.match(problem, { code, type: `tag:bulk-gateway,2026:problem:${code}`, errors: [{ in: 'body', pointer }] }, `${name}: ${code} at ${pointer}`)
    t.notOk(JSON.stringify(problem).includes('user:pw'), `${name}: the answer does not repeat credentials`)
  }
  t.same((await (await gw.request('/jobs')).json()).data, [], 'no job was created')

  const created = await post({ url: `${allowed}/hook?token=abc` })
  t.equal(created.status, 202, 'an allowed origin on a public address, for a client with a secret')
  const job = await created.json()
  t.same(job.callback, { status: 'pending', attempts: 0, lastError: null }, 'the view shows the callback, pending')
  t.notOk(JSON.stringify(job).includes('token=abc'), 'the view never shows the URL')
  const plain = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'drchrono', resource: 'patients', params: { doctor: 3 } }) })
  t.equal(plain.status, 202, 'the same read without a callback is another job, not the in-flight twin')
  t.equal((await plain.json()).callback, null, 'a job without a callback shows null')
  const twin = await post({ url: `${allowed}/hook?token=abc` })
  t.equal(twin.status, 200, 'the same read with the same callback is the in-flight twin')
  t.equal((await twin.json()).id, job.id)

  // A write job goes in by COPY: its callback is set in the same transaction.
  const clinia = registry.find('clinia')!
  const write = await gw.request('/jobs', {
    method: 'POST',
    body: JSON.stringify({ ...jobRequestExample(clinia, Object.keys(clinia.resources)[0]!), callback: { url: `${allowed}/writes` } }),
  })
  t.equal(write.status, 202, 'a write job with a callback')
  const written = await write.json()
  t.same(written.callback, { status: 'pending', attempts: 0, lastError: null })
  t.same((await (await gw.request(`/jobs/${written.id}`)).json()).callback, written.callback, 'as stored')
})

t.test('without CALLBACK_ALLOWED_ORIGINS no callback is taken; in production plain http is refused', async t => {
  const gw = await startGateway(t, { startWorkers: false, env: { CALLBACK_SECRETS: `alpha:${newCallbackSecret()}` } })
  const res = await gw.request('/jobs', { method: 'POST', body: JSON.stringify({ upstream: 'drchrono', resource: 'patients', callback: { url: `${allowed}/hook` } }) })
  t.equal(res.status, 400)
  t.match(await res.json(), { code: 'callback_origin_not_allowed', detail: /CALLBACK_ALLOWED_ORIGINS is empty/ })

  // Production: plain http is refused even to an allowed origin, unless UPSTREAM_ALLOWED_ORIGINS trusts it by name.
  const key = 'k'.repeat(40)
  const ocl = registry.find('ocl')!
  const prod = await startGateway(t, {
    startWorkers: false,
    env: {
      NODE_ENV: 'production',
      GATEWAY_API_KEYS: `alpha:${key}`,
      PUBLIC_BASE_URL: 'https://gw.example.org',
      SANDBOX: 'false',
      UPSTREAMS: 'ocl',
      OCL_BASE_URL: 'https://api.openconceptlab.org',
      CALLBACK_ALLOWED_ORIGINS: 'http://hooks.example.com',
      CALLBACK_SECRETS: `alpha:${newCallbackSecret()}`,
    },
  })
  const http = await prod.request('/jobs', {
    method: 'POST',
    key,
    body: JSON.stringify({ ...jobRequestExample(ocl, Object.keys(ocl.resources)[0]!), callback: { url: 'http://hooks.example.com/hook' } }),
  })
  t.equal(http.status, 400)
  t.match(await http.json(), { code: 'callback_url_refused', errors: [{ pointer: '/callback/url' }] })
})
