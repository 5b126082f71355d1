/**
 * Requests the gateway cannot make sense of answer 400 problem+json like every other client error: list filters
 * with values no job can have, and paths whose percent-encoding does not decode (which Fastify's router refuses
 * before any route runs, with a JSON body of its own unless told otherwise).
 */
import t from 'tap'
import { startGateway } from '../helpers/gateway.js'

const problemType = 'application/problem+json; charset=utf-8'

t.test('unknown list filters and undecodable paths are 400 problems', async t => {
  const gw = await startGateway(t, { startWorkers: false })

  t.test('GET /jobs with an unknown upstream or status names the query parameter', async t => {
    const cases: Array<[string, string]> = [['upstream=nope', '/upstream'], ['upstream=DrChrono', '/upstream'], ['upstream=', '/upstream'],
      ['status=nope', '/status'], ['status=Completed', '/status'], ['status=completed&upstream=nope', '/upstream']]
    for (const [query, pointer] of cases) {
      const res = await gw.request(`/jobs?${query}`)
      t.equal(res.status, 400, query)
      t.equal(res.headers.get('content-type'), problemType, `${query}: problem+json`)
      t.match(await res.json(), { type: 'tag:bulk-gateway,2026:problem:validation_failed', code: 'validation_failed', title: 'Bad Request', status: 400, errors: [{ in: 'query', pointer }] }, `${query}: names ${pointer}`)
    }
    for (const query of ['upstream=cliniko', 'upstream=metriport&status=expired', 'status=cancelled']) {
      const res = await gw.request(`/jobs?${query}`)
      t.equal(res.status, 200, `${query}: a known value filters`)
      t.same((await res.json()).data, [])
    }
  })

  t.test('a path whose percent-encoding does not decode', async t => {
    const cases: Array<[string, string]> = [
      ['GET', '/jobs/%E0%A4%A'], ['GET', '/jobs/%E0%A4%A/results'], ['DELETE', '/jobs/%E0%A4%A'], ['GET', '/jobs/%zz'],
      ['GET', '/no-such-route/%E0%A4%A'],
    ]
    for (const [method, path] of cases) {
      const res = await gw.request(path, { method })
      const name = `${method} ${path}`
      t.equal(res.status, 400, name)
      t.equal(res.headers.get('content-type'), problemType, `${name}: problem+json`)
      const problem = await res.json()
      t.match(problem, { type: 'tag:bulk-gateway,2026:problem:malformed_request', code: 'malformed_request', title: 'Bad Request', status: 400, detail: String }, `${name}: the problem shape`)
      t.notOk('statusCode' in problem || 'error' in problem, `${name}: none of Fastify's own members`)
    }
  })

  t.test('a path parameter beyond the router\'s length limit keeps its 414, as a problem', async t => {
    const res = await gw.request(`/jobs/${'a'.repeat(101)}`)
    t.equal(res.status, 414)
    t.equal(res.headers.get('content-type'), problemType)
    t.match(await res.json(), { type: 'tag:bulk-gateway,2026:problem:uri_too_long', code: 'uri_too_long', title: 'URI Too Long', status: 414 })
  })
})
