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
import { registry, variablesOf } from '../../src/upstreams/registry.js'

const text = await readFile(new URL('../../docker-compose.yml', import.meta.url), 'utf8')
const compose = parse(text) as { services: Record<string, { environment?: Record<string, string>, env_file?: Array<{ path: string, required?: boolean }> }> }
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

/** An env file as compose reads it: NAME=value lines, blank lines and # comments skipped, values as written. */
function parseEnvFile (content: string): Record<string, string> {
  const lines = content.split('\n').map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
  return Object.fromEntries(lines.map(l => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))
}

/**
 * The environment compose would give a service, and the variables whose absence makes compose refuse: its env
 * files (here given by path, as their content), then its `environment`, which wins.
 */
function environmentOf (
  service: string, shell: Record<string, string>, files: Record<string, string> = {}
): { env: Record<string, string>, missing: string[] } {
  const missing: string[] = []
  const fromFiles = Object.assign({}, ...(compose.services[service]?.env_file ?? []).map(f => {
    if (files[f.path] === undefined && f.required !== false) missing.push(`env_file ${f.path}`)
    return parseEnvFile(files[f.path] ?? '')
  })) as Record<string, string>
  const env = Object.fromEntries(Object.entries(compose.services[service]?.environment ?? {})
    .map(([name, value]) => [name, interpolate(String(value), shell, missing)]))
  return { env: { ...fromFiles, ...env }, missing: [...new Set(missing)] }
}

t.test('no secret has a default: compose refuses to start without real values', async t => {
  const substitutions = [...text.matchAll(/\$\{(\w+)(:?[-?])?([^}]*)\}/g)]
  t.ok(substitutions.length >= 8, `${substitutions.length} substitutions read`)
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
  }
  const { env, missing } = environmentOf('gateway', shell, { './upstreams.env': 'OCL_BASE_URL=https://api.openconceptlab.org\n' })
  t.same(missing, [])
  const config = loadConfig(env)
  t.equal(config.NODE_ENV, 'production', 'production by default')
  t.equal(config.HOST, '0.0.0.0', 'listening on every interface of the container (it has keys)')
  t.equal(config.SANDBOX, false)
  t.equal(config.PUBLIC_BASE_URL, 'https://gateway.example.org')
  t.equal(config.DATABASE_URL, `postgres://gateway:${shell.POSTGRES_PASSWORD}@postgres:5432/bulk_gateway`)

  t.throws(() => loadConfig(environmentOf('gateway', { ...shell, SANDBOX: 'true' }).env), /SANDBOX: true is refused/, 'SANDBOX=true alone is refused in production')
  // The upstreams' variables come from upstreams.env, as written there.
  const upstreams = environmentOf('gateway', { ...shell, UPSTREAMS: '' }, {
    './upstreams.env': '# upstream credentials\nOCL_BASE_URL=https://api.openconceptlab.org\nCLINIKO_API_KEY=k3y-uk1\nCLINIKO_USER_AGENT=Acme gateway (it@acme.example)\n',
  })
  t.same(upstreams.missing, [])
  t.same(loadConfig(upstreams.env).UPSTREAMS, ['cliniko', 'ocl'], 'the upstreams configured in upstreams.env are served')
  const demo = loadConfig(environmentOf('gateway', { ...shell, UPSTREAMS: '', NODE_ENV: 'development', SANDBOX: 'true' }).env)
  t.match(demo, { NODE_ENV: 'development', SANDBOX: true, HOST: '0.0.0.0' }, 'a demo: NODE_ENV=development and SANDBOX=true, every upstream simulated')
})

t.test('the compose file names no upstream: their variables pass through upstreams.env', async t => {
  t.same(compose.services.gateway?.env_file, [{ path: './upstreams.env', required: false }], 'an optional env file beside the compose file')
  const named = Object.keys(compose.services.gateway?.environment ?? {})
  for (const upstream of registry.upstreams) {
    t.same(variablesOf(upstream).filter(v => named.includes(v)), [], `none of ${upstream.name}'s variables is in docker-compose.yml`)
  }
  const ignored = async (file: string) => (await readFile(new URL(`../../${file}`, import.meta.url), 'utf8')).split('\n').includes('upstreams.env')
  t.ok(await ignored('.gitignore'), 'git ignores upstreams.env')
  t.ok(await ignored('.dockerignore'), 'and the image build leaves it out')
})
