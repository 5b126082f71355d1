/**
 * docker-compose.yml without a Docker engine (there is none on the project's machines): the file is parsed, its
 * ${VAR} substitutions are resolved the way compose resolves them, and the gateway's environment that results is
 * loaded by the gateway's own configuration. Compose must refuse to start without real secrets (no placeholder
 * default passes), and with them the gateway must accept what compose hands it.
 */
import { readFile } from 'node:fs/promises'
import t from 'tap'
import { parse } from 'yaml'
import { loadConfig } from '../../src/config.js'

const text = await readFile(new URL('../../docker-compose.yml', import.meta.url), 'utf8')
const compose = parse(text) as { services: Record<string, { environment?: Record<string, string> }> }
const SECRET = /KEY|TOKEN|SECRET|PASSWORD/

/** Compose's interpolation of `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}` and `${VAR?error}`. */
function interpolate (value: string, shell: Record<string, string>, missing: string[]): string {
  return value.replace(/\$\{(\w+)(?:(:?)([-?])([^}]*))?\}/g, (_, name: string, colon: string, kind: string | undefined, arg: string) => {
    const set = shell[name] !== undefined && (colon !== ':' || shell[name] !== '')
    if (set) return shell[name]!
    if (kind === '?') { missing.push(name); return '' }
    return kind === '-' ? arg : ''
  })
}

/** The environment compose would give a service, and the variables whose absence makes compose refuse. */
function environmentOf (service: string, shell: Record<string, string>): { env: Record<string, string>, missing: string[] } {
  const missing: string[] = []
  const env = Object.fromEntries(Object.entries(compose.services[service]?.environment ?? {})
    .map(([name, value]) => [name, interpolate(String(value), shell, missing)]))
  return { env, missing: [...new Set(missing)] }
}

t.test('no secret has a default: compose refuses to start without real values', async t => {
  const substitutions = [...text.matchAll(/\$\{(\w+)(:?[-?])?([^}]*)\}/g)]
  t.ok(substitutions.length > 10, `${substitutions.length} substitutions read`)
  for (const [whole, name, kind, arg] of substitutions) {
    if (SECRET.test(name!) && kind?.endsWith('-')) t.equal(arg, '', `${whole}: a secret may only default to unset`)
  }
  const gateway = environmentOf('gateway', {})
  const postgres = environmentOf('postgres', {})
  t.same(gateway.missing.sort(), ['GATEWAY_API_KEYS', 'POSTGRES_PASSWORD', 'PUBLIC_BASE_URL'], 'the gateway needs keys, the database password and its public URL')
  t.same(postgres.missing, ['POSTGRES_PASSWORD'], 'the database needs its password')
  /* eslint-disable no-template-curly-in-string -- compose's own ${VAR:?} syntax, quoted in the messages */
  t.match(compose.services.gateway?.environment?.GATEWAY_API_KEYS, /^\$\{GATEWAY_API_KEYS:\?.+\}$/, 'GATEWAY_API_KEYS: ${GATEWAY_API_KEYS:?…}')
  t.match(compose.services.postgres?.environment?.POSTGRES_PASSWORD, /^\$\{POSTGRES_PASSWORD:\?.+\}$/, 'POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?…}')
  t.match(compose.services.gateway?.environment?.PUBLIC_BASE_URL, /^\$\{PUBLIC_BASE_URL:\?.+\}$/, 'PUBLIC_BASE_URL: ${PUBLIC_BASE_URL:?…}')
  /* eslint-enable no-template-curly-in-string */
  t.same(environmentOf('gateway', { GATEWAY_API_KEYS: '', POSTGRES_PASSWORD: '', PUBLIC_BASE_URL: '' }).missing.length, 3, 'empty values are refused too')
})

t.test('with real values the gateway accepts what compose hands it', async t => {
  const shell = {
    GATEWAY_API_KEYS: `app:${'a1'.repeat(24)}`,
    POSTGRES_PASSWORD: 'b2'.repeat(12),
    PUBLIC_BASE_URL: 'https://gateway.example.org',
    UPSTREAMS: 'ocl',
    OCL_BASE_URL: 'https://api.openconceptlab.org',
  }
  const { env, missing } = environmentOf('gateway', shell)
  t.same(missing, [])
  const config = loadConfig(env)
  t.equal(config.NODE_ENV, 'production', 'production by default')
  t.equal(config.HOST, '0.0.0.0', 'listening on every interface of the container (it has keys)')
  t.equal(config.SANDBOX, false)
  t.equal(config.PUBLIC_BASE_URL, 'https://gateway.example.org')
  t.equal(config.DATABASE_URL, `postgres://gateway:${shell.POSTGRES_PASSWORD}@postgres:5432/bulk_gateway`)

  t.throws(() => loadConfig(environmentOf('gateway', { ...shell, SANDBOX: 'true' }).env), /SANDBOX: true is refused/, 'SANDBOX=true alone is refused in production')
  const demo = loadConfig(environmentOf('gateway', { ...shell, UPSTREAMS: '', OCL_BASE_URL: '', NODE_ENV: 'development', SANDBOX: 'true' }).env)
  t.match(demo, { NODE_ENV: 'development', SANDBOX: true, HOST: '0.0.0.0' }, 'a demo: NODE_ENV=development and SANDBOX=true, every upstream simulated')
})
