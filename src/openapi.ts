/**
 * Renders the OpenAPI document from the routes' own schemas, exactly as /openapi.json serves it.
 * `npm run openapi` writes it to openapi/openapi.json; a test fails when that file drifts from the code.
 */
import { buildApp } from './app.js'
import { loadConfig } from './config.js'
import { createLogger } from './logger.js'
import { registry as builtIn, type Registry } from './upstreams/registry.js'

/** The document of a gateway serving `registry` (the built-in upstreams by default). */
export async function renderOpenApi (registry: Registry = builtIn): Promise<string> {
  // A fixed configuration, so the document never depends on the machine that renders it. The pool connects
  // lazily and no query runs, so no database is needed. Sandbox mode configures every upstream (its simulators
  // listen on loopback until the app closes), so the document has every route a gateway can have: one
  // /webhooks/<name> path per upstream that receives webhooks, which exists only where that upstream is configured.
  const config = loadConfig({ NODE_ENV: 'test', SANDBOX: 'true', GATEWAY_API_KEYS: 'docs:docs-render-only' }, registry)
  const app = await buildApp(config, { databaseUrl: 'postgresql://render@127.0.0.1:1/none', logger: createLogger({ LOG_LEVEL: 'silent' }), startWorkers: false })
  try {
    await app.ready()
    return JSON.stringify(app.swagger(), null, 2) + '\n'
  } finally {
    await app.close()
  }
}
